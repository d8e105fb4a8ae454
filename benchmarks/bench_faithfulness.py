"""Faithfulness of integrad's attribution methods on the embedded models, and against known truths.

One table of methods x metrics (``integrad.metrics``) on the embedded models:

* German credit and breast cancer MLPs (GELU), every test row, float64, baseline = the mean
  encoded training row (IG's start, the value a deleted feature takes, and the subset
  perturbation's fill);
* the MNIST CNN (ReLU), real digits, black baseline, predicted class;
* EfficientNet-Lite0 (ReLU6), two sample photos, black baseline, predicted class;
* the MiniLM sentiment model through ``explain_text`` (PAD baseline, predicted class).

Metrics (mean over the examples): deletion and insertion AUC on the target's probability
(sigmoid for the tabular logit, softmax otherwise; features ranked by signed attribution, a
pixel's channels summed; 20 steps), infidelity with the default Gaussian perturbation
(sigma 0.1) and with the subset perturbation (each feature set to the baseline with
probability 0.5; the one Yeh et al. pair with IG-type attributions), both on the attributed
logit, 10 draws, seed 0; sensitivity_max (uniform noise of radius 0.02, seed 0, a few draws);
the model-randomisation check's Spearman correlation after re-initialising every layer; and on
the sentiment model ERASER comprehensiveness and sufficiency (tokens deleted, bins 1-50%).

Then the ground-truth rows of ``benchmarks/bench_groundtruth.py`` (its ``score``), on the
OpenXAI-style synthetic data and the unit models.

Usage::

    .venv/bin/python benchmarks/bench_faithfulness.py                            # ~8 min on 2 cores
    .venv/bin/python benchmarks/bench_faithfulness.py --quick                    # smoke run, ~1-2 min
    .venv/bin/python benchmarks/bench_faithfulness.py --out docs/faithfulness.md # the tables between markers
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

import integrad
from integrad import metrics as fm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# An explanation: (model, inputs, target) -> (attributions of the inputs' shape, gradient evaluations per example).
Explain = Callable[[Any, torch.Tensor, Any], tuple[torch.Tensor, float]]


def SOFTMAX(out: torch.Tensor) -> torch.Tensor:
    return out.softmax(-1)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Case:
    """One embedded model, the examples it is measured on, and the methods that explain it."""

    key: str
    title: str
    model: torch.nn.Module
    x: torch.Tensor
    target: Any
    baseline: Any  # what a deleted feature becomes (and IG's start)
    head: Callable
    head_name: str
    methods: dict[str, Explain]
    pixels: bool = False  # curves rank pixels (channels summed), not elements
    n_sens: int = 5
    sens_skip: dict[str, str] = field(default_factory=dict)  # method -> reason
    randomise: str | None = None  # None: run; else the reason it is not run
    insert_from: Any = None  # insertion's starting point (None: baseline)


def _evals(res) -> float:
    return float(res.n_evals.double().mean())


def _rows(target, x):
    """The target for ``x`` when it holds each original example repeated (sensitivity_max's blocks)."""
    if target is None or isinstance(target, int):
        return target
    return target.repeat_interleave(x.shape[0] // target.shape[0])


def common_methods(baseline, *, smooth: dict, eg_refs=None, captum_batch=None,
                   n_steps: int = 50) -> dict[str, Explain]:
    """integrad IG (defaults), SmoothGrad-IG, EG (when references), Captum IG (defaults), gradient x input."""
    from captum.attr import IntegratedGradients

    def ig(m, x, t):
        # n_steps=50 is integrated_gradients' default (Gauss-Legendre); given for --quick's smaller one
        r = integrad.integrated_gradients(m, x, baseline=baseline, target=t, n_steps=n_steps)
        return r.attributions.detach(), _evals(r)

    def sg(m, x, t):
        r = integrad.smoothgrad(m, x, baseline=baseline, target=t, seed=0, **smooth)
        return r.attributions.detach(), _evals(r)

    def eg(m, x, t):
        r = integrad.expected_gradients(m, x, references=eg_refs, n_samples=64, seed=0, target=t)
        return r.attributions.detach(), _evals(r)

    def captum(m, x, t):
        base = baseline if isinstance(baseline, float) else baseline.expand_as(x)
        a = IntegratedGradients(m).attribute(x, baselines=base, target=t, internal_batch_size=captum_batch)
        return a.detach(), 50.0

    out = {f"integrad IG (GL {n_steps})": ig,
           f"integrad SmoothGrad-IG ({smooth['n_samples']} x GL {smooth.get('n_steps', 50)})": sg}
    if eg_refs is not None:
        out["integrad Expected Gradients (64)"] = eg
    out["Captum IntegratedGradients (GL 50)"] = captum
    out["gradient x (input - baseline)"] = lambda m, x, t: (grad_x_input(m, x, t, baseline), 1.0)
    return out


def grad_x_input(m, x, t, baseline) -> torch.Tensor:
    z = x.clone().requires_grad_(True)
    out = m(z)
    s = out if t is None else out.gather(1, torch.as_tensor(t).reshape(-1, 1).expand(out.shape[0], 1))
    g, = torch.autograd.grad(s.sum(), z)
    return (g * (x - baseline)).detach()


def tabular_case(name: str, quick: bool) -> Case:
    from integrad.models import load_tabular_model

    tm = load_tabular_model(name, dtype=torch.float64)
    rows = tm.encoded_rows()
    x = rows.index_select(0, torch.as_tensor(tm.test_index[:40 if quick else None]))
    train = tm.encoded_train()
    base = train.mean(0)
    methods = common_methods(base, smooth={"n_samples": 8, "noise": 0.15, "n_steps": 50}, eg_refs=train)
    return Case(name, f"{name} MLP (GELU), {x.shape[0]} test rows, float64, baseline: mean training row", tm.model,
                x, None, base, torch.sigmoid, "sigmoid of the logit", methods, n_sens=3 if quick else 10)


def mnist_case(quick: bool) -> Case:
    from integrad.image import BLUR_SIGMA
    from integrad.models import load_mnist_digits, load_mnist_model

    model = load_mnist_model().eval()
    n = 8 if quick else 32
    digits, _ = load_mnist_digits(n + 16)
    x, refs = digits[:n], digits[n:]
    with torch.no_grad():
        target = model(x).argmax(-1)
    methods = common_methods(0.0, smooth={"n_samples": 8, "noise": 0.15, "n_steps": 50}, eg_refs=refs)
    sigma = BLUR_SIGMA * 28 / 224  # the image domain's largest blur, scaled to 28 pixels
    guided = 50 if quick else 200

    def blur(m, z, t):
        r = integrad.blur_ig(m, z, max_sigma=sigma, target=t, n_steps=50)
        return r.attributions.detach(), _evals(r)

    def guided_ig(m, z, t):
        r = integrad.guided_ig(m, z, target=t, n_steps=guided)
        return r.attributions.detach(), _evals(r)

    def idgi(m, z, t):
        r = integrad.idgi(m, z, target=t, n_steps=50)
        return r.attributions.detach(), _evals(r)

    methods = {**methods, f"integrad Blur IG (sigma {sigma:g}, 50)": blur, f"integrad Guided IG ({guided})": guided_ig,
               "integrad IDGI (50)": idgi}
    return Case("mnist", f"MNIST CNN (ReLU, max-pool), {n} digits, black baseline, predicted class; EG references: "
                "16 other digits", model, x, target, 0.0, SOFTMAX, "softmax", methods, pixels=True,
                n_sens=3 if quick else 5)


def effnet_case(quick: bool) -> Case:
    from integrad.baselines import blurred
    from integrad.image import BLUR_SIGMA, GUIDED_STEPS, load_image
    from integrad.models import load_imagenet_model

    model, _ = load_imagenet_model()
    model.eval()
    names = ("chelsea",) if quick else ("chelsea", "coffee")
    side = 224
    x = torch.stack([load_image(n)[0] for n in names])
    with torch.no_grad():
        target = model(x).argmax(-1)
    # Guided IG walks its steps one after another: half the paper's GUIDED_STEPS (200) on this model
    n_ig, n_guided = (8, 8) if quick else (50, GUIDED_STEPS // 2)
    methods = common_methods(0.0, smooth={"n_samples": 4, "noise": 0.15, "n_steps": 4 if quick else 16},
                             captum_batch=25, n_steps=n_ig)

    def blur(m, z, t):
        r = integrad.blur_ig(m, z, max_sigma=BLUR_SIGMA, target=t, n_steps=n_ig)
        return r.attributions.detach(), _evals(r)

    def guided_ig(m, z, t):
        r = integrad.guided_ig(m, z, target=t, n_steps=n_guided)
        return r.attributions.detach(), _evals(r)

    def idgi(m, z, t):
        r = integrad.idgi(m, z, target=t, n_steps=n_ig)
        return r.attributions.detach(), _evals(r)

    methods = {**methods, f"integrad Blur IG (sigma {BLUR_SIGMA:g}, {n_ig})": blur,
               f"integrad Guided IG ({n_guided})": guided_ig, f"integrad IDGI ({n_ig})": idgi}
    # insertion starts from a blurred copy (Petsiuk et al.; explain_image's "blur" baseline, sigma
    # side / 16): from black the probability stays near 0 until the last step for every method
    return Case("effnet", f"EfficientNet-Lite0 (ReLU6), photos {', '.join(names)}, black baseline, predicted class; "
                f"insertion from a blurred copy (sigma {side / 16:g} px)", model, x, target, 0.0, SOFTMAX, "softmax",
                methods, pixels=True, n_sens=2 if quick else 3, insert_from=blurred(x, side / 16))


def measure(case: Case, quick: bool) -> list[dict[str, str]]:
    rows = []
    steps = 10 if quick else 20
    for name, fn in case.methods.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, evals = fn(case.model, case.x, case.target)
        secs = time.perf_counter() - t0
        ranked = a.sum(1, keepdim=True) if case.pixels else a
        kw = dict(target=case.target, baseline=case.baseline)
        dele = fm.deletion_auc(case.model, case.x, ranked, head=case.head, steps=steps, **kw).auc.mean()
        start = case.baseline if case.insert_from is None else case.insert_from
        ins = fm.insertion_auc(case.model, case.x, ranked, head=case.head, steps=steps, target=case.target,
                               baseline=start).auc.mean()
        inf_n = fm.infidelity(case.model, case.x, a, target=case.target, n_perturb=10, seed=0).mean()
        inf_s = fm.infidelity(case.model, case.x, a, perturb="subset", n_perturb=10, seed=0, **kw).mean()
        if name in case.sens_skip:
            sens = case.sens_skip[name]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = fm.sensitivity_max(lambda z: fn(case.model, z, _rows(case.target, z))[0], case.x,
                                       n_perturb=case.n_sens, seed=0)
            sens = f"{float(s.mean()):.3g}"
        rows.append({"model": case.key, "method": name, "evals": f"{evals:.0f}", "seconds": f"{secs:.2f}",
                     "del": f"{float(dele):.3f}", "ins": f"{float(ins):.3f}", "inf_n": f"{float(inf_n):.3g}",
                     "inf_s": f"{float(inf_s):.3g}", "sens": sens, "rand": case.randomise or
                     randomisation(case.model, case.x, lambda m, z: fn(m, z, case.target)[0]),
                     "comp": "— (text only)", "suff": "— (text only)"})
        log(f"{case.key}: {name}: {secs:.0f} s to explain; row done at {time.perf_counter() - t0:.0f} s")
    return rows


def randomisation(model, x, explain) -> str:
    # layers=[""] re-initialises every layer at once: the end state of the cascade (same draws
    # per layer kind), for two explanations instead of one per layer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = fm.randomisation_check(model, x, explain, layers=[""], seed=0)
    return f"{float(r.rank_correlation[-1].nanmean()):.2f} / {float(r.rank_correlation_abs[-1].nanmean()):.2f}"


def text_rows(quick: bool) -> list[dict[str, str]]:
    from accuracy import SENTENCES
    from captum.attr import LayerIntegratedGradients

    from integrad.models import load_sentiment_model
    from integrad.text import N_STEPS, explain_text

    model, tok = load_sentiment_model()
    model.eval()
    texts = SENTENCES[:4] if quick else SENTENCES
    enc = tok(texts, padding=True, return_tensors="pt", return_special_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    special = enc["special_tokens_mask"].bool()
    keep = special | (mask == 0)
    base_ids = torch.where(keep, ids, torch.full_like(ids, tok.pad_token_id))  # explain_text's "pad" baseline
    with torch.no_grad():
        target = model(ids, attention_mask=mask).logits.argmax(-1)

    def through_text(**kw):
        def run(m, _ids):
            exs = explain_text(m, tok, texts, **kw)
            return torch.cat([e.result.attributions.sum(-1) for e in exs]).detach().double(), _evals(exs[0].result)
        return run

    def captum(m, _ids):
        lig = LayerIntegratedGradients(lambda i, am: m(i, attention_mask=am).logits, m.get_input_embeddings())
        a = lig.attribute(ids, baselines=base_ids, target=target, additional_forward_args=(mask,))
        return a.sum(-1).detach().double(), 50.0

    def gxi(m, _ids):
        emb = m.get_input_embeddings()
        e = emb(ids).detach().requires_grad_(True)
        out = m(inputs_embeds=e, attention_mask=mask).logits.gather(1, target[:, None])
        g, = torch.autograd.grad(out.sum(), e)
        return (g * (e - emb(base_ids))).sum(-1).detach().double(), 1.0

    smooth = 2 if quick else 4
    methods = {f"integrad IG via explain_text (GL {N_STEPS})": through_text(),
               f"integrad SmoothGrad-IG via explain_text ({smooth} x GL {N_STEPS})": through_text(smooth=smooth),
               "integrad Expected Gradients": None,
               "Captum LayerIntegratedGradients (GL 50)": captum,
               "gradient x (embedding - baseline)": gxi}
    ids_only = "not run (token ids)"
    rows = []
    for name, fn in methods.items():
        if fn is None:
            rows.append({"model": "sentiment", "method": name, "evals": "—", "seconds": "—",
                         **{k: "not run (no reference texts)" for k in
                            ("del", "ins", "inf_n", "inf_s", "sens", "rand", "comp", "suff")}})
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, evals = fn(model, ids)
        secs = time.perf_counter() - t0
        kw = dict(attention_mask=mask, special_tokens_mask=special, target=target)
        comp = fm.comprehensiveness(model, ids, a, **kw).score.mean()
        suff = fm.sufficiency(model, ids, a, **kw).score.mean()
        rand = randomisation(model, ids, lambda m, z: fn(m, z)[0])
        rows.append({"model": "sentiment", "method": name, "evals": f"{evals:.0f}", "seconds": f"{secs:.2f}",
                     "del": ids_only, "ins": ids_only, "inf_n": ids_only, "inf_s": ids_only, "sens": ids_only,
                     "rand": rand, "comp": f"{float(comp):.3f}", "suff": f"{float(suff):.3f}"})
        log(f"sentiment: {name}: {secs:.0f} s to explain; row done at {time.perf_counter() - t0:.0f} s")
    return rows


COLUMNS = [("model", "model"), ("method", "method"), ("evals", "evals/example"), ("seconds", "s to explain"),
           ("del", "deletion AUC ↓"), ("ins", "insertion AUC ↑"), ("inf_n", "infidelity, noise ↓"),
           ("inf_s", "infidelity, subset ↓"), ("sens", "sensitivity_max ↓"),
           ("rand", "randomised ρ signed / abs ↓"), ("comp", "comprehensiveness ↑"), ("suff", "sufficiency ↓")]


def groundtruth_rows(quick: bool) -> list[list[str]]:
    """bench_groundtruth's table (its ``score``, same sizes; 60 rows per model with --quick)."""
    import bench_groundtruth as bg

    from integrad import groundtruth as gt

    n_exp, dt = (60 if quick else bg.N_EXPLAINED), bg.DT
    data = gt.synthetic(bg.N_ROWS, bg.N_FEATURES, bg.N_CLUSTERS, seed=0, dtype=dt)
    f = data.model(probability=True)
    x, c, refs = data.X[:n_exp], data.cluster[:n_exp], data.X[-bg.N_REFS:]
    zero = torch.zeros(bg.N_FEATURES, dtype=dt)
    eg_exact = torch.stack([f.exact_ig(x, c, r) for r in refs]).mean(0)
    table = bg.score("synthetic (OpenXAI), k=5", f, x, (c,), 5, data.true_attr[:n_exp],
                     {"ig": f.exact_ig(x, c, zero), "eg": eg_exact}, refs, zero)
    units = [(gt.weighted_features(), None), (gt.pertinent_negative(), None), (gt.pertinent_negative(), "present"),
             (gt.shattered_gradients(), None), (gt.interacting_pair(), None)]
    for model, variant in units:
        model = model.to(dt)
        x = model.sample(n_exp, seed=1, dtype=dt)
        refs = model.sample(bg.N_REFS, seed=2, dtype=dt)
        base = (model.negative != 0).to(dt) if variant == "present" else torch.zeros(model.n_features, dtype=dt)
        truth = model.truth(x, base)
        eg_exact = torch.stack([model.truth(x, r) for r in refs]).mean(0)
        label = f"{model.name}{', baseline x_k=1' if variant else ''}, k={model.k}"
        table += bg.score(label, model, x, (), model.k, truth, {"ig": truth, "eg": eg_exact}, refs, base)
    log("ground truth: done")
    return table


def markdown(rows: list[dict[str, str]], cases: list[str], gt_rows: list[list[str]], n_gt: int) -> str:
    out = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    last = None
    for r in rows:
        cells = [r[k] for k, _ in COLUMNS]
        if r["model"] == last:
            cells[0] = ""
        last = r["model"]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", *(f"- **{c}**" for c in cases), "",
            f"Ground truth (`bench_groundtruth.score`, {n_gt} rows per model, float64, zero baseline; FA/RA/SA: "
            "top-k agreement with the truth ↑; PGI ↑ / PGU ↓: output change under N(0, 0.1²) noise on the top-k / "
            "other features):", ""]
    head = ["model", "method", "FA ↑", "RA ↑", "SA ↑", "PGI ↑", "PGU ↓", "max abs err", "evals/row"]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in gt_rows]
    return "\n".join(out)


START = "<!-- faithfulness table: written by benchmarks/bench_faithfulness.py -->"
END = "<!-- end of the faithfulness table -->"


def write(path: str, text: str) -> None:
    """Replace the table between the markers of ``path`` (or write a new file with them)."""
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else f"{START}\n{END}\n"
    if START not in old or END not in old:
        raise SystemExit(f"--out: {path} has no table markers ({START!r} ... {END!r})")
    before, rest = old.split(START, 1)
    after = rest.split(END, 1)[1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{before}{START}\n{text}\n{END}{after}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="german-credit,breast-cancer,mnist,sentiment,effnet,groundtruth")
    p.add_argument("--quick", action="store_true", help="fewer examples and steps (a smoke run)")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(2)
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    rows, titles, gt_rows = [], [], []
    for key in args.models.split(","):
        log(f"{key} ...")
        if key == "sentiment":
            rows += text_rows(args.quick)
            titles.append("sentiment: MiniLM-L6 (GELU, attention), `explain_text`, "
                          f"{4 if args.quick else 12} sentences, PAD baseline, predicted class; ERASER deletes "
                          "the erased tokens; the randomisation check re-runs each method on the re-initialised "
                          "model")
        elif key == "groundtruth":
            gt_rows = groundtruth_rows(args.quick)
        else:
            case = mnist_case(args.quick) if key == "mnist" else effnet_case(args.quick) if key == "effnet" \
                else tabular_case(key, args.quick)
            rows += measure(case, args.quick)
            titles.append(f"{case.key}: {case.title}; curves on the {case.head_name}; sensitivity_max with "
                          f"{case.n_sens} draws")
    wall = time.perf_counter() - start
    head = (f"Measured {_dt.date.today()} on {platform.machine()} ({os.cpu_count()} cores) with "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}, integrad {integrad.__version__}; "
            f"{wall:.0f} s wall{' (--quick)' if args.quick else ''}; load average {load0:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end.\n\n"
            f"Command: `.venv/bin/python benchmarks/bench_faithfulness.py{' --quick' if args.quick else ''}"
            f"{'' if args.models == p.get_default('models') else ' --models ' + args.models}`\n\n")
    n_gt = 60 if args.quick else __import__("bench_groundtruth").N_EXPLAINED
    text = head + markdown(rows, titles, gt_rows, n_gt)
    print(text)
    if args.out:
        write(args.out, text)


if __name__ == "__main__":
    main()
