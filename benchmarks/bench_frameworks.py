"""integrad on JAX and on Keras/TensorFlow, side by side with a hand-written JAX IG and with Alibi.

Two parts, each timed in one process in interleaved rounds whose order rotates (medians after
warm-up), all with ``method="gausslegendre", n_steps=50``:

``--part jax`` (the project's venv)
    ``integrad.integrated_gradients(f, x, target=t)`` on plain JAX functions of JAX arrays,
    against a hand-written IG, ``jax.jit`` of ``jax.vmap(jax.vmap(jax.grad(...)))`` over all
    steps x examples at once (nodes and weights from ``numpy.polynomial.legendre.leggauss``
    mapped to [0, 1]), and against the floor: one jitted ``jax.grad`` of the summed targets at
    the same ``batch x 50`` points, interpolated beforehand. The first call of each (a fresh
    function, so a fresh compilation) is reported apart from the steady state.
``--part alibi`` (run with /tmp/alibi-env/bin/python: Alibi 0.9.6 pins numpy < 2)
    integrad against ``alibi.explainers.IntegratedGradients(model, layer=..., method=
    "gausslegendre", n_steps=50, internal_batch_size=100).explain(X, baselines=None,
    target=t)`` on tf.keras models built as scripts/make_alibi_fixture.py builds them, at
    the same 100 rows per block and at integrad's automatic block size. Peak memory: a
    fresh child per (case, variant); after imports and the model build the kernel's peak-RSS
    mark is reset, and the child reports the peak RSS of its first call, then of a second
    call, each above the RSS just before it.

torch's thread count is left at its default: integrad itself runs its engine's torch work on
one thread while a JAX or TensorFlow model runs (torch's OpenMP workers spin after each
parallel op, on the cores XLA's and TensorFlow's pools need), and restores the setting after.
So every number is what a user gets. integrad is also timed alone, in rounds of its own, to
show whether interleaving with the other contenders changes its time.

Usage::

    .venv/bin/python benchmarks/bench_frameworks.py --part jax                 # ~35 s on 2 cores
    /tmp/alibi-env/bin/python benchmarks/bench_frameworks.py --part alibi      # ~3 min
    ... --quick          # smoke run (~1 min; the alibi part ~3 min, as its 12 memory children stay)
    ... --no-memory      # alibi part without the memory children (~1 min with --quick)
    ... --out FILE       # also write the Markdown to FILE
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_core as bc  # noqa: E402

N_STEPS, METHOD, IBS = 50, "gausslegendre", 100
FULL = bc.Budget(main_s=8.0, sweep_s=0.0, min_repeats=7, max_repeats=51, warmups=2, quick=False)
QUICK = bc.Budget(main_s=2.0, sweep_s=0.0, min_repeats=3, max_repeats=9, warmups=1, quick=True)
JAX_CASES = [(model, batch) for model in ("small", "wide") for batch in (1, 16, 128)]
ALIBI_CASES = ("mlp5", "mlp128", "emb4", "emb32")
DEFAULT_THREADS = torch.get_num_threads()  # reported only: nothing here changes it


def timed(fns: dict[str, Callable[[], Any]], budget: bc.Budget) -> tuple[dict[str, float], int, dict[str, str]]:
    """Median ms of each function after warm-up, interleaved in rounds that fit the budget, and
    each one's range (min-max ms) as text."""
    warm = bc.time_rounds(fns, budget.warmups)
    rounds = bc.repeats_for(sum(min(v) for v in warm.values()), budget.main_s, budget)
    times = bc.time_rounds(fns, rounds)
    spread = {k: f"{1e3 * min(v):.{_digits(min(v))}f}-{1e3 * max(v):.{_digits(min(v))}f}" for k, v in times.items()}
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}, rounds, spread


def _digits(seconds: float) -> int:
    return 2 if seconds < 0.01 else 1 if seconds < 0.1 else 0


def own_rounds(fns: dict[str, Callable[[], Any]], budget: bc.Budget, rounds: int):
    """``timed`` in rounds of its own (at most ``rounds``, half the time)."""
    return timed(fns, bc.Budget(budget.main_s / 2, 0, budget.min_repeats, rounds, budget.warmups, budget.quick))


def first_call(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def gl_rule() -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]."""
    x, w = np.polynomial.legendre.leggauss(N_STEPS)
    return ((x + 1) / 2).astype(np.float32), (w / 2).astype(np.float32)


# ============================================================================= JAX
JAX_MODELS = {"small": ((8, 16, 3), "tanh"), "wide": ((784, 256, 256, 10), "relu")}


def jax_mlp(name: str):
    """A fresh seeded MLP as a plain function of a JAX array (a new function object each call)."""
    import jax
    import jax.numpy as jnp

    sizes, act = JAX_MODELS[name]
    keys = jax.random.split(jax.random.PRNGKey(0), len(sizes) - 1)
    params = [(jax.random.normal(k, (a, b)) / np.sqrt(a), 0.1 * jax.random.normal(jax.random.fold_in(k, 1), (b,)))
              for k, a, b in zip(keys, sizes, sizes[1:])]
    nonlin = jnp.tanh if act == "tanh" else jax.nn.relu

    def f(x):
        for i, (w, b) in enumerate(params):
            x = x @ w + b
            if i < len(params) - 1:
                x = nonlin(x)
        return x
    return f


def hand_ig(f):
    """IG written directly in JAX: every step x example in one jitted, vmapped program."""
    import jax
    import jax.numpy as jnp

    alphas, weights = (jnp.asarray(a) for a in gl_rule())

    def ig(x, baseline, target):
        def grad_at(z, t):
            return jax.grad(lambda v: f(v[None])[0, t])(z)
        points = baseline[None] + alphas[:, None, None] * (x - baseline)[None]  # (steps, batch, features)
        grads = jax.vmap(jax.vmap(grad_at), in_axes=(0, None))(points, target)
        return (x - baseline) * jnp.tensordot(weights, grads, axes=1)
    return jax.jit(ig)


def jax_floor(f):
    """One jitted forward + backward of the summed targets at given points."""
    import jax
    import jax.numpy as jnp

    return jax.jit(jax.grad(lambda z, t: jnp.take_along_axis(f(z), t[:, None], 1).sum()))


def jax_case(name: str, batch: int, budget: bc.Budget, log) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    import integrad

    sizes, act = JAX_MODELS[name]
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, sizes[0]))
    base = jnp.zeros_like(x)
    t = jnp.arange(batch) % sizes[-1]
    alphas, _ = gl_rule()
    points = (base[None] + jnp.asarray(alphas)[:, None, None] * (x - base)[None]).reshape(-1, sizes[0])
    row_t = jnp.tile(t, N_STEPS)

    def contenders(f):
        hand, floor = hand_ig(f), jax_floor(f)
        return {
            "integrad": lambda: integrad.integrated_gradients(f, x, target=t, method=METHOD, n_steps=N_STEPS),
            "hand": lambda: hand(x, base, t).block_until_ready(),
            "floor": lambda: floor(points, row_t).block_until_ready(),
        }
    # first calls, each on a fresh function object (so a fresh compilation)
    first = {k: first_call(contenders(jax_mlp(name))[k]) for k in ("integrad", "hand", "floor")}
    fns = contenders(jax_mlp(name))
    res = fns["integrad"]()
    diff = bc.max_rel_diff(res.attributions, torch.from_numpy(np.asarray(fns["hand"]())))
    ms, rounds, _ = timed(fns, budget)
    ms2, _, spread = own_rounds({"integrad": fns["integrad"]}, budget, rounds)
    ms["alone"] = ms2["integrad"]
    log(f"  {name} x{batch}: {rounds} rounds; " + ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items())
        + "; first " + ", ".join(f"{k} {v:.2f} s" for k, v in first.items()))
    title = f"{'MLP 8-16-3 tanh' if name == 'small' else 'MLP 784-256-256-10 ReLU'}, {batch} ex."
    return {"title": title, "rows": batch * N_STEPS, "ms": ms, "first": first, "diff": diff, "rounds": rounds,
            "blocks": res.settings["batch_size"], "spread": spread["integrad"]}


def jax_part(budget: bc.Budget, log) -> list[str]:
    import jax
    import jax.numpy as jnp

    import integrad

    # backend start-up and integrad's lazy imports, paid once before anything is timed
    integrad.integrated_gradients(lambda v: jnp.sin(v).sum(1), jnp.ones((2, 3)), n_steps=4)
    results = [jax_case(name, batch, budget, log) for name, batch in JAX_CASES]
    lines = [f"torch threads: the default ({DEFAULT_THREADS}), which integrad sets to 1 during its call; "
             "the last two columns are integrad alone, in rounds of its own", "",
             "| case | rows | floor ms | hand-written ms | integrad ms | integrad / hand | integrad / floor "
             "| integrad alone ms (range) | that / hand |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        m = r["ms"]
        lines.append(f"| {r['title']} | {r['rows']} | {m['floor']:.2f} | {m['hand']:.2f} | {m['integrad']:.2f} "
                     f"| **{m['integrad'] / m['hand']:.2f}x** | {m['integrad'] / m['floor']:.2f}x "
                     f"| {m['alone']:.2f} ({r['spread']}) | {m['alone'] / m['hand']:.1f}x |")
    lines += ["", "| case | first call s: integrad | hand-written | floor | integrad rows/block | repeats "
              "| max rel diff integrad vs hand |", "|---|---:|---:|---:|---|---:|---:|"]
    for r in results:
        fc = r["first"]
        lines.append(f"| {r['title']} | {fc['integrad']:.2f} | {fc['hand']:.2f} | {fc['floor']:.2f} | {r['blocks']} "
                     f"| {r['rounds']} | {r['diff']:.1e} |")
    return lines + ["", f"- software: jax {jax.__version__}, torch {torch.__version__}, numpy {np.__version__}"]


# ============================================================================= Keras / Alibi
def keras_case(name: str):
    """(model, X, target, layer, title), seeded as scripts/make_alibi_fixture.py seeds them."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    if name.startswith("mlp"):
        inp = tf.keras.Input(shape=(8,), dtype="float32", name="x")
        h = tf.keras.layers.Dense(16, activation="tanh", name="hidden")(inp)
        model = tf.keras.Model(inp, tf.keras.layers.Dense(3, name="logits")(h), name="mlp")
        rows = 5 if name == "mlp5" else 128
        x = np.random.default_rng(0).normal(size=(rows, 8)).astype(np.float32)
        t = np.array([0, 1, 2, 1, 0]) if rows == 5 else np.arange(rows) % 3
        return model, x, t, None, f"Keras MLP 8-16-3 tanh, {rows} rows"
    vocab, dim, tokens, hidden, rows = (50, 8, 10, 0, 4) if name == "emb4" else (5000, 64, 128, 64, 32)
    tok = tf.keras.Input(shape=(tokens,), dtype="int32", name="tokens")
    emb = tf.keras.layers.Embedding(vocab, dim, name="embedding")(tok)
    h = tf.keras.layers.GlobalAveragePooling1D(name="pool")(emb)
    if hidden:
        h = tf.keras.layers.Dense(hidden, activation="relu", name="dense")(h)
    model = tf.keras.Model(tok, tf.keras.layers.Dense(2, name="logits")(h), name="emb")
    x = np.random.default_rng(1).integers(1, vocab, size=(rows, tokens)).astype(np.int32)
    head = f"-> Dense({hidden}, relu) " if hidden else ""
    title = f"Embedding({vocab}, {dim}) -> mean {head}-> Dense(2), {rows} x {tokens} tokens, layer IG"
    return model, x, np.arange(rows) % 2, model.layers[1], title


def alibi_contenders(name: str) -> tuple[dict[str, Callable[[], Any]], str]:
    from alibi.explainers import IntegratedGradients

    import integrad

    model, x, t, layer, title = keras_case(name)
    explainer = IntegratedGradients(model, layer=layer, method=METHOD, n_steps=N_STEPS, internal_batch_size=IBS)

    def ours(batch_size):
        return lambda: integrad.integrated_gradients(model, x, target=t, method=METHOD, n_steps=N_STEPS,
                                                     batch_size=batch_size, layer=layer)
    return {"alibi": lambda: explainer.explain(x, baselines=None, target=t),
            "integrad@100": ours(IBS), "integrad auto": ours(None)}, title


def memory_child(name: str, variant: str) -> dict[str, Any]:
    """Peak RSS (MB) of a first and a second call, each above the RSS just before it."""
    import resource

    import alibi.explainers  # noqa: F401  the same imports in every child, so baselines compare
    import integrad.backends.tensorflow  # noqa: F401
    import integrad.methods.ig  # noqa: F401

    call = alibi_contenders(name)[0][variant]
    out = {}
    for which in ("first", "second"):
        reset = bc._reset_peak_rss()
        before = bc._status_kib("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        call()
        peak = bc._status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out[which] = max(0, peak - before) / 1024
    return out | {"exact": reset}


def measure_memory(name: str, variant: str) -> dict[str, float]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(256 * 1024))  # as bench_core: RSS tracks live arrays
    cmd = [sys.executable, os.path.abspath(__file__), "--_memory-child", json.dumps([name, variant])]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    sys.stderr.write(f"memory child {name}/{variant} failed:\n{proc.stderr[-2000:]}\n")
    return {"first": float("nan"), "second": float("nan")}


def alibi_case(name: str, budget: bc.Budget, memory: bool, log) -> dict[str, Any]:
    fns, title = alibi_contenders(name)
    ref = fns["alibi"]().data["attributions"][0]
    ours = {k: fns[k]() for k in ("integrad@100", "integrad auto")}
    diff = max(bc.max_rel_diff(r.attributions, torch.from_numpy(np.asarray(ref))) for r in ours.values())
    ms, rounds, _ = timed(fns, budget)
    ms2, _, spread = own_rounds({k: fns[k] for k in ours}, budget, rounds)
    log(f"  {name}: {rounds} rounds; " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
        + "; alone: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms2.items()))
    mem = {v: measure_memory(name, v) for v in fns} if memory else {}
    if mem:
        log("  peak MB (first, second call): " + ", ".join(f"{k} {v['first']:.1f}, {v['second']:.1f}"
                                                            for k, v in mem.items()))
    rows = ref.shape[0] * N_STEPS
    return {"title": title, "rows": rows, "ms": ms, "ms2": ms2, "diff": diff, "rounds": rounds, "mem": mem,
            "auto": ours["integrad auto"].settings["batch_size"].replace("auto (", "").rstrip(")"), "spread": spread}


def alibi_part(budget: bc.Budget, memory: bool, log) -> list[str]:
    import alibi
    import keras
    import tensorflow as tf

    results = [alibi_case(name, budget, memory, log) for name in ALIBI_CASES]
    lines = [f"Interleaved rounds, torch threads {DEFAULT_THREADS} (the default; integrad uses 1 during its call):", "",
             "| case | rows | Alibi ms | integrad@100 ms | @100 / Alibi | integrad auto ms (rows/block) "
             "| auto / Alibi | max rel diff vs Alibi | repeats |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        m, a = r["ms"], r["ms"]["alibi"]
        lines.append(f"| {r['title']} | {r['rows']} | {a:.1f} | {m['integrad@100']:.1f} "
                     f"| **{m['integrad@100'] / a:.2f}x** | {m['integrad auto']:.1f} ({r['auto']}) "
                     f"| {m['integrad auto'] / a:.2f}x | {r['diff']:.1e} | {r['rounds']} |")
    lines += ["", "integrad alone, in rounds of its own (ratios to the Alibi column above):", "",
              "| case | integrad@100 ms (range) | @100 / Alibi | integrad auto ms (range) | auto / Alibi |",
              "|---|---:|---:|---:|---:|"]
    for r in results:
        m2, a, sp = r["ms2"], r["ms"]["alibi"], r["spread"]
        lines.append(f"| {r['title']} | " + " | ".join(f"{m2[k]:.1f} ({sp[k]}) | {m2[k] / a:.2f}x" for k in m2) + " |")
    if memory:
        variants = ("alibi", "integrad@100", "integrad auto")
        lines += ["", "Peak RSS above the RSS before the call, MB (a fresh child per case and variant):", "",
                  "| case | first call: Alibi | integrad@100 | integrad auto | second call: Alibi | integrad@100 "
                  "| integrad auto |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in results:
            lines.append(f"| {r['title']} | "
                         + " | ".join(f"{r['mem'][v][w]:.1f}" for w in ("first", "second") for v in variants) + " |")
    return lines + ["", f"- software: alibi {alibi.__version__}, tensorflow {tf.__version__}, keras "
                        f"{keras.__version__}, torch {torch.__version__}, numpy {np.__version__}"]


# ============================================================================= report
def machine_lines(argv: list[str]) -> list[str]:
    cpu = platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return [f"- machine: {cpu}, {os.cpu_count()} logical cores; Python {platform.python_version()}",
            f"- date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- command: `{' '.join([sys.executable] + argv)}`",
            f"- load average at start (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}"]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--_memory-child"]:
        print(json.dumps(memory_child(*json.loads(argv[1]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("jax", "alibi"), required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    header = machine_lines(["benchmarks/bench_frameworks.py"] + argv)
    budget = QUICK if args.quick else FULL
    body = jax_part(budget, log) if args.part == "jax" else alibi_part(budget, not args.no_memory, log)
    footer = [f"- load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"total {time.perf_counter() - started:.0f} s"]
    report = "\n".join(body + header + footer) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
