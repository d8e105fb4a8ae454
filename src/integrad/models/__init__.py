"""Pretrained models bundled with integrad (loaded offline, never trained on import)."""

from ._sentiment import SentimentClassifier, load_sentiment_model

__all__ = ["SentimentClassifier", "load_sentiment_model"]
