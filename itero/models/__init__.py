"""Loading policy / reference models and tokenizers; the tiny-model factory for CPU runs and tests."""

from itero.models.loading import load_model, load_tokenizer
from itero.models.tiny import build_char_tokenizer, build_tiny_model

__all__ = ["load_model", "load_tokenizer", "build_char_tokenizer", "build_tiny_model"]
