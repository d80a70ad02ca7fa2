"""Table of results/parity/README.md: seeds on the highest bump, float32 vs bfloat16 matmuls (run from the repository root)."""
import json, sys
from scipy.stats import fisher_exact
rows = []
for h, heights in (("near_equal", "(1.0, 0.9, 0.9)"), ("unequal", "(1.0, 0.8, 0.8)")):
    d = {}
    for p in ("float32", "bfloat16"):
        d[p] = json.load(open(f"results/parity/{h}_{p}/summary.json"))
    for var in ("entropy", "no_entropy"):
        f, b = d["float32"]["variants"][var], d["bfloat16"]["variants"][var]
        nf, nb = [s["nearest_bump"] for s in f["seeds"]], [s["nearest_bump"] for s in b["seeds"]]
        same = sum(x == y for x, y in zip(nf, nb))
        n = len(nf)
        p = fisher_exact([[f["seeds_on_highest_bump"], n - f["seeds_on_highest_bump"]],
                          [b["seeds_on_highest_bump"], n - b["seeds_on_highest_bump"]]])[1]
        print(f"| {heights} | {var} | {f['seeds_on_highest_bump']}/{n} | {b['seeds_on_highest_bump']}/{n} "
              f"| {p:.2f} | {same}/{n} | {f['final_mean_reward_mean']:.3f} | {b['final_mean_reward_mean']:.3f} |")
