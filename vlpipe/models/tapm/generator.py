"""TAPM's language generators (thesis §7.3.2), one interface: ``embed(tokens)`` → (B, T, W),
``forward(embeddings (B, T, W))`` → causal hidden states (B, T, W), ``logits(hidden)`` →
(B, T, outputs). The input is a sequence of embeddings, so visual vectors enter as tokens do.

- GPT-2 (`transformers`' ``GPT2Model``), its token embedding tied to the output layer as in
  GPT-2: trained from scratch (the thesis's GPT2-Scratch row), or started from the published
  weights of a local directory (``pretrained``; the tokens are then the tokenizer's,
  `vlpipe.text.pretrained`, and TAPM's own tokens get new embedding rows);
- a stacked LSTM (the thesis's LSTM-Scratch row).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vlpipe.models.tapm.config import TAPMConfig
from vlpipe.text.pretrained import OFFSET

GPT2_POSITIONS = 1024  # GPT-2's context length


class GPT2Generator(nn.Module):
    """GPT-2 over ``tokens`` embeddings (words and TAPM's special tokens), scoring the first
    ``outputs`` of them."""

    def __init__(self, config: TAPMConfig, tokens: int, outputs: int) -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        dropout = {"resid_pdrop": config.dropout, "embd_pdrop": config.dropout,
                   "attn_pdrop": config.dropout}
        if config.pretrained:
            self.model = GPT2Model.from_pretrained(config.pretrained, local_files_only=True,
                                                   **dropout)
            self._add_token_rows(tokens)
        else:
            settings = GPT2Config(vocab_size=tokens, n_positions=GPT2_POSITIONS,
                                  n_embd=config.width, n_layer=config.layers,
                                  n_head=config.heads, bos_token_id=None, eos_token_id=None,
                                  **dropout)
            self.model = GPT2Model(settings)
        self.outputs = outputs

    def _add_token_rows(self, tokens: int) -> None:
        """The published embedding (n, W) as rows OFFSET … OFFSET + n − 1 of a (tokens, W) one:
        the padding row before them, TAPM's tokens after, initialised as GPT-2 initialises."""
        published = self.model.get_input_embeddings().weight.detach()
        if tokens < len(published) + OFFSET:
            raise ValueError(f"{tokens} token ids for a GPT-2 of {len(published)} tokens: the "
                             "task must read its tokenizer (vlpipe.text.pretrained)")
        embedding = nn.Embedding(tokens, published.shape[1])
        nn.init.normal_(embedding.weight, std=self.model.config.initializer_range)
        with torch.no_grad():
            embedding.weight[OFFSET : OFFSET + len(published)] = published
        self.model.set_input_embeddings(embedding)

    def embed(self, tokens: Tensor) -> Tensor:
        return self.model.wte(tokens)

    def forward(self, embeddings: Tensor) -> Tensor:
        return self.model(inputs_embeds=embeddings).last_hidden_state

    def logits(self, hidden: Tensor) -> Tensor:
        return hidden @ self.model.wte.weight[: self.outputs].T  # tied, as GPT-2's head


class LSTMGenerator(nn.Module):
    """A ``layers``-deep LSTM of width ``width`` over the same sequence."""

    def __init__(self, config: TAPMConfig, tokens: int, outputs: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(tokens, config.width)
        self.lstm = nn.LSTM(config.width, config.width, config.layers, batch_first=True,
                            dropout=config.dropout if config.layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.width, outputs)

    def embed(self, tokens: Tensor) -> Tensor:
        return self.embedding(tokens)

    def forward(self, embeddings: Tensor) -> Tensor:
        return self.lstm(self.dropout(embeddings))[0]

    def logits(self, hidden: Tensor) -> Tensor:
        return self.out(self.dropout(hidden))


GENERATORS = {"gpt2": GPT2Generator, "lstm": LSTMGenerator}
