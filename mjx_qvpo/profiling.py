"""Where the fused training step's time goes: a ``jax.profiler`` trace reduced to a table
(``python -m mjx_qvpo.bench --profile``, issue 11).

The step this profiles is docs/algorithm.md section 7's training step (best-of-K_b acting, physics, U updates
of sections 2-4, each sampling B x K candidates through T denoising steps, section 1). The question
the table answers is the one ANCHORS.md asks before writing fused kernels: is the time in the matrix
products themselves, or in elementwise passes, copies, kernel launches and loop control?

``jax.profiler`` writes a TensorBoard-plugin directory ``<log_dir>/plugins/profile/<run>/`` holding
``<host>.xplane.pb`` and ``<host>.trace.json.gz`` (Chrome trace events). The reducer reads the latter
with gzip + json. An event is an XLA operation if it carries ``args.hlo_op`` (XLA:CPU thunks on the
client's worker threads; on a GPU, kernels on the device's ``Stream`` lines, which are preferred
over the derived ``XLA Ops`` lines so nothing counts twice). Nested events (a CPU ``while`` thunk
contains its body's thunks) count by self time: each event's duration minus its children's.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import time
from typing import Callable, Iterable

CLASSES = ("matrix products", "fused sampler kernel", "fusions / elementwise", "random numbers",
           "gather / scatter / slicing", "copies", "loop control", "other")

# Checked in order; the first class whose pattern matches the lower-cased "name hlo_op" wins.
_PATTERNS = [
    ("fused sampler kernel", r"qvpo_sampler"),
    ("matrix products", r"gemm|cutlass|cublas|xmma|dot|matmul|convolution|conv\b|wgmma|mma"),
    ("copies", r"copy|memcpy|memset|transpose"),
    ("loop control", r"\bwhile|\bcond\b|\bcond\.|\bcondition|\bconditional|\bcall\b"),
    # XLA:CPU inlines threefry into xor / shift fusions: count them as random numbers.
    ("random numbers", r"threefry|rng|philox|random|xor|shift-right|shift-left"),
    ("gather / scatter / slicing", r"gather|scatter|dynamic[-_]update[-_]slice|dynamic[-_]slice|"
                                   r"\bslice|sort|concatenate|\bpad\b"),
    ("fusions / elementwise", r"fusion|loop_|input_|wrapped_|elementwise|reduce|broadcast|add|"
                              r"multiply|subtract|divide|exp|log|tanh|select|compare|convert|"
                              r"maximum|minimum|clamp|negate|sqrt|power|iota|bitcast|reshape"),
]


def classify(name: str, hlo_op: str = "") -> str:
    """The class (one of CLASSES) of one profiled operation from its kernel/thunk name, or from
    its HLO op when the name matches no class.

    The name decides first because on a GPU the ``hlo_op`` of a kernel launched from a command
    buffer (a CUDA graph, which XLA builds for loop bodies) can name other operations of that
    buffer: on an H100 (JAX 0.11.2), classifying "name hlo_op" together put 99.9% of the step,
    Mish's ``loop_divide_fusion`` and memsets included, under matrix products.
    On a GPU, while-loop control appears as a small compare kernel plus a device-to-host copy of
    the predicate per iteration (classed as fusions and copies); on the CPU as the ``while``
    thunk's self time.
    """
    for text in (name.lower(), hlo_op.lower()):
        for cls, pattern in _PATTERNS:
            if re.search(pattern, text):
                return cls
    return "other"


def reclassify(profile: dict) -> dict:
    """The class table of a saved reduced profile recomputed from its top operations with
    ``classify`` (for profiles reduced by an older classifier whose raw trace is gone).

    Operations outside the saved top list cannot be reclassified: their time goes to the row
    "not in the top operations" so that the shares still sum to 1. Returns a new profile dict.
    """
    total = profile["total_self_us"]
    classes = {c: {"self_us": 0.0, "share": 0.0, "count": 0} for c in CLASSES}
    top = []
    for row in profile["top_ops"]:
        cls = classify(row["name"])
        classes[cls]["self_us"] += row["self_us"]
        classes[cls]["count"] += row["count"]
        top.append({**row, "class": cls})
    rest_us = total - sum(c["self_us"] for c in classes.values())
    rest_n = profile["num_ops"] - sum(c["count"] for c in classes.values())
    classes["not in the top operations"] = {"self_us": rest_us, "share": 0.0, "count": rest_n}
    for c in classes.values():
        c["share"] = c["self_us"] / total if total else 0.0
    return {**profile, "classes": classes, "top_ops": top, "reclassified": True}


def find_trace_file(log_dir: str) -> str:
    """The newest ``*.trace.json.gz`` under a jax.profiler log dir (else a perfetto trace)."""
    for pattern in ("**/*.trace.json.gz", "**/perfetto_trace.json.gz"):
        found = sorted(glob.glob(os.path.join(log_dir, pattern), recursive=True),
                       key=os.path.getmtime)
        if found:
            return found[-1]
    raise FileNotFoundError(f"no trace.json.gz under {log_dir}")


def load_trace(path: str) -> dict:
    """A Chrome trace (gzip'd JSON or plain JSON) as a dict with ``traceEvents``."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {"traceEvents": data}


def _names(events: Iterable[dict]) -> tuple[dict, dict]:
    """Process and thread names from the trace's metadata events."""
    procs, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            procs[e.get("pid")] = str(e.get("args", {}).get("name", ""))
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e.get("pid"), e.get("tid"))] = str(e.get("args", {}).get("name", ""))
    return procs, threads


def op_events(trace: dict) -> tuple[list[dict], str]:
    """The XLA operation events of a trace and where they came from ("gpu streams" or "xla ops").

    When a device process has ``Stream`` threads, every completed event (ph X) on them counts
    (kernels and copies as launched). Otherwise the completed events with ``args.hlo_op`` count,
    minus XLA:CPU's short "end: ..." markers.
    """
    events = trace.get("traceEvents", [])
    procs, threads = _names(events)
    done = [e for e in events if e.get("ph") == "X" and "dur" in e
            and not str(e.get("name", "")).startswith("end: ")]
    # Every event on a device's Stream line is a kernel or a copy, annotated with hlo_op or not.
    streams = [e for e in done if procs.get(e.get("pid"), "").startswith("/device:")
               and threads.get((e.get("pid"), e.get("tid")), "").startswith("Stream")]
    if streams:
        return streams, "gpu streams"
    return [e for e in done if "hlo_op" in (e.get("args") or {})], "xla ops"


def self_times(ops: list[dict]) -> list[float]:
    """Each event's duration minus the durations of the events nested directly inside it on the
    same thread (microseconds), so nested thunks (CPU while loops) are not counted twice."""
    out = [float(e["dur"]) for e in ops]
    by_thread = collections.defaultdict(list)
    for i, e in enumerate(ops):
        by_thread[(e.get("pid"), e.get("tid"))].append(i)
    for idx in by_thread.values():
        idx.sort(key=lambda i: (float(ops[i]["ts"]), -float(ops[i]["dur"])))
        stack: list[int] = []
        for i in idx:
            start = float(ops[i]["ts"])
            while stack and float(ops[stack[-1]]["ts"]) + float(ops[stack[-1]]["dur"]) <= start:
                stack.pop()
            if stack:
                out[stack[-1]] -= float(ops[i]["dur"])
            stack.append(i)
    return [max(0.0, x) for x in out]


def _base_name(name: str) -> str:
    """Aggregation key: the name without a trailing instance number (``dot_general.3``,
    ``loop_add_fusion_12``), so repeated instances of one operation kind add up."""
    return re.sub(r"([._](\d+|clone))+$", "", name)


def reduce_trace(trace: dict, num_updates: int = 0, top: int = 25) -> dict:
    """Table of a trace: time per class and share, top operations by self time, and operations
    (GPU: kernels launched) per learner update when ``num_updates`` > 0."""
    ops, source = op_events(trace)
    selfs = self_times(ops)
    total = sum(selfs)
    by_class = collections.Counter()
    count_class = collections.Counter()
    by_op: dict[str, list] = {}
    for e, s in zip(ops, selfs):
        name = str(e.get("name", ""))
        cls = classify(name, str((e.get("args") or {}).get("hlo_op", "")))
        by_class[cls] += s
        count_class[cls] += 1
        row = by_op.setdefault(_base_name(name), [0.0, 0, cls])
        row[0] += s
        row[1] += 1
    top_ops = sorted(by_op.items(), key=lambda kv: -kv[1][0])[:top]
    return {
        "source": source,
        "num_ops": len(ops),
        "total_self_us": total,
        "num_updates": num_updates,
        "ops_per_update": len(ops) / num_updates if num_updates else None,
        "classes": {c: {"self_us": by_class[c], "share": by_class[c] / total if total else 0.0,
                        "count": count_class[c]} for c in CLASSES},
        "top_ops": [{"name": n, "self_us": v[0], "count": v[1], "class": v[2],
                     "share": v[0] / total if total else 0.0} for n, v in top_ops],
    }


def capture(fn, args: tuple, log_dir: str, repeats: int = 2) -> tuple[str, float]:
    """Run the compiled ``fn(*args)`` once untraced (warm-up), then ``repeats`` times under
    ``jax.profiler``; returns the trace file and the traced wall seconds."""
    import jax
    jax.block_until_ready(fn(*args))
    os.makedirs(log_dir, exist_ok=True)
    # The Perfetto copy is insurance: if a JAX version stops writing <host>.trace.json.gz,
    # find_trace_file falls back to perfetto_trace.json.gz (the same Chrome events).
    jax.profiler.start_trace(log_dir, create_perfetto_trace=True)
    t0 = time.perf_counter()
    try:
        for _ in range(repeats):
            jax.block_until_ready(fn(*args))
    finally:
        wall = time.perf_counter() - t0
        jax.profiler.stop_trace()
    return find_trace_file(log_dir), wall


def profile_training_step(cfg, log_dir: str, chunks: int = 2) -> dict:
    """Profile ``chunks`` compiled training chunks of a resolved config (docs/algorithm.md section 7) on a
    pre-filled state and reduce the trace (see module docstring)."""
    import jax
    from mjx_qvpo.bench import chained_chunk, prefilled_state
    from mjx_qvpo.config import derive
    from mjx_qvpo.training import make_trainer
    trainer = make_trainer(cfg, single_device=True)
    state = prefilled_state(trainer, cfg, jax.random.PRNGKey(cfg.seed))
    # Donated and chained as in training, so the trace holds no copy of the state per chunk.
    compile_s, run = chained_chunk(trainer, state)
    path, wall = capture(run, (), log_dir, repeats=chunks)
    steps = chunks * derive(cfg).steps_per_chunk
    updates = steps * cfg.updates_per_step
    out = reduce_trace(load_trace(path), num_updates=updates)
    out.update(trace_file=path, traced_wall_s=wall, compile_chunk_s=compile_s, chunks=chunks,
               training_steps=steps, train_step_s=wall / steps)
    return out


def gpu_busy_share(profile: dict) -> float:
    """Kernel time over traced wall-clock of a GPU profile (``reduce_trace`` output with
    ``traced_wall_s``): how much of the traced training steps the GPU spent computing."""
    return profile["total_self_us"] / 1e6 / profile["traced_wall_s"]


def to_markdown(report: dict) -> str:
    """The reduced profile as Markdown: classes, then the top operations."""
    p, c = report["profile"], report["config"]
    lines = [f"# Profile of the fused training step: {c['task']} on {report['device']}", "",
             f"{report['date']}, jax {report['versions']['jax']}, N={c['num_envs']}, "
             f"U={c['updates_per_step']}, B={c['batch_size']}, K={c['num_train_samples']}, "
             f"T={c['diffusion_steps']}, matmul {c['matmul_precision']}, sampler "
             f"{c.get('sampler', 'reference')}, scan_unroll {c['scan_unroll']}", "",
             f"Command: `{report['command']}`", "",
             f"{p['chunks']} chunks ({p['training_steps']} training steps, {p['num_updates']} "
             f"updates) traced in {p['traced_wall_s']:.2f} s wall ({p['train_step_s'] * 1e3:.1f} ms "
             f"per training step under the profiler); {p['num_ops']:,} operations from "
             f"{p['source']}, {p['ops_per_update']:.1f} per update "
             f"({'kernels launched' if p['source'] == 'gpu streams' else 'XLA thunks executed'}); "
             f"summed self time {p['total_self_us'] / 1e6:.3f} s (on the CPU, thunks of several "
             f"worker threads overlap, so it can exceed the wall time).", "",
             "| class | self time, ms | share | operations |", "|---|---|---|---|"]
    if p["source"] == "gpu streams" and p.get("num_updates"):
        # One stream's kernels do not overlap, so kernel time over wall time is the share of
        # the step the GPU computes; the rest it waits for launches and the host.
        n = p["num_updates"]
        lines[-2:-2] = [f"Per update: {p['traced_wall_s'] / n * 1e3:.2f} ms of wall-clock under "
                        f"the profiler, {p['total_self_us'] / n / 1e3:.2f} ms of kernel time: the "
                        f"GPU is busy {gpu_busy_share(p):.0%} of the traced time (the rest it "
                        f"waits for kernel launches and the host).", ""]
    if p.get("reclassified"):
        lines[-2:-2] = [f"Classes recomputed from the top {len(p['top_ops'])} operations by "
                        "`python -m mjx_qvpo.profiling --reclassify` (the trace was reduced by an "
                        "older classifier that read the HLO op before the kernel name).", ""]
    for cls, row in p["classes"].items():
        lines.append(f"| {cls} | {row['self_us'] / 1e3:,.1f} | {row['share']:.1%} | "
                     f"{row['count']:,} |")
    lines += ["", "Top operations by self time:", "",
              "| operation | class | self time, ms | share | count |", "|---|---|---|---|---|"]
    for row in p["top_ops"]:
        lines.append(f"| `{row['name'][:80]}` | {row['class']} | {row['self_us'] / 1e3:,.2f} | "
                     f"{row['share']:.1%} | {row['count']:,} |")
    return "\n".join(lines) + "\n"


def save(report: dict, stem: str, markdown: Callable[[dict], str] = to_markdown) -> str:
    """Write a report as ``stem.json`` and its table (``markdown(report)``, by default the profile
    table of ``to_markdown``) as ``stem.md``; returns the Markdown. The bench saves its own
    reports through this too."""
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=2, default=list)
    md = markdown(report)
    with open(stem + ".md", "w") as f:
        f.write(md)
    return md


def main(argv=None) -> int:
    """``python -m mjx_qvpo.profiling --reclassify IN.json OUT_STEM``: rewrite a saved profile
    report's class table with the current classifier (``reclassify``) as OUT_STEM.{json,md}."""
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 3 or argv[0] != "--reclassify":
        print("usage: python -m mjx_qvpo.profiling --reclassify IN.json OUT_STEM", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        report = json.load(f)
    report["profile"] = reclassify(report["profile"])
    print(save(report, argv[2]))
    return 0


__all__ = ["CLASSES", "classify", "reclassify", "find_trace_file", "load_trace", "op_events",
           "self_times", "reduce_trace", "capture", "profile_training_step", "to_markdown", "save",
           "main"]

if __name__ == "__main__":
    raise SystemExit(main())

