"""Block sizes on an attention model: explain_text on the embedded MiniLM sentiment model.

``explain_text`` on 32 sentences (the demo's and accuracy benchmark's reviews, repeated), at its
default number of nodes, with ``batch_size`` fixed at 8 ... 256 rows per forward/backward block
and chosen automatically; all interleaved in one process (medians of the rounds). The floor is
the bare forward+backward of the same interpolated rows in one loop over blocks of the best
size, with no integrad code around it.

Usage::

    .venv/bin/python benchmarks/bench_text_blocks.py          # ~3 min on 2 cores
"""

from __future__ import annotations

import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_core as core  # noqa: E402
from accuracy import SENTENCES  # noqa: E402

SIZES = (8, 16, 32, 64, 128, 256)


def main() -> int:
    from integrad.models import load_sentiment_model
    from integrad.text import N_STEPS, explain_text

    torch.set_num_threads(core.THREADS)
    model, tok = load_sentiment_model()
    texts = (SENTENCES * 3)[:32]
    enc = tok(texts, padding=True, return_tensors="pt")
    emb = model.get_input_embeddings()
    with torch.no_grad():
        x = emb(enc["input_ids"])
    base = torch.zeros_like(x)
    mask = enc["attention_mask"]
    rows = len(texts) * N_STEPS
    alphas = torch.rand(rows)
    example = torch.arange(len(texts)).repeat_interleave(N_STEPS)

    def floor(bs: int) -> None:
        for lo in range(0, rows, bs):
            e, a = example[lo:lo + bs], alphas[lo:lo + bs].view(-1, 1, 1)
            z = (base[e] + a * (x[e] - base[e])).requires_grad_(True)
            out = model(inputs_embeds=z, attention_mask=mask[e]).logits[:, 1].sum()
            torch.autograd.grad(out, z)

    res = explain_text(model, tok, texts)
    auto = res[0].result.settings["batch_size"]
    fns = {f"explain_text batch_size={b}": (lambda b=b: explain_text(model, tok, texts, batch_size=b)) for b in SIZES}
    fns[f"explain_text automatic ({auto})"] = lambda: explain_text(model, tok, texts)
    fns |= {f"floor {b}": (lambda b=b: floor(b)) for b in (16, 64)}
    for f in fns.values():
        f()
    times = core.time_rounds(fns, 5)
    med = {k: statistics.median(v) for k, v in times.items()}
    best_floor = min(v for k, v in med.items() if k.startswith("floor"))
    print(f"load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{len(texts)} sentences x {N_STEPS} nodes = {rows} interpolated rows, {x.shape[1]} tokens")
    print("| run | s (median of 5) | vs the best floor |")
    print("|---|---:|---:|")
    for k, v in med.items():
        print(f"| {k} | {v:.2f} | {v / best_floor:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
