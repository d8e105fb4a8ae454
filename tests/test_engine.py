"""Engine behaviour: chunking, model calls, model state, the kinds of inputs and targets."""

import subprocess
import sys

import pytest
import torch

import integrad
from conftest import Counting, mlp


@pytest.mark.parametrize("batch_size", [1, 3, 7, 49, 50, 51, 149, 1000])
def test_chunking_invariance(batch_size):
    net = mlp([5, 32, 32, 4], act=torch.nn.ReLU)
    x = torch.randn(6, 5, dtype=torch.float64)
    ref = integrad.integrated_gradients(net, x, target=[0, 1, 2, 3, 0, 1], n_steps=50)
    res = integrad.integrated_gradients(net, x, target=[0, 1, 2, 3, 0, 1], n_steps=50, batch_size=batch_size)
    scale = ref.attributions.abs().max()
    assert (res.attributions - ref.attributions).abs().max() <= 1e-12 * scale
    assert (res.n_evals == 50).all()


def test_automatic_chunking_splits_one_example_across_blocks():
    net = Counting(mlp([4096, 8, 1]))
    x = torch.randn(1, 4096, dtype=torch.float64)
    # 200 steps x 32 KiB per row is over the probe size: several blocks for one example
    res = integrad.integrated_gradients(net, x, n_steps=200, max_memory=1 << 20)
    ref = integrad.integrated_gradients(net, x, n_steps=200, batch_size=200)
    assert net.calls > 3
    assert (res.attributions - ref.attributions).abs().max() <= 1e-12 * ref.attributions.abs().max()


def test_counted_model_calls_and_rows():
    net = Counting(mlp([3, 8, 1]))
    x = torch.randn(3, 3, dtype=torch.float64)
    res = integrad.integrated_gradients(net, x, n_steps=20, batch_size=10)
    # the row-independence probe (1 row alone, then 2 together), 1 reference call for F(x) and
    # F(baseline) (6 rows), then 2 windows of 10 steps per example
    assert net.calls == 2 + 1 + 6
    assert net.rows == 3 + 2 * 3 + 3 * 20
    assert res.n_evals.tolist() == [20, 20, 20]


def test_model_state_restored_after_success():
    net = mlp([3, 8, 2])
    net.train()
    net[0].weight.requires_grad_(False)
    net[2].weight.grad = torch.ones_like(net[2].weight)
    before = [p.requires_grad for p in net.parameters()]
    integrad.integrated_gradients(net, torch.randn(2, 3, dtype=torch.float64), target=0)
    assert [p.requires_grad for p in net.parameters()] == before
    assert net.training and all(m.training for m in net.modules())
    assert (net[2].weight.grad == 1).all() and net[0].weight.grad is None
    assert not net._forward_hooks and not any(m._forward_hooks for m in net.modules())


def test_model_state_restored_after_exception():
    class Boom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4).double()
            self.lin = torch.nn.Linear(4, 1).double()
            self.calls = 0

        def forward(self, ids):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("boom inside the model")
            return self.lin(self.emb(ids)).sum((1, 2))

    m = Boom().eval()
    with pytest.raises(RuntimeError, match="boom"):
        integrad.integrated_gradients(m, torch.tensor([[1, 2, 3]]), layer=m.emb)
    assert all(p.requires_grad for p in m.parameters())
    assert not m.emb._forward_hooks and not m.training


def test_training_mode_with_dropout_warns():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 1)).double()
    with pytest.warns(UserWarning, match="training mode"):
        integrad.integrated_gradients(net, torch.randn(2, 3, dtype=torch.float64))


def test_multiple_inputs_and_tuple_baseline():
    w1, w2 = torch.randn(3, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)
    f = lambda a, b: a @ w1 + (b * w2).sum((1, 2))
    a, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, 2, dtype=torch.float64)
    res = integrad.integrated_gradients(f, (a, b), baseline=(1.0, torch.zeros(2, 2, dtype=torch.float64)))
    assert isinstance(res.attributions, tuple) and len(res.attributions) == 2
    torch.testing.assert_close(res.attributions[0], w1 * (a - 1))
    torch.testing.assert_close(res.attributions[1], w2 * b)


def test_baseline_per_example_batch():
    w = torch.randn(3, dtype=torch.float64)
    x, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    res = integrad.integrated_gradients(lambda z: z @ w, x, baseline=b)
    torch.testing.assert_close(res.attributions, w * (x - b))


def test_forward_args_follow_their_examples():
    # An extra per-example tensor (a mask) is not interpolated and follows each row.
    w = torch.randn(5, dtype=torch.float64)
    f = lambda x, mask, scale=1.0: scale * (x * mask) @ w
    x = torch.randn(3, 5, dtype=torch.float64)
    mask = (torch.rand(3, 5) > 0.5).double()
    res = integrad.integrated_gradients(f, x, forward_args=(mask,), forward_kwargs={"scale": 2.0}, batch_size=7)
    torch.testing.assert_close(res.attributions, 2.0 * w * mask * x)


@pytest.mark.parametrize("target", [2, [0, 2, 1], torch.tensor([0, 2, 1]), lambda out: out[:, 1] - out[:, 0]])
def test_targets(target):
    net = mlp([4, 8, 3])
    x = torch.randn(3, 4, dtype=torch.float64)
    res = integrad.integrated_gradients(net, x, target=target, n_steps=64)
    out = net(x)
    if callable(target):
        expected = out[:, 1] - out[:, 0]
    else:
        idx = torch.as_tensor(target).expand(3) if not isinstance(target, int) else torch.full((3,), target)
        expected = out.gather(1, idx.view(-1, 1)).squeeze(1)
    torch.testing.assert_close(res.f_x, expected)
    assert res.delta.abs().max() < 1e-8


def test_huggingface_style_output_with_logits():
    class Out:
        def __init__(self, logits):
            self.logits = logits

    net = mlp([4, 8, 2])
    x = torch.randn(2, 4, dtype=torch.float64)
    res = integrad.integrated_gradients(lambda z: Out(net(z)), x, target=1)
    ref = integrad.integrated_gradients(net, x, target=1)
    torch.testing.assert_close(res.attributions, ref.attributions)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_end_to_end(dtype):
    net = mlp([4, 16, 1], act=torch.nn.Softplus, dtype=dtype)
    x = torch.randn(3, 4, dtype=dtype)
    res = integrad.integrated_gradients(net, x, n_steps=64)
    assert res.attributions.dtype == dtype and res.f_x.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert res.delta.abs().max() < tol * max(1.0, (res.f_x - res.f_baseline).abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float32(dtype):
    net = mlp([4, 16, 1], act=torch.nn.Softplus, dtype=torch.float64)
    x = torch.randn(3, 4, dtype=torch.float64)
    ref = integrad.integrated_gradients(net, x, n_steps=64)
    res = integrad.integrated_gradients(net.to(dtype), x.to(dtype), n_steps=64)
    assert res.attributions.dtype == torch.float32
    err = (res.attributions.double() - ref.attributions).abs().max() / ref.attributions.abs().max()
    assert err < (2e-2 if dtype == torch.bfloat16 else 3e-3)


def test_layer_ig_through_embedding_matches_ig_on_embeddings():
    emb = torch.nn.Embedding(20, 6).double()
    head = mlp([6, 8, 2], act=torch.nn.Tanh)

    class TextNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = emb, head

        def forward(self, ids, mask):
            e = self.emb(ids) * mask.unsqueeze(-1)
            return self.head(e.sum(1))

    net = TextNet().eval()
    ids = torch.tensor([[3, 5, 7, 0], [4, 4, 9, 2]])
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.float64)
    res = integrad.integrated_gradients(net, ids, baseline=0, target=1, forward_args=(mask,), layer=net.emb)
    assert res.attributions.shape == (2, 4, 6) and res.settings["layer"] == "emb"
    # the same as plain IG on the embedding vectors with the PAD (id 0) embedding as baseline
    f = lambda e, m: head((e * m.unsqueeze(-1)).sum(1))
    ref = integrad.integrated_gradients(f, emb(ids).detach(), baseline=emb.weight[0].detach(), target=1,
                                        forward_args=(mask,))
    torch.testing.assert_close(res.attributions, ref.attributions)
    assert res.delta.abs().max() < 1e-10


def test_save_load_roundtrip(tmp_path):
    net = mlp([3, 4, 2])
    x = (torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64))
    res = integrad.integrated_gradients(lambda a, b: net(a + b), x, target=1)
    res.save(tmp_path / "r.safetensors")
    back = integrad.Attribution.load(tmp_path / "r.safetensors")
    assert isinstance(back.attributions, tuple)
    for a, b in zip(back.attributions, res.attributions):
        assert torch.equal(a, b)
    assert torch.equal(back.delta, res.delta) and torch.equal(back.n_evals, res.n_evals)
    assert back.settings["target"] == 1 and back.settings["method"] == "gausslegendre"


def test_load_rejects_foreign_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="not an integrad result"):
        integrad.Attribution.load(tmp_path / "x.safetensors")


def test_repr_and_html_show_the_gap():
    res = integrad.integrated_gradients(lambda z: (z**2).sum(1), torch.ones(2, 3, dtype=torch.float64))
    text = repr(res)
    assert "completeness gap" in text and "gausslegendre (50 steps)" in text
    assert "<table>" in res._repr_html_() and "completeness gap" in res._repr_html_()


def test_import_is_light():
    code = "import sys, integrad; print(sorted(m for m in ('torch', 'matplotlib', 'transformers', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_layer_baseline_in_activation_space():
    emb = torch.nn.Embedding(12, 5).double()
    head = mlp([5, 8, 1], act=torch.nn.Tanh)
    net = lambda ids: head(emb(ids).mean(1))[:, 0]
    ids = torch.tensor([[3, 5, 7], [1, 2, 11]])
    res = integrad.integrated_gradients(net, ids, layer=emb, layer_baseline=0.0)
    ref = integrad.integrated_gradients(lambda e: head(e.mean(1))[:, 0], emb(ids).detach(), baseline=0.0)
    torch.testing.assert_close(res.attributions, ref.attributions)
    torch.testing.assert_close(res.f_baseline, head(torch.zeros(1, 5, dtype=torch.float64))[:, 0].expand(2))


def test_head_equals_wrapping_the_model():
    net = mlp([5, 8, 3])
    x = torch.randn(4, 5, dtype=torch.float64)
    wrapped = torch.nn.Sequential(net, torch.nn.Softmax(-1))
    for kw in ({"n_steps": 16}, {"rtol": 1e-4}):
        a = integrad.integrated_gradients(net, x, target=[0, 2, 1, 2], head=lambda o: o.softmax(-1), **kw)
        b = integrad.integrated_gradients(wrapped, x, target=[0, 2, 1, 2], **kw)
        torch.testing.assert_close(a.attributions, b.attributions, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(a.f_x, b.f_x, rtol=1e-12, atol=1e-15)
