"""How far IG on SmolLM2's generated tokens is from converged, by baseline and step count.

For each prompt, the greedy continuation's tokens are explained with Gauss-Legendre at
several step counts and against a high-step reference (same baseline): per target, the
relative completeness gap |delta| / |F(x) - F(x')|, the true relative error of the
attribution row ||a_n - a_ref|| / ||a_ref||, and the estimated error integrad reports.
The default baseline and step count of integrad.generation come from this table.

    .venv/bin/python benchmarks/generation_convergence.py            # docs/generation.md
    .venv/bin/python benchmarks/generation_convergence.py --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

PROMPTS = ["The capital of France is", "Write a haiku about the sea.", "My favourite fruit is the apple because"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tokens", type=int, default=4)
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--from-json", help="print the table of rows written earlier by --json")
    args = ap.parse_args()
    steps = [16, 32, 64] if args.quick else [16, 32, 64, 128]
    ref_steps = 128 if args.quick else 256
    prompts = PROMPTS[:1] if args.quick else PROMPTS
    baselines = ["pad", 0, "zero"]
    t0 = time.perf_counter()
    if args.from_json:
        with open(args.from_json) as f:
            rows = json.load(f)
        return table(rows, baselines, steps, ref_steps, args.tokens, len(prompts), 0.0)
    from integrad.generation import explain_generation
    from integrad.models import load_language_model

    model, tok = load_language_model()
    rows = []
    for p in prompts:
        first = explain_generation(model, tok, p, max_new_tokens=args.tokens, n_steps=2)
        ids = first.generated_ids
        for b in baselines:
            ref = explain_generation(model, tok, p, target_tokens=ids, baseline=b, n_steps=ref_steps)
            for n in steps:
                ex = explain_generation(model, tok, p, target_tokens=ids, baseline=b, n_steps=n)
                true = ((ex.matrix - ref.matrix).double().norm(dim=1) / ref.matrix.double().norm(dim=1))
                for t in range(len(ids)):
                    rows.append({"prompt": p, "baseline": b, "steps": n, "target": t, "token": ex.generated[t],
                                 "change": float(ex.f_x[t] - ex.f_baseline[t]), "rel_gap": float(ex.relative_delta[t]),
                                 "true_error": float(true[t]),
                                 "estimate": None if ex.error is None else float(ex.error[t])})
            ref_gap = ref.relative_delta
            rows.append({"prompt": p, "baseline": b, "steps": ref_steps, "target": "all", "reference": True,
                         "rel_gap_max": float(ref_gap.max()), "rel_gap_median": float(ref_gap.median())})
            print(f"{p!r} baseline={b!r}: done at {time.perf_counter() - t0:.0f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    table(rows, baselines, steps, ref_steps, args.tokens, len(prompts), time.perf_counter() - t0)


def table(rows, baselines, steps, ref_steps, tokens, n_prompts, seconds) -> None:
    print(f"\nSmolLM2-135M-Instruct, {tokens} greedy tokens per prompt, {n_prompts} prompts; reference "
          f"Gauss-Legendre {ref_steps} steps; {seconds:.0f} s\n")
    print("| baseline | steps | median rel. gap | max rel. gap | median true error | max true error | "
          "estimate / true: min | max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for b in baselines:
        for n in steps:
            sel = [r for r in rows if r["baseline"] == b and r["steps"] == n and r["target"] != "all"]
            gaps = [r["rel_gap"] for r in sel]
            errs = [r["true_error"] for r in sel]
            ratio = [r["estimate"] / r["true_error"] for r in sel if r["estimate"] is not None and r["true_error"] > 0]
            print(f"| {b!r} | {n} | {statistics.median(gaps):.2%} | {max(gaps):.2%} | {statistics.median(errs):.2%} | "
                  f"{max(errs):.2%} | {min(ratio) if ratio else float('nan'):.2f} | "
                  f"{max(ratio) if ratio else float('nan'):.2f} |")
        refs = [r for r in rows if r["baseline"] == b and r.get("reference")]
        print(f"| {b!r} | {ref_steps} (reference) | {statistics.median(r['rel_gap_median'] for r in refs):.2%} | "
              f"{max(r['rel_gap_max'] for r in refs):.2%} | | | | |")


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()
