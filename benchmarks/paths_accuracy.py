"""The accuracy numbers of docs/paths.md: Blur IG and Guided IG against PAIR saliency and against
their own converged answers (float64, small networks).

Prints: Blur IG's agreement with saliency where saliency is right (linear spacing, same kernel
radius, tiny grad_step); saliency's batched sqrt-spacing error against the converged answer;
integrad's Blur IG convergence in Gauss-Legendre nodes; Guided IG's one-sided (paper) and
trapezoid sums against the same construction with 4,000 steps.

Usage::

    .venv/bin/python benchmarks/paths_accuracy.py      # ~30 s; needs saliency==0.2.1 (the Makefile installs it)
"""

from __future__ import annotations

import numpy as np
import torch

import integrad
from integrad.paths import BlurPath


def cnn(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Softplus(), torch.nn.Conv2d(6, 6, 3, padding=1),
                               torch.nn.Softplus(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(24, 4)).double().eval()


def saliency_blur_ig(net, image, target, radius, **kwargs) -> torch.Tensor:
    """saliency's Blur IG on one CHW image (it takes HWC), its blur given integrad's radius."""
    import saliency.core.blur_ig as blur_mod
    from scipy import ndimage

    def call(batch, call_model_args=None, expected_keys=None):
        z = torch.tensor(np.asarray(batch)).permute(0, 3, 1, 2).requires_grad_(True)
        net(z)[:, target].sum().backward()
        return {blur_mod.INPUT_OUTPUT_GRADIENTS: z.grad.permute(0, 2, 3, 1).numpy()}

    old = blur_mod.gaussian_blur
    blur_mod.gaussian_blur = lambda im, s: im if s == 0 else ndimage.gaussian_filter(
        im, sigma=[s, s, 0], mode="constant", radius=[radius, radius, 0])
    try:
        return torch.tensor(blur_mod.BlurIG().GetMask(image.permute(1, 2, 0).numpy(), call, **kwargs)).permute(2, 0, 1)
    finally:
        blur_mod.gaussian_blur = old


def rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((a - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)).max())


def main() -> None:
    torch.set_num_threads(2)
    net, x = cnn(2), torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = integrad.blur_ig(net, x, max_sigma=4.0, target=3, method="riemann_right", n_steps=24).attributions
    r = BlurPath(4.0).radius
    theirs = torch.stack([saliency_blur_ig(net, x[i], 3, r, max_sigma=4.0, steps=24, grad_step=1e-7, batch_size=5)
                          for i in range(2)])
    print(f"Blur IG, linear spacing, 24 steps: integrad riemann_right vs saliency (same radius): {rel(ours, theirs):.1e}")

    net, img = cnn(3), torch.rand(1, 3, 10, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    truth = integrad.blur_ig(net, img, max_sigma=2.0, sqrt=True, target=0, n_steps=256).attributions
    r = BlurPath(2.0).radius
    kw = dict(max_sigma=4.0, steps=400, grad_step=1e-7, sqrt=True)  # saliency's max_sigma is sigma_max^2 there
    for bs in (1, 50):
        s = saliency_blur_ig(net, img[0], 0, r, batch_size=bs, **kw)[None]
        print(f"saliency Blur IG sqrt=True, 400 steps, batch_size={bs}: {rel(s, truth):.2e} from integrad GL-256")
    for n in (16, 32, 64, 128):
        a = integrad.blur_ig(net, img, max_sigma=2.0, sqrt=True, target=0, n_steps=n).attributions
        print(f"integrad Blur IG sqrt=True, GL-{n}: {rel(a, truth):.2e} from GL-256")

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).double().eval()
    x = torch.randn(4, 6, dtype=torch.float64)
    limit = integrad.guided_ig(mlp, x, target=1, n_steps=4000, max_dist=0.1).attributions
    for n in (25, 50, 100, 200):
        tr = integrad.guided_ig(mlp, x, target=1, n_steps=n, max_dist=0.1)
        le = integrad.guided_ig(mlp, x, target=1, n_steps=n, max_dist=0.1, rule="left")
        print(f"Guided IG, {n} steps: trapezoid {rel(tr.attributions, limit):.2e}, one-sided (paper) "
              f"{rel(le.attributions, limit):.2e} from 4,000 steps; gaps {float(tr.delta.abs().max()):.1e} / "
              f"{float(le.delta.abs().max()):.1e}")
    coarse_to_fine()


def coarse_to_fine() -> None:
    """docs/paths.md's plug-in, run from the page, and the same stages switched by clamped smooth steps."""
    import pathlib
    import re

    page = (pathlib.Path(__file__).parents[1] / "docs" / "paths.md").read_text(encoding="utf-8")
    scope: dict = {}
    exec(compile(re.search(r"## A worked plug-in.*?```python\n(.*?)```", page, re.S).group(1), "docs/paths.md",
                 "exec"), scope)
    erf_path = scope["CoarseToFine"](stages=5)

    class SmoothStep(scope["CoarseToFine"]):
        def __call__(self, x, baseline, alphas):
            d = x - baseline
            u, s, vh = torch.linalg.svd(d, full_matrices=False)
            r = s.shape[-1]
            bounds = [0] + [min(r, 2 ** g) for g in range(self.stages - 1)] + [r]
            parts = torch.stack([(u[..., lo:hi] * s[..., None, lo:hi]) @ vh[..., lo:hi, :]
                                 for lo, hi in zip(bounds[:-1], bounds[1:])], 1)
            t = (alphas[..., None] * self.stages - torch.arange(self.stages, dtype=alphas.dtype)).clamp(0, 1)
            on, speed = t * t * (3 - 2 * t), 6 * t * (1 - t) * self.stages
            return (baseline[:, None] + torch.einsum("ekg,egchw->ekchw", on.to(d.dtype), parts),
                    torch.einsum("ekg,egchw->ekchw", speed.to(d.dtype), parts))

    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.Softplus(), torch.nn.Conv2d(6, 6, 3, padding=1),
                              torch.nn.Softplus(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(24, 4)).double().eval()
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    for label, path in (("erf ramps (docs/paths.md)", erf_path), ("clamped smooth steps", SmoothStep(stages=5))):
        gaps = []
        for n in (16, 32, 64, 128):
            res = integrad.integrated_gradients(net, x, target=1, path=path, n_steps=n)
            gaps.append(f"{n}: {float((res.delta.abs() / (res.f_x - res.f_baseline).abs()).max()):.1e}")
        tight = integrad.integrated_gradients(net, x, target=1, path=path, rtol=1e-6)
        print(f"coarse-to-fine path, {label}: gap / |F(x) - F(x')| at {', '.join(gaps)} nodes; rtol=1e-6: "
              f"{int(tight.n_evals.max())} evaluations")


if __name__ == "__main__":
    main()
