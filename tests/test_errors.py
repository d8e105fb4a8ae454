"""Bad input gets a clear error naming the argument, the expectation and what was received."""

import pytest
import torch

import integrad
from conftest import mlp

NET = mlp([3, 4, 2])
X = torch.randn(2, 3, dtype=torch.float64)


def ig(model=NET, inputs=X, **kw):
    kw.setdefault("target", 0)
    return integrad.integrated_gradients(model, inputs, **kw)


class Emb(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(10, 4).double()
        self.unused = torch.nn.Linear(4, 4).double()
        self.head = torch.nn.Linear(4, 1).double()

    def forward(self, ids):
        return self.head(self.emb(ids).mean(1))[:, 0]


CASES = {
    "model_not_callable": (dict(model=42), TypeError, r"model: expected an nn.Module or a callable.*got int"),
    "inputs_not_tensor": (dict(inputs=[1.0, 2.0]), TypeError, r"inputs\[0\]: expected a torch.Tensor.*got float"),
    "inputs_numpy": (dict(inputs=X.numpy()), TypeError, r"inputs: expected a torch.Tensor.*got ndarray"),
    "inputs_scalar": (dict(inputs=torch.tensor(1.0)), ValueError, r"inputs: .*shape \(batch, \.\.\.\); got a scalar"),
    "inputs_empty_batch": (dict(inputs=torch.zeros(0, 3)), ValueError, r"inputs: expected at least one example; got shape \(0, 3\)"),
    "inputs_empty_tuple": (dict(inputs=()), ValueError, r"inputs: .*got an empty tuple"),
    "integer_inputs_without_layer": (dict(inputs=torch.ones(2, 3, dtype=torch.long)), TypeError,
                                     r"inputs: dtype torch.int64 cannot be interpolated.*layer="),
    "batch_mismatch": (dict(model=lambda a, b: a.sum(1) + b.sum(1), inputs=(X, torch.zeros(3, 3)), target=None),
                       ValueError, r"inputs\[1\]: batch size 3 differs from inputs\[0\]'s 2 \(shapes \(2, 3\) and \(3, 3\)\)"),
    "baseline_tuple_length": (dict(baseline=(0.0, 1.0)), ValueError, r"baseline: a tuple of 2 baselines was given for 1 inputs"),
    "baseline_shape": (dict(baseline=torch.zeros(5)), ValueError,
                       r"baseline: shape \(5\) does not broadcast to one example \(3,\) nor to the batch \(2, 3\)"),
    "baseline_nan": (dict(baseline=float("nan")), ValueError, r"baseline: expected a finite number; got nan"),
    "baseline_nan_tensor": (dict(baseline=torch.tensor([0.0, float("nan"), 0.0])), ValueError, r"baseline: contains NaN"),
    "baseline_string": (dict(baseline="zeros"), TypeError, r"baseline: expected a number, a tensor.*got str"),
    "target_out_of_range": (dict(target=5), ValueError, r"target: class index 5 is out of range .*2 classes \(valid: 0..1\)"),
    "target_negative": (dict(target=-1), ValueError, r"target: class index -1 is out of range"),
    "target_wrong_length": (dict(target=[0, 1, 1]), ValueError, r"target: expected one integer class per example, shape \(2,\); got .* shape \(3\)"),
    "target_per_example_out_of_range": (dict(target=[0, 7]), ValueError, r"target: target\[1\] = 7 is out of range"),
    "target_float": (dict(target=torch.tensor([0.5, 1.0])), ValueError, r"target: expected one integer class per example.*torch.float32"),
    "target_string": (dict(target="cat"), TypeError, r"target: expected None, an int.*got str"),
    "target_none_multiclass": (dict(target=None), ValueError, r"target: the model output has shape \(batch, 2\); with target=None"),
    "target_callable_shape": (dict(target=lambda out: out), ValueError,
                              r"target: the callable must return one scalar per row, shape \(\d+,\); got \(\d+, 2\)"),
    "unknown_method": (dict(method="simpson"), ValueError, r"method: expected one of 'riemann_left'.*got 'simpson'"),
    "n_steps_zero": (dict(n_steps=0), ValueError, r"n_steps: expected an int >= 1 .*got 0"),
    "n_steps_float": (dict(n_steps=2.5), TypeError, r"n_steps: expected an int; got float 2.5"),
    "trapezoid_one_step": (dict(method="trapezoid", n_steps=1), ValueError, r"n_steps: expected an int >= 2 for method='trapezoid'"),
    "batch_size_zero": (dict(batch_size=0), ValueError, r"batch_size: expected None \(automatic\) or an int >= 1; got 0"),
    "max_memory_negative": (dict(max_memory=-5), ValueError, r"max_memory: expected None or a number of bytes >= 1; got -5"),
    "layer_not_module": (dict(layer="emb"), TypeError, r"layer: expected a torch.nn.Module .*got str"),
    "forward_args_not_tuple": (dict(forward_args=X), TypeError, r"forward_args: expected a tuple .*got Tensor"),
    "forward_kwargs_not_dict": (dict(forward_kwargs=[1]), TypeError, r"forward_kwargs: expected a dict; got list"),
    "output_constant": (dict(model=lambda x: torch.ones(x.shape[0], dtype=x.dtype), target=None), ValueError,
                        r"model output does not depend on the inputs"),
    "output_detached": (dict(model=lambda x: x.detach().sum(1), target=None), ValueError, r"does not depend on the inputs"),
    "output_nan": (dict(model=lambda x: x.sum(1) * float("nan"), target=None), FloatingPointError,
                   r"model output contains NaN or Inf \(examples \[0, 1\]\)"),
    "gradient_nan": (dict(model=lambda x: torch.sqrt(x - x).sum(1), target=None), FloatingPointError,
                     r"gradient w.r.t. inputs\[0\] contains NaN or Inf"),
    "output_not_batch_first": (dict(model=lambda x: x.sum(), target=None), ValueError,
                               r"model output: expected a batch-first tensor with \d+ rows .*got shape \(\)"),
    "output_tuple": (dict(model=lambda x: (x.sum(1),), target=None), TypeError,
                     r"model output: expected a Tensor .*or an object with .logits; got tuple"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_clear_error(case):
    kwargs, exc, pattern = CASES[case]
    with pytest.raises(exc, match=pattern):
        ig(**kwargs)


def test_layer_that_never_runs():
    m = Emb().eval()
    with pytest.raises(ValueError, match=r"layer: the Linear given as layer= never ran"):
        integrad.integrated_gradients(m, torch.tensor([[1, 2]]), layer=m.unused)


def test_layer_that_runs_twice():
    m = Emb().eval()
    twice = lambda ids: m.head(m.emb(ids).mean(1) + m.emb(ids).mean(1))[:, 0]
    with pytest.raises(ValueError, match=r"layer: the Embedding given as layer= ran 2 times"):
        integrad.integrated_gradients(twice, torch.tensor([[1, 2]]), layer=m.emb)


def test_layer_with_tuple_output_attributes_its_tensors():
    # LSTM returns (output, (h, c)): the path runs through its one top-level tensor
    lstm = torch.nn.LSTM(3, 4, batch_first=True).double()
    f = lambda x: lstm(x)[0].sum((1, 2))
    res = integrad.integrated_gradients(f, torch.randn(2, 5, 3, dtype=torch.float64), layer=lstm)
    assert res.attributions.shape == (2, 5, 4)
    # the sum of the LSTM output is linear in it: IG at that layer is exact
    assert res.delta.abs().max() < 1e-12


def test_layer_without_float_tensor_is_refused():
    emb = torch.nn.Embedding(5, 3).double()
    f = lambda ids: emb(ids).sum((1, 2))
    ident = torch.nn.Identity()
    g = lambda ids: f(ident(ids))
    with pytest.raises(TypeError, match=r"layer: Identity output is Tensor with no floating-point tensor"):
        integrad.integrated_gradients(g, torch.tensor([[1, 2]]), layer=ident)


def test_inference_mode_is_refused():
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        ig()



def test_layer_baseline_without_layer():
    with pytest.raises(ValueError, match=r"layer_baseline: given without layer="):
        ig(layer_baseline=0.0)


def test_layer_baseline_wrong_shape():
    m = Emb().eval()
    with pytest.raises(ValueError, match=r"layer_baseline: shape \(3\) does not broadcast to one example \(2, 4\)"):
        integrad.integrated_gradients(m, torch.tensor([[1, 2]]), layer=m.emb, layer_baseline=torch.zeros(3))
