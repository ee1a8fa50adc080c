"""Text: tokenizer, vocabulary and word-embedding loading."""

from vlpipe.text.vocab import PAD, Vocabulary, load_embeddings, tokenize

__all__ = ["PAD", "Vocabulary", "load_embeddings", "tokenize"]
