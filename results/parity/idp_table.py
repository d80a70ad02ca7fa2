"""Table of results/parity/README.md, inverted_double_pendulum part: float32 vs bfloat16 matmuls on
the committed config, paired by seed (same initialization and keys), from the train commands'
metrics.jsonl files. Run from the repository root."""
import json
import os

F32 = {1: "results/train/inverted_double_pendulum_cpu_fast_seed1",
       2: "results/train/inverted_double_pendulum_cpu_final_seed2",
       3: "results/train/inverted_double_pendulum_cpu_final_seed3"}
BF16 = {s: f"results/parity/idp_bfloat16_seed{s}" for s in (1, 2, 3)}
AT = (65_536, 98_304, 131_072, 147_456)
TARGET = 9_000


def curve(run_dir):
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    return [(r["env_steps"], r["eval/episode_return"], r["wall_time"]) for r in rows
            if "eval/episode_return" in r]


def first(c):
    hit = [(s, t) for s, r, t in c if r >= TARGET]
    return hit[0] if hit else (None, None)


def at(c, step):
    return next((r for s, r, _ in c if s == step), float("nan"))


print("| seed | matmuls | env steps to 9,000 | " + " | ".join(f"return at {a:,}" for a in AT)
      + " | return at the last evaluation <= 180,224 | later evaluations below 9,000 | updates/s |")
print("|---|---|---|" + "---|" * len(AT) + "---|---|---|")
for seed in (1, 2, 3):
    for name, runs in (("float32", F32), ("bfloat16", BF16)):
        if not os.path.exists(os.path.join(runs[seed], "metrics.jsonl")):
            continue
        c = curve(runs[seed])
        rows = [json.loads(line) for line in open(os.path.join(runs[seed], "metrics.jsonl"))]
        ups = sorted(r["updates_per_s"] for r in rows if r.get("updates_per_s"))
        step, _ = first(c)
        upto = [(s, r) for s, r, _ in c if s <= 180_224]
        later = [r for s, r in upto if step is not None and s > step and r < TARGET]
        print(f"| {seed} | {name} | {step if step is None else f'{step:,}'} | "
              + " | ".join(f"{at(c, a):,.0f}" for a in AT)
              + f" | {upto[-1][1]:,.0f} ({upto[-1][0]:,}) | {len(later)} of "
              f"{sum(1 for s, _ in upto if step is not None and s > step)} | "
              f"{ups[len(ups) // 2]:.0f} |")
