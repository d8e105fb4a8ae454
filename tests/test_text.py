"""Text explanations: subwords, special tokens, padding, targets, baselines, HTML, hostile input."""

import json

import pytest
import torch

pytest.importorskip("transformers")

from integrad.text import Span, explain_text, merge_subwords  # noqa: E402
from text_fixtures import bpe_tokenizer, tiny_bert, unigram_tokenizer, wordpiece_tokenizer  # noqa: E402

TOKENIZERS = {"wordpiece": wordpiece_tokenizer, "bpe": bpe_tokenizer, "unigram": unigram_tokenizer}


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def pair(request):
    tok = TOKENIZERS[request.param]()
    return request.param, tiny_bert(len(tok)), tok


def test_merge_wordpiece_markers():
    spans = [Span("[CLS]", 0.0, True), Span("un", 1.0), Span("##believ", 2.0), Span("##ably", 0.5),
             Span("good", -1.0), Span("[SEP]", 0.0, True)]
    assert merge_subwords(spans) == [Span("unbelievably", 3.5), Span("good", -1.0)]


def test_merge_sentencepiece_markers():
    spans = [Span("▁un", 1.0), Span("believ", 2.0), Span("ably", 0.5), Span("▁good", -1.0)]
    assert merge_subwords(spans) == [Span("unbelievably", 3.5), Span("good", -1.0)]


def test_merge_byte_bpe_markers():
    spans = [Span("<s>", 0.0, True), Span("un", 1.0), Span("believ", 2.0), Span("Ġgo", 0.5), Span("od", -1.0)]
    assert merge_subwords(spans) == [Span("unbeliev", 3.0), Span("good", -0.5)]


def test_words_keep_completeness_and_original_spelling(pair):
    name, model, tok = pair
    text = "the movie was unbelievably good tonight"
    ex = explain_text(model, tok, text, n_steps=32)
    plain = sum(t.attribution for t in ex.tokens if not t.special)
    assert abs(sum(w.attribution for w in ex.words) - plain) < 1e-6
    assert [w.text for w in ex.words] == text.split()
    # subword markers never reach the words
    assert len(ex.tokens) - len(ex.special_tokens) >= len(ex.words)
    # the marker-based merge agrees with the tokenizer's own word boundaries here
    assert [w.text.lower() for w in merge_subwords(ex.tokens)] == [w.lower() for w in text.split()]


def test_special_tokens_reported_separately_with_zero_attribution_for_pad_baseline(pair):
    _, model, tok = pair
    ex = explain_text(model, tok, "a boring ending", n_steps=16)
    specials = ex.special_tokens
    assert [t.text for t in specials] == [tok.cls_token, tok.sep_token]
    assert ex.tokens[0].special and ex.tokens[-1].special
    assert all(t.attribution == 0.0 for t in specials)  # kept in the baseline: no path, no attribution
    assert all(not w.text.startswith(("[", "<")) for w in ex.words)


def test_completeness_gap_small(pair):
    _, model, tok = pair
    ex = explain_text(model, tok, "i love this film but i also kind of dislike the music", n_steps=64)
    assert abs(ex.delta) <= 1e-2 * abs(ex.f_x - ex.f_baseline) + 1e-6


def test_padding_invariance(pair):
    _, model, tok = pair
    texts = ["good", "a dull plot with terrible acting and a boring ending", "i love this film"]
    together = explain_text(model, tok, texts, n_steps=16)
    for text, ex in zip(texts, together):
        alone = explain_text(model, tok, text, n_steps=16)
        assert [t.text for t in alone.tokens] == [t.text for t in ex.tokens]
        for a, b in zip(alone.tokens, ex.tokens):
            assert abs(a.attribution - b.attribution) <= 1e-5
        assert abs(alone.f_x - ex.f_x) <= 1e-5


def test_label_name_target_equals_index():
    tok = wordpiece_tokenizer()
    model = tiny_bert(len(tok))
    by_name = explain_text(model, tok, "great film", target="negative", n_steps=8)
    by_index = explain_text(model, tok, "great film", target=0, n_steps=8)
    assert by_name.target == "NEGATIVE"
    assert [t.attribution for t in by_name.tokens] == [t.attribution for t in by_index.tokens]
    other = explain_text(model, tok, "great film", target=1, n_steps=8)
    # two labels: the target's probability is the prediction's or its complement, whichever is asked
    assert by_name.target_probability + other.target_probability == pytest.approx(1.0)
    assert by_name.to_dict()["target"]["probability"] == pytest.approx(by_name.target_probability)


@pytest.mark.parametrize("baseline", ["pad", "mask", "unk", "zero", 0, "tensor"])
def test_baselines(baseline):
    tok = wordpiece_tokenizer()
    model = tiny_bert(len(tok))
    if baseline == "tensor":
        baseline = torch.zeros(16)  # a zero embedding for every position, specials included
    ex = explain_text(model, tok, "good movie", baseline=baseline, n_steps=32)
    assert abs(ex.delta) <= 1e-2 * abs(ex.f_x - ex.f_baseline) + 1e-6
    assert ex.result.settings["baseline"] == baseline if not isinstance(baseline, torch.Tensor) else \
        ex.result.settings["baseline"] == "embedding tensor(16,)"


def test_html_is_escaped():
    tok = wordpiece_tokenizer()
    model = tiny_bert(len(tok))
    ex = explain_text(model, tok, "<script>alert('x')</script> & good", n_steps=8)
    page = ex.to_html()
    # the tokenizer splits "<", "script", ">" into words; each is shown escaped, none runs
    assert "<script" not in page and "</script" not in page
    assert "&lt;" in page and "&gt;" in page and "&amp;" in page
    assert page.startswith("<!doctype html>") and "http" not in page
    assert "completeness gap" in page and ("NEGATIVE" in page or "POSITIVE" in page)
    assert "&lt;" in ex._repr_html_()


def test_json_holds_prediction_tokens_words_and_gap():
    tok = wordpiece_tokenizer()
    model = tiny_bert(len(tok))
    d = json.loads(json.dumps(explain_text(model, tok, "good movie", n_steps=8).to_dict()))
    assert set(d["prediction"]) == {"label", "probability"}
    assert {"text", "attribution"} <= set(d["tokens"][0]) and d["words"][0]["text"] == "good"
    assert {"delta", "f_x", "f_baseline", "integrad_version"} <= set(d)


@pytest.mark.parametrize("texts,exc,pattern", [
    ("", ValueError, r"texts: the text is empty or only whitespace"),
    ("   \n\t", ValueError, r"texts: the text is empty or only whitespace"),
    (["ok", ""], ValueError, r"texts\[1\]: the text is empty"),
    (42, TypeError, r"texts: expected a str or a non-empty list of str; got int"),
    ([], TypeError, r"texts: expected a str or a non-empty list of str; got list \(empty\)"),
    (["ok", 3], TypeError, r"texts\[1\]: expected a str; got int"),
    (None, TypeError, r"texts: expected a str .* got NoneType"),
])
def test_hostile_texts(texts, exc, pattern):
    tok = wordpiece_tokenizer()
    with pytest.raises(exc, match=pattern):
        explain_text(tiny_bert(len(tok)), tok, texts)


def test_unknown_label_and_bad_baseline():
    tok = wordpiece_tokenizer()
    model = tiny_bert(len(tok))
    with pytest.raises(ValueError, match=r"target: unknown label 'NEUTRAL'; the model's labels are NEGATIVE, POSITIVE"):
        explain_text(model, tok, "good", target="NEUTRAL")
    with pytest.raises(ValueError, match=r"target: class index 5 is out of range for 2 labels"):
        explain_text(model, tok, "good", target=5)
    with pytest.raises(ValueError, match=r"baseline: expected one of pad, mask, unk, zero"):
        explain_text(model, tok, "good", baseline="blank")


def test_long_text_truncated_with_warning():
    tok = wordpiece_tokenizer()
    model = tiny_bert(len(tok))  # 48 positions
    with pytest.warns(UserWarning, match=r"texts\[0\]: \d+ tokens, more than the model's maximum of 48; truncated"):
        ex = explain_text(model, tok, "good " * 100, n_steps=4)
    assert len(ex.tokens) == 48 and ex.tokens[-1].special


def test_cli_text_and_json(tmp_path):
    from typer.testing import CliRunner

    from integrad.cli import app

    tok = wordpiece_tokenizer()
    tiny_bert(len(tok)).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    out = tmp_path / "e.json"
    html = tmp_path / "e.html"
    r = CliRunner().invoke(app, ["explain", "text", "a wonderful film", "--model", str(tmp_path / "m"),
                                 "--n-steps", "8", "--json", str(out), "--html", str(html), "--target", "POSITIVE"])
    assert r.exit_code == 0, r.output
    assert "completeness gap" in r.output and "wonderful" in r.output
    d = json.loads(out.read_text())
    assert d["target"]["label"] == "POSITIVE" and d["target"]["index"] == 1
    assert [w["text"] for w in d["words"]] == ["a", "wonderful", "film"]
    assert html.read_text().startswith("<!doctype html>")


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    from typer.testing import CliRunner

    from integrad.cli import app

    r = CliRunner().invoke(app, ["explain", "text", "good", "--model", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "is not a directory" in r.output and "Traceback" not in r.output


def test_classic_example_on_the_embedded_model():
    # The acceptance: "love" is the most positive word, "dislike" the most negative,
    # and the completeness gap is within 1% of F(x) - F(baseline).
    from integrad.models import load_sentiment_model

    model, tok = load_sentiment_model()
    ex = explain_text(model, tok, "I love you, but I also kind of dislike you")
    ranked = sorted(ex.words, key=lambda w: w.attribution)
    assert ranked[-1].text == "love" and ranked[0].text == "dislike"
    assert abs(ex.delta) <= 0.01 * abs(ex.f_x - ex.f_baseline)
    assert ex.label == "POSITIVE" and ex.target == "POSITIVE"


def test_smooth_puts_noise_in_embeddings_and_keeps_completeness_on_average():
    tok = wordpiece_tokenizer()
    model = tiny_bert(len(tok))
    plain = explain_text(model, tok, "good movie", n_steps=32)
    still = explain_text(model, tok, "good movie", n_steps=32, smooth=2, noise=0.0)
    assert [t.attribution for t in still.tokens] == pytest.approx([t.attribution for t in plain.tokens], abs=1e-12)
    noisy = explain_text(model, tok, "good movie", n_steps=32, smooth=4, noise=0.1)
    assert noisy.result.settings["smoothgrad"]["n_samples"] == 4
    assert noisy.result.settings["layer"] is not None  # the noise went into the embedding layer's space
    assert abs(noisy.delta) <= 1e-2 * abs(noisy.f_x - noisy.f_baseline) + 1e-6
    assert [t.attribution for t in noisy.tokens] != [t.attribution for t in plain.tokens]


@pytest.mark.parametrize("kw, exc, pattern", [
    (dict(baseline=999999), ValueError, r"baseline: token id 999999 is outside the model's vocabulary"),
    (dict(baseline=-1), ValueError, r"baseline: token id -1 is outside"),
    (dict(baseline=torch.tensor([0, 10**6])), ValueError, r"baseline: token ids must lie in 0\.\."),
    (dict(max_length=0), ValueError, r"max_length: expected None .* or an int >= 2"),
])
def test_bad_text_options_name_the_argument(kw, exc, pattern):
    tok = wordpiece_tokenizer()
    with pytest.raises(exc, match=pattern):
        explain_text(tiny_bert(len(tok)), tok, "good movie", **kw)


def test_missing_tokenizer_or_non_hf_model_is_a_clear_error():
    tok = wordpiece_tokenizer()
    with pytest.raises(TypeError, match="tokenizer: expected a Hugging Face tokenizer"):
        explain_text(tiny_bert(len(tok)), None, "good movie")
    with pytest.raises(TypeError, match="model: expected a Hugging Face sequence classifier"):
        explain_text(torch.nn.Linear(3, 2), tok, "good movie")


def test_piped_cli_output_carries_numbers_and_signs(tmp_path):
    import re

    from typer.testing import CliRunner

    from integrad.cli import app

    tok = wordpiece_tokenizer()
    tiny_bert(len(tok)).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    # CliRunner's output is no terminal: no colours, as when piped
    r = CliRunner().invoke(app, ["explain", "text", "good movie", "--model", str(tmp_path / "m"), "--n-steps", "8"])
    assert r.exit_code == 0, r.output
    assert "largest: " in r.output and re.search(r"(good|movie) [+-]\d\.\d{3}", r.output), r.output
