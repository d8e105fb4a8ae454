"""Is plain IG slower than in an earlier version? Both versions timed side by side, one process.

The earlier version is an integrad source tree (``src/integrad`` of a ``git worktree``); it is
copied under another package name (integrad's imports are relative, so it runs as it is) and
both versions run every case of ``bench_core.py`` in interleaved rounds, the order rotating
each round, so machine load hits both alike. Reported: median ms of each, the ratio
new / old, and the largest difference between their attributions.

Usage::

    git worktree add /tmp/integrad-old <commit>
    .venv/bin/python benchmarks/bench_versions.py /tmp/integrad-old/src/integrad [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_core as core  # noqa: E402


def load_old(src: str):
    """The package at ``src`` imported as ``integrad_old``."""
    root = tempfile.mkdtemp(prefix="integrad-old-")
    shutil.copytree(src, os.path.join(root, "integrad_old"), ignore=shutil.ignore_patterns("__pycache__", "models"))
    sys.path.insert(0, root)
    return importlib.import_module("integrad_old")


def call(pkg, case):
    return pkg.integrated_gradients(case.model, case.inputs, baseline=case.baseline, target=case.target,
                                    method=core.METHOD, n_steps=core.N_STEPS, layer=case.layer).attributions


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="path of the earlier version's src/integrad folder")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(core.THREADS)
    import integrad

    old = load_old(args.old)
    budget = core.QUICK if args.quick else core.FULL
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("| case | old ms | new ms | new / old | max rel diff |")
    print("|---|---:|---:|---:|---:|")
    for name in core.CASE_NAMES:
        case = core.build_case(name)
        fns = {"old": lambda: call(old, case), "new": lambda: call(integrad, case)}
        for _ in range(budget.warmups):
            for f in fns.values():
                f()
        once = min(core.time_rounds(fns, 1)["new"])
        rounds = core.repeats_for(once, budget.main_s, budget)
        times = core.time_rounds(fns, rounds)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        diff = core.max_rel_diff(call(integrad, case), call(old, case))
        print(f"| {case.title} | {med['old']:.2f} | {med['new']:.2f} | {med['new'] / med['old']:.3f} | {diff:.1e} |",
              flush=True)
    print(f"load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
