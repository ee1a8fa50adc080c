"""Caption decoding shared by every captioning model: greedy and beam search.

A model exposes one decoder step, ``step(tokens (B,), state) -> (log_probs (B, V), state)``,
where ``state`` is a tensor or a tuple/list/dict of tensors whose first dimension is the batch
(recurrent states, the clip's encoded frames and their mask). Decoding starts from
``start_id`` and a sequence ends when it emits ``end_id`` (not part of the result) or reaches
``max_len`` tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

State = Any  # a tensor or nested tuple/list/dict of tensors, batch first
Step = Callable[[Tensor, State], tuple[Tensor, State]]


def select_rows(state: State, index: Tensor) -> State:
    """``state`` with every tensor's batch rows taken at ``index``."""
    if isinstance(state, Tensor):
        return state.index_select(0, index)
    if isinstance(state, dict):
        return {key: select_rows(value, index) for key, value in state.items()}
    return type(state)(select_rows(value, index) for value in state)


def _trim(rows: Tensor, end_id: int) -> list[list[int]]:
    """Token rows (B, T) → lists cut before the first ``end_id``."""
    sequences = []
    for row in rows.tolist():
        sequences.append(row[: row.index(end_id)] if end_id in row else row)
    return sequences


def teacher_forced(model, feats: Tensor, mask: Tensor, inputs: Tensor) -> Tensor:
    """Teacher forcing through a captioner's ``start``/``step``: clips and input tokens (B, T)
    (the start token first) → log-probabilities (B, T, V), one decoder step per token."""
    state = model.start(feats, mask)
    steps = []
    for t in range(inputs.shape[1]):
        log_probs, state = model.step(inputs[:, t], state)
        steps.append(log_probs)
    return torch.stack(steps, dim=1)


@torch.no_grad()
def greedy_decode(step: Step, state: State, batch: int, start_id: int, end_id: int,
                  max_len: int) -> list[list[int]]:
    """The most probable token at every step, for ``batch`` sequences at once."""
    device = next(t for t in _tensors(state)).device
    tokens = torch.full((batch,), start_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    out = []
    for _ in range(max_len):
        log_probs, state = step(tokens, state)  # (B, V)
        tokens = log_probs.argmax(dim=-1).masked_fill(finished, end_id)
        out.append(tokens)
        finished |= tokens == end_id
        if finished.all():
            break
    return _trim(torch.stack(out, dim=1), end_id)


@torch.no_grad()
def beam_search(step: Step, state: State, batch: int, start_id: int, end_id: int,
                max_len: int, beam: int = 3, length_penalty: float = 0.0) -> list[list[int]]:
    """Beam search per sequence: the ``beam`` best partial sequences by summed log-probability
    are kept at every step; a finished hypothesis competes by its score divided by
    ``length ** length_penalty`` (0: plain sum, as greedy's criterion)."""
    device = next(t for t in _tensors(state)).device
    state = select_rows(state, torch.arange(batch, device=device).repeat_interleave(beam))
    tokens = torch.full((batch * beam,), start_id, dtype=torch.long, device=device)
    scores = torch.full((batch, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one so they do not duplicate
    history = torch.zeros(batch * beam, 0, dtype=torch.long, device=device)
    best: list[tuple[float, list[int]] | None] = [None] * batch
    for length in range(1, max_len + 1):
        log_probs, state = step(tokens, state)  # (B·K, V)
        vocab = log_probs.shape[-1]
        total = (scores.reshape(-1, 1) + log_probs.float()).reshape(batch, beam * vocab)
        top, flat = total.topk(beam, dim=-1)  # (B, K)
        parent = flat // vocab + torch.arange(batch, device=device)[:, None] * beam
        tokens, parent = (flat % vocab).reshape(-1), parent.reshape(-1)
        history = torch.cat([history[parent], tokens[:, None]], dim=1)  # (B·K, length)
        state = select_rows(state, parent)
        ended = (tokens == end_id).reshape(batch, beam)
        for b, k in ended.nonzero().tolist():
            score = top[b, k].item() / length ** length_penalty
            if best[b] is None or score > best[b][0]:
                best[b] = (score, history[b * beam + k, :-1].tolist())
        scores = top.masked_fill(ended, float("-inf"))
        if length_penalty == 0 and all(
                found is not None and scores[b].max().item() <= found[0]
                for b, found in enumerate(best)):
            break  # log-probabilities only add up negatively: no open beam can still win
    for b in range(batch):  # an open beam may beat every finished one (or none finished)
        k = int(scores[b].argmax())
        score = scores[b, k].item() / length ** length_penalty
        if best[b] is None or score > best[b][0]:
            best[b] = (score, history[b * beam + k].tolist())
    return [sequence for _, sequence in best]


def _tensors(state: State):
    if isinstance(state, Tensor):
        yield state
    else:
        for value in state.values() if isinstance(state, dict) else state:
            yield from _tensors(value)


def decode(step: Step, state: State, batch: int, start_id: int, end_id: int, max_len: int,
           beam: int = 1) -> list[list[int]]:
    """``batch`` sequences by beam search with ``beam`` hypotheses, greedily when 1."""
    settings = {"batch": batch, "start_id": start_id, "end_id": end_id, "max_len": max_len}
    if beam > 1:
        return beam_search(step, state, beam=beam, **settings)
    return greedy_decode(step, state, **settings)

