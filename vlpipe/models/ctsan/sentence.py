"""How CT-SAN's scoring models read a sentence (thesis §4.2.6–4.2.7): word by word by a
layer-normalised LSTM, each word x_t = W_x φ(c_t, {a_i}) after input semantic attention over
its clip's concepts (Eqs. 4.9–4.10, 4.21, 4.24); Base-SAN reads the words alone."""

from __future__ import annotations

from torch import Tensor, nn

from vlpipe.models.ctsan.attention import InputAttention, attention_sparsity
from vlpipe.models.ctsan.config import CTSANConfig
from vlpipe.nn.recurrent import LayerNormLSTM, LSTMState


class ConceptSentenceReader(nn.Module):
    """Embedded words (P, M, d), their mask (P, M) and each sentence's clip concepts
    (P, K, d) → the top layer's state after the last word (P, D) and g(γ) per sentence (P,)
    (None for Base-SAN)."""

    def __init__(self, config: CTSANConfig) -> None:
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.attention = InputAttention(config.word_dim) if config.detector else None
        self.input_proj = nn.Linear(config.word_dim, config.hidden)  # W_x
        self.lstm = LayerNormLSTM(config.hidden, config.hidden, config.layers, config.dropout)

    def forward(self, words: Tensor, mask: Tensor, concepts: Tensor | None,
                start: LSTMState | None = None) -> tuple[Tensor, Tensor | None]:
        """``start``: the LSTM's initial state (None: zeros)."""
        words, mask = self.dropout(words), mask.to(words.dtype)
        sparsity = None
        if self.attention is not None:
            words, gamma = self.attention.each_word(words, concepts)  # γ (P, M, K)
            sparsity = attention_sparsity(gamma, mask)
        _, (h, _) = self.lstm(self.input_proj(words), mask, start)  # (P, layers, D)
        return h[:, -1], sparsity
