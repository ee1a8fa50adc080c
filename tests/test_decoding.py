"""Greedy and beam decoding against a fixed Markov 'language model' whose best captions are
computed by hand."""

import math

import torch

from vlpipe.nn.beam_search import beam_search, greedy_decode, select_rows

END, A, B = 0, 1, 2
# P(next | previous); the end token also starts every sequence
TRANSITIONS = torch.tensor([[0.0, 0.6, 0.4],    # from the start: a 0.6, b 0.4
                            [0.4, 0.5, 0.1],    # from a: end 0.4, a 0.5, b 0.1
                            [0.9, 0.05, 0.05]])  # from b: end 0.9


def markov_step(tokens, state):
    return TRANSITIONS[tokens].clamp(min=1e-9).log(), {"calls": state["calls"] + 1}


def start_state(batch):
    return {"calls": torch.zeros(batch, 1)}


def test_greedy_follows_the_locally_best_word():
    # start → a (0.6) → a (0.5 beats end 0.4) → a … until max_len
    assert greedy_decode(markov_step, start_state(2), 2, END, END, max_len=3) == [[A, A, A]] * 2


def test_beam_search_finds_the_more_probable_caption():
    # beam 2, step 2: b·end = 0.4·0.9 = 0.36 beats a·a = 0.30 and a·end = 0.24; no open beam
    # (a·a, 0.30) can still beat 0.36, so the search stops with [b]
    assert beam_search(markov_step, start_state(1), 1, END, END, max_len=5, beam=2) == [[B]]
    # beam 1 is greedy, except that it returns the open sequence at max_len
    assert beam_search(markov_step, start_state(1), 1, END, END, max_len=3, beam=1) == [[A, A, A]]


def test_length_penalty_can_prefer_a_longer_caption():
    # score = log p / steps²  (penalty 2, steps counting the end token), max_len 3:
    # [b]: log 0.36 / 4 = −0.255; [a, a]: log 0.12 / 9 = −0.236; open [a, a, a]: log 0.15 / 9
    # = −0.211 — the longest wins, where the plain sum picks [b]
    settings = {"start_id": END, "end_id": END, "max_len": 3, "beam": 3}
    assert beam_search(markov_step, start_state(1), 1, **settings) == [[B]]
    assert beam_search(markov_step, start_state(1), 1, length_penalty=2.0,
                       **settings) == [[A, A, A]]
    assert math.log(0.15) / 9 > math.log(0.12) / 9 > math.log(0.36) / 4


def test_select_rows_reorders_every_tensor_of_a_nested_state():
    state = {"h": torch.arange(3.0), "pair": (torch.arange(6).view(3, 2), torch.ones(3, 1))}
    picked = select_rows(state, torch.tensor([2, 0, 0]))
    assert picked["h"].tolist() == [2.0, 0.0, 0.0]
    assert picked["pair"][0].tolist() == [[4, 5], [0, 1], [0, 1]]
    assert isinstance(picked["pair"], tuple)
