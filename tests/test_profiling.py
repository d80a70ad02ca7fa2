"""The trace reducer of ``python -m mjx_qvpo.bench --profile`` (issue 11) on synthetic Chrome
traces shaped like jax.profiler's GPU and CPU output, and one real tiny CPU run."""

import gzip
import json

import pytest

from mjx_qvpo import bench, profiling

TINY = ["--config", "configs/bandit.py", "--config.num_envs=8", "--config.batch_size=16",
        "--config.updates_per_step=2", "--config.diffusion_steps=2",
        "--config.num_train_samples=2", "--config.num_eval_samples=2",
        "--config.network.actor_hidden=(8,)", "--config.network.critic_hidden=(8,)",
        "--config.network.time_hidden=8"]


def _meta(pid, pname, threads):
    out = [{"ph": "M", "pid": pid, "name": "process_name", "args": {"name": pname}}]
    out += [{"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": name}}
            for tid, name in threads.items()]
    return out


def _op(pid, tid, name, ts, dur, hlo_op=None):
    return {"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": ts, "dur": dur,
            "args": {"hlo_op": hlo_op or name, "hlo_module": "jit_chunk"}}


def test_gpu_trace_counts_stream_kernels_once(tmp_path):
    """Kernels on the device's Stream lines count; the derived XLA Ops line (the same work) and
    host events without hlo_op do not."""
    events = _meta(1, "/device:GPU:0", {10: "Stream #13(Compute)", 11: "XLA Ops"})
    events += _meta(2, "/host:CPU", {20: "python"})
    events += [
        _op(1, 10, "sm90_xmma_gemm_f32f32_tf32f32_f32_nn", 0, 60, "dot.3"),
        _op(1, 10, "loop_multiply_fusion_2", 60, 20, "fusion.7"),
        _op(1, 10, "Memcpy DtoH", 80, 5, "while.1"),  # predicate of a while loop
        {"ph": "X", "pid": 1, "tid": 10, "name": "qvpo_sampler", "ts": 85, "dur": 15},  # no args
        _op(1, 11, "dot.3", 0, 60),                      # XLA Ops line: ignored
        {"ph": "X", "pid": 2, "tid": 20, "name": "PjitFunction(chunk)", "ts": 0, "dur": 100},
    ]
    path = tmp_path / "host.trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"displayTimeUnit": "ns", "traceEvents": events}, f)
    assert profiling.find_trace_file(str(tmp_path)) == str(path)
    r = profiling.reduce_trace(profiling.load_trace(str(path)), num_updates=2)
    assert r["source"] == "gpu streams" and r["num_ops"] == 4 and r["ops_per_update"] == 2.0
    c = r["classes"]
    assert c["matrix products"]["self_us"] == 60 and c["matrix products"]["share"] == 0.6
    assert c["fusions / elementwise"]["self_us"] == 20
    assert c["copies"]["self_us"] == 5
    assert c["fused sampler kernel"]["self_us"] == 15
    assert sum(row["share"] for row in c.values()) == pytest.approx(1.0)
    assert r["top_ops"][0]["name"] == "sm90_xmma_gemm_f32f32_tf32f32_f32_nn"
    assert [row["name"] for row in r["top_ops"]].count("loop_multiply_fusion") == 1


def test_cpu_trace_nested_while_counts_self_time():
    """XLA:CPU thunks nest (a while thunk contains its body): the while keeps only its own time,
    repeated instances aggregate by base name, and "end: " markers are not operations."""
    events = _meta(7, "/host:CPU", {1: "tf_XLAPjRtCpuClient/1"})
    events += [
        _op(7, 1, "while.5", 0, 100),
        _op(7, 1, "dot_general.0", 1, 40),
        {"ph": "X", "pid": 7, "tid": 1, "name": "end: dot_general.0", "ts": 41, "dur": 1,
         "args": {}},
        _op(7, 1, "broadcast_add_fusion", 42, 10),
        _op(7, 1, "xor_xor_fusion.3", 52, 8),
        _op(7, 1, "copy.6", 60, 30),
        _op(7, 1, "dot_general.1", 110, 40),            # after the loop, not nested
        _op(7, 1, "cond.2.clone", 150, 2),
    ]
    r = profiling.reduce_trace({"traceEvents": events}, num_updates=0, top=3)
    assert r["source"] == "xla ops" and r["num_ops"] == 7 and r["ops_per_update"] is None
    c = r["classes"]
    assert c["loop control"]["self_us"] == 100 - 40 - 10 - 8 - 30 + 2
    assert c["matrix products"]["self_us"] == 80 and c["matrix products"]["count"] == 2
    assert c["random numbers"]["self_us"] == 8
    assert c["copies"]["self_us"] == 30
    assert r["total_self_us"] == 100 + 40 + 2   # the loop's span, the later dot, cond
    assert [row["name"] for row in r["top_ops"]] == ["dot_general", "copy", "while"]


@pytest.mark.parametrize("name, hlo, cls", [
    ("cutlass_80_tensorop_s1688gemm", "", "matrix products"),
    ("input_reduce_fusion", "fusion.2", "fusions / elementwise"),
    ("wrapped_transpose", "", "copies"),
    ("dynamic-update-slice.4", "", "gather / scatter / slicing"),
    ("threefry2x32", "", "random numbers"),
    ("mystery_kernel", "", "other"),
    # GPU command buffers: a kernel's hlo_op can name other operations; the kernel name decides.
    ("loop_divide_fusion", "command_buffer dot.3 fusion.2", "fusions / elementwise"),
    ("Memset 0", "gemm.1", "copies"),
    ("kernel_17", "dot.3", "matrix products"),
])
def test_classify(name, hlo, cls):
    assert profiling.classify(name, hlo) == cls


def test_reclassify_recomputes_classes_from_top_ops(tmp_path):
    """A saved profile whose classes an older classifier got wrong: the table is recomputed from
    the top operations by name, the rest of the time is its own row, shares sum to 1."""
    top = [{"name": "cutlass_80_simt_sgemm", "self_us": 50.0, "count": 4, "class": "x", "share": 0},
           {"name": "loop_divide_fusion", "self_us": 30.0, "count": 3, "class": "x", "share": 0},
           {"name": "Memset 0", "self_us": 10.0, "count": 2, "class": "x", "share": 0}]
    prof = {"total_self_us": 100.0, "num_ops": 12, "top_ops": top,
            "classes": {"matrix products": {"self_us": 100.0, "share": 1.0, "count": 12}}}
    r = profiling.reclassify(prof)
    c = r["classes"]
    assert c["matrix products"]["self_us"] == 50 and c["matrix products"]["count"] == 4
    assert c["fusions / elementwise"]["self_us"] == 30 and c["copies"]["self_us"] == 10
    assert c["not in the top operations"] == {"self_us": 10.0, "share": 0.1, "count": 3}
    assert sum(row["share"] for row in c.values()) == pytest.approx(1.0)
    assert [row["class"] for row in r["top_ops"]] == ["matrix products", "fusions / elementwise",
                                                       "copies"]
    assert prof["classes"]["matrix products"]["self_us"] == 100.0   # the input is not changed
    report = {"profile": prof, "config": {"task": "humanoid", "num_envs": 1, "updates_per_step": 1,
              "batch_size": 1, "num_train_samples": 1, "diffusion_steps": 1,
              "matmul_precision": "float32", "scan_unroll": 1}, "device": "d", "date": "t",
              "versions": {"jax": "0"}, "command": "c"}
    prof.update(chunks=1, training_steps=1, num_updates=1, traced_wall_s=1.0, train_step_s=1.0,
                source="gpu streams", ops_per_update=12.0)
    src = tmp_path / "p.json"
    src.write_text(json.dumps(report))
    assert profiling.main(["--reclassify", str(src), str(tmp_path / "q")]) == 0
    md = (tmp_path / "q.md").read_text()
    assert "| fusions / elementwise | 0.0 | 30.0% | 3 |" in md and "recomputed" in md
    # 100 us of kernels in 1 s of traced wall-clock: the GPU computed 0.01% of the time.
    assert profiling.gpu_busy_share(prof) == pytest.approx(1e-4)
    assert "1000.00 ms of wall-clock under the profiler, 0.10 ms of kernel time: the GPU is busy 0%" in md
    assert profiling.main(["--reclassify", str(src)]) == 2


@pytest.mark.slow
def test_bench_profile_on_a_tiny_cpu_run(tmp_path):
    assert bench.main([*TINY, "--quick", "--profile", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "profile_cpu.json").read_text())
    p = report["profile"]
    assert p["num_ops"] > 100 and p["ops_per_update"] > 10
    assert p["classes"]["matrix products"]["count"] > 0
    assert sum(row["share"] for row in p["classes"].values()) == pytest.approx(1.0)
    md = (tmp_path / "profile_cpu.md").read_text()
    assert "| matrix products |" in md and "Top operations" in md
