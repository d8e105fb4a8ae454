"""Keras text classifiers explained word by word, checked against their PyTorch twins.

Keras 2 (``tf_keras``) only: other test files in the same worker load Keras 3 on the torch
backend, and tf_keras is independent of it.

Tolerance: both twins compute in float32 (machine epsilon 1.2e-7), with different kernels
and summation orders (oneDNN in TensorFlow, ATen in PyTorch), through two attention blocks
and the path's points; 1e-5 of the largest value is about 100 float32 roundings, above what
the two disagree by (measured: 5e-7 on the logits, up to 2e-6 on the attributions) and below
any real difference (the tanh GELU instead of the exact one moves the attributions by 4e-4
to 1e-2, a missing attention mask by O(1)).
"""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

K = pytest.importorskip("tf_keras")
pytest.importorskip("transformers")

from integrad import integrated_gradients  # noqa: E402
from integrad.models import keras_distilbert  # noqa: E402
from integrad.text import explain_text  # noqa: E402
from text_fixtures import LABELS, wordpiece_tokenizer  # noqa: E402

RTOL = 1e-5
TEXTS = ["good movie", "a dull plot with terrible acting and an unbelievably boring ending", "i love this film"]


def rel(a, b) -> float:
    a, b = torch.as_tensor(np.asarray(a), dtype=torch.float64), torch.as_tensor(np.asarray(b), dtype=torch.float64)
    return float((a - b).abs().max() / b.abs().max())


def scores(ex) -> list[float]:
    return [w.attribution for w in ex.words]


@pytest.fixture(scope="module")
def tok():
    return wordpiece_tokenizer()


def distilbert_config(vocab_size, **kw):
    from transformers import DistilBertConfig

    # initializer_range 0.2, not DistilBERT's 0.02: a random net that far from constant has
    # attributions of order one, not 1e-3
    return DistilBertConfig(**dict(vocab_size=vocab_size, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                                   max_position_embeddings=64, initializer_range=0.2, id2label=LABELS,
                                   label2id={v: k for k, v in LABELS.items()}) | kw)


@pytest.fixture(scope="module")
def distil(tok):
    """``(keras, torch)``: a DistilBERT classifier and its PyTorch twin, the same weights."""
    from transformers import DistilBertForSequenceClassification

    torch.manual_seed(0)
    twin = DistilBertForSequenceClassification(distilbert_config(len(tok))).eval()
    return keras_distilbert(twin, keras=K), twin


@pytest.fixture(scope="module")
def batch(tok):
    enc = tok(TEXTS, padding=True, return_tensors="np", return_special_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    base = np.where(enc["special_tokens_mask"].astype(bool) | (mask == 0), ids, tok.pad_token_id)
    return ids, mask, base


class MeanTwin(torch.nn.Module):
    """PyTorch twin of the Keras classifier below: mean of the non-PAD embeddings, a linear layer."""

    def __init__(self, table, kernel, bias, softmax):
        super().__init__()
        self.emb = torch.nn.Embedding.from_pretrained(torch.tensor(table))
        self.out = torch.nn.Linear(*kernel.shape)
        with torch.no_grad():
            self.out.weight.copy_(torch.tensor(kernel.T))
            self.out.bias.copy_(torch.tensor(bias))
        self.softmax = softmax

    def get_input_embeddings(self):
        return self.emb

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        keep = (input_ids != 0).unsqueeze(-1).float()
        y = self.out((self.emb(input_ids) * keep).sum(1) / keep.sum(1))
        return y.softmax(-1) if self.softmax else y


def embedding_classifier(vocab, *, softmax=False, seed=0, dim=8):
    """A functional Keras model of ids alone: Embedding (PAD masked), average, Dense; and its twin."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(vocab, dim)).astype(np.float32)
    kernel, bias = rng.normal(size=(dim, 2)).astype(np.float32), np.array([0.1, -0.2], np.float32)
    ids = K.Input((None,), dtype="int32")
    emb = K.layers.Embedding(vocab, dim, mask_zero=True, name="embedding")
    out = K.layers.Dense(2, activation="softmax" if softmax else None, name="dense")
    model = K.Model(ids, out(K.layers.GlobalAveragePooling1D()(emb(ids))))
    emb.set_weights([table])
    out.set_weights([kernel, bias])
    return model, MeanTwin(table, kernel, bias, softmax)


@pytest.fixture(scope="module", params=["logits", "probabilities"])
def mean_pair(request, tok):
    return request.param, *embedding_classifier(len(tok), softmax=request.param == "probabilities")


# ---------------------------------------------------------------------------- the DistilBERT twins
def test_keras_distilbert_computes_the_pytorch_function_on_padded_batches(distil, batch):
    keras_model, twin = distil
    ids, mask, _ = batch
    assert len(set(mask.sum(1))) == len(TEXTS)  # three lengths, two rows padded
    ours = keras_model(ids, attention_mask=mask).numpy()
    theirs = twin(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.detach().numpy()
    assert ours.shape == (len(TEXTS), 2)
    assert rel(ours, theirs) <= RTOL


@pytest.mark.parametrize("where", ["word_embeddings", "embeddings"])
def test_keras_distilbert_layer_ig_equals_pytorch(distil, batch, where):
    keras_model, twin = distil
    ids, mask, base = batch
    layers = {"word_embeddings": (keras_model.get_input_embeddings(), twin.get_input_embeddings()),
              "embeddings": (keras_model.embeddings, twin.distilbert.embeddings)}[where]
    target = [1, 0, 1]
    ours = integrated_gradients(keras_model, ids, baseline=base, target=target, layer=layers[0], n_steps=16,
                                forward_kwargs={"attention_mask": mask})
    theirs = integrated_gradients(twin, torch.tensor(ids), baseline=torch.tensor(base), target=target,
                                  layer=layers[1], n_steps=16, forward_kwargs={"attention_mask": torch.tensor(mask)})
    assert ours.attributions.shape == theirs.attributions.shape == (*ids.shape, 64)
    assert rel(ours.attributions, theirs.attributions) <= RTOL
    assert rel(ours.f_x, theirs.f_x) <= RTOL and rel(ours.f_baseline, theirs.f_baseline) <= RTOL
    assert ours.settings["framework"] == "tensorflow"


def test_keras_distilbert_from_a_config_is_seeded_and_takes_sinusoidal_positions(tok):
    from transformers import DistilBertForSequenceClassification

    cfg = distilbert_config(50, sinusoidal_pos_embds=True)
    ids = np.array([[1, 7, 9, 2]])
    first, again, other = (keras_distilbert(cfg, keras=K, seed=s) for s in (0, 0, 1))
    logits = [m(ids).numpy() for m in (first, again, other)]
    assert np.array_equal(logits[0], logits[1]) and not np.allclose(logits[0], logits[2])
    words = first.get_input_embeddings().get_weights()[0]
    assert not words[cfg.pad_token_id].any() and words.std() == pytest.approx(cfg.initializer_range, rel=0.05)
    table = first.embeddings.position_embeddings.get_weights()[0]
    torch.manual_seed(0)
    fixed = DistilBertForSequenceClassification(cfg).distilbert.embeddings.position_embeddings.weight
    assert rel(table, fixed.detach()) <= RTOL


# ---------------------------------------------------------------------------- explain_text
def test_explain_text_on_keras_distilbert_matches_its_pytorch_twin(distil, tok):
    keras_model, twin = distil
    ours = explain_text(keras_model, tok, TEXTS, n_steps=16)
    theirs = explain_text(twin, tok, TEXTS, n_steps=16)
    for a, b in zip(ours, theirs):
        assert [w.text for w in a.words] == [w.text for w in b.words] == a.text.split()
        assert rel(scores(a), scores(b)) <= RTOL
        assert [t.special for t in a.tokens] == [t.special for t in b.tokens]
        assert (a.label, a.target) == (b.label, b.target) and a.label in LABELS.values()
        assert a.probability == pytest.approx(b.probability, rel=RTOL)
        assert a.delta == pytest.approx(b.delta, rel=1e-3, abs=1e-6)
        assert a.error == pytest.approx(b.error, rel=1e-3) and a.accuracy == b.accuracy
        assert a.result.settings["framework"] == "tensorflow" and a.result.settings["layer"] == "word_embeddings"
    assert type(ours[0].result.native()).__module__.startswith("tensorflow")


def test_keras_explanations_render_as_html_and_in_the_terminal(distil, tok):
    from rich.console import Console

    ex = explain_text(distil[0], tok, "a dull <script> plot", n_steps=8)
    page = ex.to_html()
    assert page.startswith("<!doctype html>") and "<script>" not in page and "&lt;" in page
    assert "dull" in page and "plot" in page
    console = Console(record=True, width=120)
    console.print(ex)
    shown = console.export_text()
    assert "dull" in shown and "completeness gap" in shown and ex.label in shown


@pytest.mark.parametrize("baseline", ["mask", "zero"])
def test_explain_text_on_a_keras_embedding_classifier_matches_its_twin(mean_pair, tok, baseline):
    output, keras_model, twin = mean_pair
    names = ["NEG", "POS"]
    # not the PAD baseline: PAD tokens are masked out of the average (mask_zero), so the path
    # would not start at F(baseline)
    ours = explain_text(keras_model, tok, TEXTS, labels=names, baseline=baseline, n_steps=16)
    theirs = explain_text(twin, tok, TEXTS, labels=names, baseline=baseline, n_steps=16)
    for a, b in zip(ours, theirs):
        assert [w.text for w in a.words] == [w.text for w in b.words]
        assert rel(scores(a), scores(b)) <= RTOL
        assert a.label == b.label and a.label in names
        assert a.probability == pytest.approx(b.probability, rel=RTOL)
        if output == "logits":  # linear in the embeddings: IG is exact
            assert abs(a.delta) <= 1e-5 * abs(a.f_x - a.f_baseline)
        else:  # the attributed output is the probability, not a softmax of it
            assert 0 <= a.f_x <= 1 and a.f_x == pytest.approx(a.target_probability, rel=RTOL)


def test_flipping_the_classifier_flips_every_word(tok):
    # no twin needed: negating the last layer negates the logits, hence every attribution
    model, _ = embedding_classifier(len(tok))
    flipped, _ = embedding_classifier(len(tok))
    kernel, bias = flipped.get_layer("dense").get_weights()
    flipped.get_layer("dense").set_weights([-kernel, -bias])
    a = explain_text(model, tok, TEXTS[1], target=1, baseline="mask", n_steps=8)
    b = explain_text(flipped, tok, TEXTS[1], target=1, baseline="mask", n_steps=8)
    assert max(abs(s) for s in scores(a)) > 1e-2
    assert rel(scores(b), [-s for s in scores(a)]) <= RTOL


# ---------------------------------------------------------------------------- the attention mask
def test_padding_gets_no_attribution_and_changes_nothing(distil, tok):
    keras_model, _ = distil
    short, long = TEXTS[0], TEXTS[1]
    alone = tok([short], return_tensors="np")
    padded = tok([short, long], padding=True, return_tensors="np")
    n = alone["input_ids"].shape[1]

    def ig(enc, mask=True):
        ids = enc["input_ids"][:1]
        kwargs = {"attention_mask": enc["attention_mask"][:1]} if mask else {}
        # a baseline unlike every embedding (PAD's is zero, padding_idx): padded positions differ from
        # it, so only the mask can keep them out
        away = np.full((*ids.shape, 64), 0.1, np.float32)
        return integrated_gradients(keras_model, ids, layer=keras_model.get_input_embeddings(), target=1,
                                    layer_baseline=away, forward_kwargs=kwargs, n_steps=16).attributions[0]

    masked, unpadded = ig(padded), ig(alone)
    assert masked.shape[0] > n
    assert torch.count_nonzero(masked[n:]) == 0
    assert rel(masked[:n], unpadded) <= RTOL
    assert ig(padded, mask=False)[n:].abs().max() > 1e-3  # without the mask the padding takes part

    together = explain_text(keras_model, tok, [short, long], n_steps=16)[0]
    by_itself = explain_text(keras_model, tok, short, n_steps=16)
    assert [w.text for w in together.words] == [w.text for w in by_itself.words]
    assert rel(scores(together), scores(by_itself)) <= RTOL
    assert torch.count_nonzero(together.result.attributions[0, n:]) == 0


# ---------------------------------------------------------------------------- errors
def test_a_keras_model_without_one_embedding_layer_asks_for_layer(tok):
    dense_only = K.Sequential([K.Input((4,)), K.layers.Dense(2)])
    with pytest.raises(TypeError, match=r"model: the Keras Sequential has 0 Embedding layers and no "
                                        r"get_input_embeddings\(\); pass its word-embedding layer as layer="):
        explain_text(dense_only, tok, "good movie")
    ids = K.Input((None,), dtype="int32")
    words, extra = K.layers.Embedding(len(tok), 4, name="words"), K.layers.Embedding(len(tok), 4, name="extra")
    two = K.Model(ids, K.layers.Dense(2)(K.layers.GlobalAveragePooling1D()(words(ids) + extra(ids))))
    with pytest.raises(TypeError, match=r"has 2 Embedding layers \('words', 'extra'\)"):
        explain_text(two, tok, "good movie")
    ex = explain_text(two, tok, "good movie", layer=two.get_layer("words"), n_steps=4)
    assert ex.result.settings["layer"] == "words" and ex.label in ("0", "1")


def test_wrong_layers_and_labels_are_clear_errors(distil, tok):
    model, twin = embedding_classifier(len(tok))
    other, _ = embedding_classifier(len(tok), seed=1)
    cases = [
        (dict(layer="embedding"), TypeError, r"layer: expected a Keras layer of the model .*; got str"),
        (dict(layer=torch.nn.Embedding(3, 2)), TypeError, r"layer: expected a Keras layer .*; got Embedding"),
        (dict(layer=model.get_layer("dense")), ValueError,
         r"layer: expected the word-embedding layer, whose output has shape \(batch, tokens, dim\) = \(1, 4, dim\); "
         r"the Dense 'dense' gives \(1, 2\)"),
        (dict(layer=other.get_layer("embedding")), ValueError, r"layer: the Embedding 'embedding' given as layer= "
                                                               r"never ran"),
        (dict(baseline=10**6), ValueError, r"baseline: token id 1000000 is outside the model's vocabulary"),
        (dict(labels=["only"]), ValueError, r"labels: expected a list of 2 names, one per output of the model; "
                                            r"got 1 names"),
    ]
    for kw, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            explain_text(model, tok, "good movie", **kw)
    with pytest.raises(TypeError, match=r"layer: expected the word-embedding layer of the model \(a torch.nn.Module\);"
                                        r" got Embedding"):
        explain_text(twin, tok, "good movie", layer=model.get_layer("embedding"))


def test_keras_distilbert_rejects_what_it_cannot_build():
    with pytest.raises(TypeError, match=r"source: expected a transformers DistilBertConfig or "
                                        r"DistilBertForSequenceClassification; got str"):
        keras_distilbert("distilbert-base-uncased", keras=K)
    with pytest.raises(ValueError, match=r"config.n_heads \(3\) must divide config.dim \(64\)"):
        keras_distilbert(distilbert_config(50, n_heads=3), keras=K)
