"""Expected Gradients: IG with the baseline and the path position both drawn at random."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ..core import checks as C
from ..core.paths import IndexedLine
from ..core.result import Attribution
from ..core.sampled import draw, integrate_sampled
from ._job import vocabulary, Job, check_count, distinct, mean_by, sampling_error, shape_output

__all__ = ["expected_gradients"]


@vocabulary
def expected_gradients(
    model: Callable[..., Any],
    inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    references: torch.Tensor | Sequence[torch.Tensor],
    n_samples: int = 64,
    sampler: str = "random",
    seed: int | torch.Generator = 0,
    target: Any = None,
    targets: Sequence[Any] | str | None = None,
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: dict[str, Any] | None = None,
    layer: torch.nn.Module | Sequence[torch.nn.Module] | None = None,
    layer_input: bool = False,
    neuron: tuple[torch.nn.Module, Any] | None = None,
    multiply_by_inputs: bool = True,
    max_memory: int | None = None,
) -> Attribution:
    r"""Expected Gradients: the expectation of IG over baselines drawn from ``references``.

    .. math:: \mathrm{EG}_i(x) = \mathop{\mathbb{E}}_{x' \sim D,\ \alpha \sim U(0, 1)}
              \Big[(x_i - x'_i)\, \frac{\partial F(x' + \alpha (x - x'))}{\partial x_i}\Big]

    Each of ``n_samples`` samples per example draws a reference ``x'`` from ``references``
    and a position ``alpha``, and costs one gradient evaluation. Completeness holds in
    expectation: ``sum(attributions) = F(x) - E[F(x')]``, with ``f_baseline`` the mean of F
    over the drawn references; ``delta`` shows the sampling error of that sum and
    ``stderr`` the standard error of every attribution.

    Parameters
    ----------
    model, inputs, target, targets, head, batch_size, forward_args, forward_kwargs, layer, layer_input, neuron, multiply_by_inputs, max_memory
        As in :func:`integrad.integrated_gradients`.
    references : Tensor ``(K, *features)``, or a tuple of them (one per input)
        The distribution of baselines, e.g. training rows; in input space also with ``layer``.
    n_samples : int
        Samples (gradient evaluations) per example.
    sampler : {"random", "sobol"}
        ``"random"`` (default): independent uniform draws, with the i.i.d. ``stderr``;
        ``"sobol"``: a Sobol sequence over (reference, alpha) in 8 randomly shifted
        replicates, whose spread gives ``stderr``. Measured on the credit MLP and the MNIST
        CNN (docs/benchmarks_family.md), sobol's error was only 2-6% lower, and its stderr,
        from 8 replicates, varied more from seed to seed: hence the default.
    seed : int or torch.Generator
        All draws come from it; the global RNG is never touched.

    Returns
    -------
    Attribution
        With ``stderr`` shaped like ``attributions``.

    Examples
    --------
    >>> import torch, integrad
    >>> w = torch.tensor([1.0, -2.0, 3.0])
    >>> refs = torch.zeros(4, 3)
    >>> res = integrad.expected_gradients(lambda x: x @ w, torch.ones(1, 3), references=refs, n_samples=8)
    >>> res.attributions
    tensor([[ 1., -2.,  3.]])

    References
    ----------
    Erion, Janizek, Sturmfels, Lundberg & Lee, "Improving performance of deep learning models
    with axiomatic attribution priors and expected gradients", Nature Machine Intelligence 3, 2021.
    Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017
    (GradientSHAP).
    """
    job = Job(model, inputs, target=target, targets=targets, head=head, forward_args=forward_args,
              forward_kwargs=forward_kwargs, layer=layer, layer_input=layer_input, neuron=neuron,
              batch_size=batch_size, max_memory=max_memory)
    C.check_inputs_finite(job.xs, job.was_tuple)
    gen = generator(seed)
    refs = _references(job.own(references), job)
    check_count(n_samples, "n_samples")
    with job.model.guard():
        job.resolve_targets()
        out = run_eg(job, refs, n_samples, sampler, gen, multiply_by_inputs)
    settings = {"method": "expected_gradients", "n_samples": n_samples, "sampler": sampler,
                "seed": seed if isinstance(seed, int) else "generator"} | job.describe()
    settings["baseline"] = f"{refs[0].shape[0]} references"
    return Attribution(
        attributions=shape_output(job, out["attrs"]), stderr=shape_output(job, out["stderr"]),
        delta=out["delta"], f_x=out["f_x"], f_baseline=out["f_baseline"], n_evals=out["n_evals"], settings=settings,
        error=sampling_error(out["attrs"], out["stderr"], out["delta"].dim()))


def run_eg(job: Job, refs: tuple[torch.Tensor, ...], n_samples: int, sampler: str, gen: torch.Generator,
           multiply: bool = True) -> dict[str, Any]:
    """EG for every example of ``job``: attributions, stderr, completeness per example."""
    m, B, K = job.model, job.batch, refs[0].shape[0]
    device = job.xs[0].device
    ref, alpha, group = draw(B, n_samples, K, sampler, gen)
    owner = torch.arange(B, device=device).repeat_interleave(n_samples)
    ref = ref.reshape(-1).to(device)
    # F at a reference depends on the example only through batch-first extra arguments
    shared = not any(isinstance(a, torch.Tensor) and a.dim() > 0 and a.shape[0] == m.fwd_batch
                     for a in (*m.fwd_args, *m.fwd_kwargs.values()))
    # the distinct start points only: samples x references rows are never stored
    pick, index = distinct(ref if shared else owner * K + ref, owner)
    starts = tuple(r.index_select(0, ref.index_select(0, pick)) for r in refs)
    ends, f_x, st_u, f_u, _ = job.points(owner.index_select(0, pick), starts)
    path = IndexedLine(ends, st_u, owner, index)
    n_groups = int(group.max()) + 1
    m.plan(job.batch_size, job.max_memory, path.rows, sum(e[:1].numel() * e.element_size() for e in ends))
    mean, stderr, _, slopes = integrate_sampled(m, path, alpha.reshape(-1).to(device=device, dtype=m.dtype),
                                                group.repeat(B).to(device), n_groups, B, multiply)
    f_b = mean_by(f_u.index_select(0, index), owner, B)
    shapes = [e.shape[1:] for e in ends]
    sizes = [s.numel() for s in shapes]
    axis = (m.k,) if m.targets.many else ()  # the sampler keeps a target axis; one target drops it
    attrs = tuple(a.reshape(B, *axis, *s) for a, s in zip(mean.split(sizes, 2), shapes))
    errs = tuple(a.reshape(B, *axis, *s) for a, s in zip(stderr.split(sizes, 2), shapes))
    slope = mean_by(slopes, owner, B).reshape(B, *axis)
    delta = (slope - (f_x.double() - f_b.double())).to(f_x.dtype)
    return {"attrs": attrs, "stderr": errs, "delta": delta, "f_x": f_x, "f_baseline": f_b,
            "n_evals": torch.full((B,), n_samples, dtype=torch.int64)}


def _references(references: Any, job: Job) -> tuple[torch.Tensor, ...]:
    """One ``(K, *features_i)`` tensor per input, on the inputs' device and dtype."""
    refs = tuple(references) if isinstance(references, (tuple, list)) else (references,)
    if len(refs) != len(job.xs):
        raise ValueError(f"references: {len(refs)} reference tensors for {len(job.xs)} inputs; expected one "
                         "(K, ...) tensor per input")
    out = []
    for i, (r, x) in enumerate(zip(refs, job.xs)):
        name = f"references[{i}]" if len(refs) > 1 else "references"
        if not isinstance(r, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor of shape (K, {', '.join(map(str, x.shape[1:]))}); got "
                            f"{type(r).__name__}")
        if r.dim() != x.dim() or r.shape[1:] != x.shape[1:] or r.shape[0] == 0:
            raise ValueError(f"{name}: expected shape (K, {', '.join(map(str, x.shape[1:]))}) with K >= 1 "
                             f"(one example's shape, stacked); got {C.shape(r)}")
        if r.is_floating_point() and not torch.isfinite(r).all():
            raise ValueError(f"{name}: contains NaN or Inf")
        out.append(r.to(device=x.device, dtype=x.dtype))
    if len({r.shape[0] for r in out}) != 1:
        raise ValueError(f"references: the tensors hold different numbers of rows "
                         f"({', '.join(str(r.shape[0]) for r in out)}); row k of each is one reference")
    return tuple(out)


def generator(seed: int | torch.Generator) -> torch.Generator:
    """A CPU generator from an int seed (or the given generator), never the global RNG."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int or a torch.Generator; got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)
