"""explain_row against the bare engine call it makes, side by side in one process.

The bare call is ``integrated_gradients`` on the encoded row repeated once per reference row,
with the reference rows as the baselines (128 paths x ``N_STEPS`` nodes), and the engine call
``explain_row`` makes, ``baselines.averaged`` on the row with the 128 baselines: the same work as
``explain_row(model, 0)`` minus its encoding, prediction and reason-code bookkeeping. Both are
run at ``N_STEPS`` (explain_row's default, 8) and at 50 nodes.

Usage::

    .venv/bin/python benchmarks/bench_tabular.py          # ~10 s
"""

from __future__ import annotations

import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_core as core  # noqa: E402


def main() -> int:
    import integrad
    from integrad.baselines import averaged
    from integrad.tabular import N_STEPS, explain_row, load_tabular_model

    torch.set_num_threads(core.THREADS)
    model = load_tabular_model("german-credit")
    x = model.encode([model.data[0]])
    base = model.reference(128, seed=0)
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for n in (N_STEPS, 50):
        fns = {
            "bare integrated_gradients": lambda n=n: integrad.integrated_gradients(
                model.model, x.expand(128, -1), baseline=base, n_steps=n),
            "averaged": lambda n=n: averaged(model.model, x, base, n_steps=n),
            "explain_row": lambda n=n: explain_row(model, 0, n_steps=n),
        }
        for f in fns.values():
            f(), f()
        times = core.time_rounds(fns, 200)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"n_steps={n} (128 paths):")
        for k, v in med.items():
            print(f"  {k}: {v:.2f} ms")
        print(f"  explain_row / averaged (its engine call): {med['explain_row'] / med['averaged']:.2f}x;"
              f" explain_row / bare: {med['explain_row'] / med['bare integrated_gradients']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
