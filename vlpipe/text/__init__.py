"""Text: tokenizer, vocabulary and word-embedding loading."""

from vlpipe.text.vocab import BLANK, PAD, SPECIALS, Vocabulary, load_embeddings, tokenize

__all__ = ["BLANK", "PAD", "SPECIALS", "Vocabulary", "load_embeddings", "tokenize"]
