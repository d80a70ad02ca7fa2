cd "$(dirname "$0")/../../../.."
run() { # name, flags
  XLA_FLAGS="$2" python -m mjx_qvpo.bench --config configs/cpu/hopper.py --no-parts --sweep actor_update_every=2 --out results/bench/cpu_hopper/xla_flags/out/$1 > results/bench/cpu_hopper/xla_flags/out/$1.log 2>&1
  echo "$1 $(grep -o 'actor_update_every=2: [0-9.,]* env steps/s' results/bench/cpu_hopper/xla_flags/out/$1.log)" >> results/bench/cpu_hopper/xla_flags/out/summary.txt
}
mkdir -p results/bench/cpu_hopper/xla_flags/out
run base1 ""
run onednn "--xla_cpu_use_onednn=true"
run base2 ""
run concsched "--xla_cpu_enable_concurrency_optimized_scheduler=true"
run base3 ""
run vec512 "--xla_cpu_prefer_vector_width=512"
run base4 ""
run noeigenmt "--xla_cpu_multi_thread_eigen=false"
echo done >> results/bench/cpu_hopper/xla_flags/out/summary.txt
