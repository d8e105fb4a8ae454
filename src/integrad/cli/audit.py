"""``integrad audit``: the axiom checks of :func:`integrad.audit` on an embedded model.

The plain function :func:`audit_cmd` carries typer defaults; ``integrad.cli`` registers it.
Each embedded model comes with a few of its own examples and the baseline its domain uses:
MNIST digits from black, credit and breast-cancer rows from the training mean, the
``chelsea`` photo from black, and a sentence's word embeddings from PAD's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from .console import HTML, JSON, check_outputs, console, fail, working

MODELS = ("mnist", "german-credit", "breast-cancer", "imagenet", "sentiment")


def audit_cmd(
    model: str = typer.Argument(..., help=f"Embedded model: {', '.join(MODELS)}."),
    examples: int = typer.Option(4, "--examples", help="How many of the model's examples to audit (imagenet: 1)."),
    method: str = typer.Option("integrated_gradients", "--method", help="integrated_gradients, gradient or "
                               "gradient_x_input."),
    rule: Optional[str] = typer.Option(None, "--rule", help="IG's quadrature rule (gausslegendre, ..., piecewise)."),
    n_steps: Optional[int] = typer.Option(None, "--n-steps", help="IG's nodes (default 50)."),
    text: str = typer.Option("A wonderful, moving film with a brilliant cast.", "--text",
                             help="sentiment: the sentence to audit."),
    seed: int = typer.Option(0, "--seed", help="Seed of the perturbation probes."),
    html: Optional[Path] = HTML,
    json_path: Optional[Path] = JSON,
) -> None:
    """Check the attribution axioms (completeness, sensitivity, dummy, linearity, symmetry) and
    invariances (traced copy, batch, chunks, dtype) on an embedded MODEL."""
    from ..axioms import audit

    check_outputs(html=html, json=json_path)
    if model not in MODELS:
        fail(f"MODEL: expected one of {', '.join(MODELS)}; got {model!r}")
    if examples < 1:
        fail(f"--examples: expected an int >= 1; got {examples}")
    kwargs: dict[str, Any] = {}
    if method == "integrated_gradients":
        kwargs = {k: v for k, v in (("rule", rule), ("n_steps", n_steps)) if v is not None}
    elif rule is not None or n_steps is not None:
        fail(f"--rule and --n-steps: IG's options; --method {method} takes neither")
    try:
        with working("loading the model") as step:
            net, x, baseline, target, name = _load(model, examples, text)
            step("auditing")
            report = audit(net, x, method=method, baseline=baseline, target=target, seed=seed, name=name, **kwargs)
    except (ValueError, TypeError, ImportError, OSError) as err:
        fail(str(err))
    console.print(escape(str(report)), highlight=False, soft_wrap=True)
    for flag, path in (("html", html), ("json", json_path)):
        if path is not None:
            try:
                path.write_text(report.to_html() if flag == "html" else report.to_json(), encoding="utf-8")
            except OSError as err:
                fail(f"--{flag}: cannot write {path}: {err}")
            console.print(f"wrote {escape(str(path))}", highlight=False, soft_wrap=True)


def _load(model: str, n: int, text: str):
    """``(module, inputs, baseline, target, name)`` for an embedded model."""
    import torch

    if model == "mnist":
        from ..models import load_mnist_digits, load_mnist_model

        net = load_mnist_model().eval()
        x, _ = load_mnist_digits(n)
        with torch.no_grad():
            target = net(x).argmax(-1)[0].item()  # the first digit's class, for every example (linearity needs one)
        return net, x, 0.0, int(target), "MNIST CNN"
    if model in ("german-credit", "breast-cancer"):
        from ..models import load_tabular_model

        tab = load_tabular_model(model)
        rows = tab.encoded_rows()[list(tab.test_index[:n])]
        return tab.model, rows, tab.encoded_train().mean(0, keepdim=True).expand_as(rows), None, f"{model} MLP"
    if model == "imagenet":
        from ..image import load_image
        from ..models import load_imagenet_model

        net, _ = load_imagenet_model()
        x, _ = load_image("chelsea")
        with torch.no_grad():
            target = int(net(x[None]).argmax(-1))
        return net, x[None], 0.0, target, "EfficientNet-Lite0"
    from ..models import load_sentiment_model

    net, tok = load_sentiment_model()
    enc = tok([text], return_tensors="pt")
    ids = enc["input_ids"]
    table = net.get_input_embeddings()
    special = torch.tensor([tok.cls_token_id, tok.sep_token_id])
    base_ids = torch.where(torch.isin(ids, special), ids, torch.full_like(ids, tok.pad_token_id))
    with torch.no_grad():
        x, b = table(ids), table(base_ids)
        target = int(net(input_ids=ids).logits.argmax(-1))

    class OnEmbeddings(torch.nn.Module):
        """The sentiment classifier as a function of its word embeddings (one unpadded sentence)."""

        def __init__(self, classifier):
            super().__init__()
            self.classifier = classifier

        def forward(self, embeds):
            return self.classifier(inputs_embeds=embeds).logits

    return OnEmbeddings(net), x, b, target, "MiniLM sentiment (word embeddings)"
