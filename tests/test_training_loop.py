"""The training loop on a one-parameter model: the optimisers' steps as computed by hand, the
learning-rate milestones, a resume that ends bit for bit as the uninterrupted run, and the
model's optional hooks."""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vlpipe.training import TrainSettings, loop, train
from vlpipe.training.loop import load_state


class Scalar(torch.nn.Module):
    """``w * x`` with one float64 weight, 1 at the start."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x


class Hooked(Scalar):
    """A scalar model with every optional hook; each call is appended to ``calls``."""

    def __init__(self, calls: list) -> None:
        super().__init__()
        self.calls, self.epoch = calls, 0

    def initialise_from(self, task: FakeTask) -> None:
        self.calls.append(("initialise_from", task))
        with torch.no_grad():
            self.w.fill_(task.initial_w)

    def start_epoch(self, epoch: int) -> None:
        self.calls.append(("start_epoch", epoch))
        self.epoch = epoch

    def epoch_stats(self) -> dict:
        self.calls.append(("epoch_stats", self.epoch))
        return {"epoch_twice": 2.0 * self.epoch}


class FakeTask:
    """``batches`` batches per epoch of 4 inputs, ones (the loss is then w²) or drawn from the
    loop's generator (``random``); the loss is the mean squared output, the validation metric
    the weight itself. It raises at the start of epoch ``fail_at`` (a run killed there)."""

    def __init__(self, batches: int = 1, random: bool = False, fail_at: int = 0,
                 calls: list | None = None, initial_w: float = 2.0) -> None:
        self.batches, self.random, self.fail_at = batches, random, fail_at
        self.calls, self.initial_w, self.epoch = calls, initial_w, 0

    def train_batches(self, rng: np.random.Generator):
        self.epoch += 1
        if self.epoch == self.fail_at:
            raise RuntimeError(f"killed at the start of epoch {self.epoch}")
        if self.calls is not None:
            self.calls.append(("batches", self.epoch))
        for _ in range(self.batches):
            yield torch.as_tensor(rng.normal(size=4) if self.random else np.ones(4))

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return model(batch).pow(2).mean()

    def evaluate(self, model: torch.nn.Module, split: str, device) -> dict:
        return {"w": model.w.item()}

    def selection_metric(self, metrics: dict) -> float:
        return -abs(metrics["w"])


def run(model: torch.nn.Module, task: FakeTask, out_dir, **settings) -> list[dict]:
    """Train on the CPU with no effective clipping; return train_log.jsonl's entries."""
    train(model, task, TrainSettings(**{"device": "cpu", "grad_clip": 1e6, **settings}), out_dir)
    return [json.loads(line) for line in (out_dir / "train_log.jsonl").read_text().splitlines()]


def test_sgd_steps_with_momentum_and_weight_decay(tmp_path):
    """loss w², so the gradient with weight decay 0.5 is 2.5 w; w0 = 1, lr 0.1, momentum 0.9:
    step 1: b = 2.5,                 w = 1 - 0.1 · 2.5 = 0.75;
    step 2: b = 0.9 · 2.5 + 1.875 = 4.125, w = 0.75 - 0.1 · 4.125 = 0.3375."""
    model = Scalar()
    history = run(model, FakeTask(), tmp_path, optimizer="sgd", lr=0.1, momentum=0.9,
                  weight_decay=0.5, epochs=2)
    assert [h["val"]["w"] for h in history] == pytest.approx([0.75, 0.3375], rel=1e-12)
    assert model.w.item() == pytest.approx(0.3375, rel=1e-12)
    assert all("train_stats" not in h for h in history)  # a model without hooks


def test_adam_by_default_as_torch_steps_it(tmp_path):
    """The default settings step as torch's Adam with weight decay and clipping does."""
    settings = TrainSettings()
    history = run(Scalar(), FakeTask(batches=2), tmp_path, epochs=3,
                  grad_clip=settings.grad_clip)
    w = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
    adam = torch.optim.Adam([w], lr=settings.lr, weight_decay=settings.weight_decay)
    expected = []
    for _ in range(3):
        for _ in range(2):
            adam.zero_grad()
            (w * torch.ones(4, dtype=torch.float64)).pow(2).mean().backward()
            torch.nn.utils.clip_grad_norm_([w], settings.grad_clip)
            adam.step()
        expected.append(w.item())
    assert [h["val"]["w"] for h in history] == expected
    assert [h["lr"] for h in history] == [settings.lr] * 3


def test_lr_is_multiplied_by_the_decay_after_each_milestone(tmp_path):
    history = run(Scalar(), FakeTask(), tmp_path, optimizer="sgd", lr=0.1, lr_milestones=[2, 3],
                  lr_decay=0.1, epochs=4)
    assert [h["lr"] for h in history] == pytest.approx([0.1, 0.1, 0.01, 0.001], rel=1e-12)


def test_a_resumed_run_ends_as_the_uninterrupted_one(tmp_path):
    """SGD with milestones on either side of the kill (after epoch 2); the resumed model's
    ``initialise_from`` sets another weight, which the checkpoint's then replaces."""
    settings = {"optimizer": "sgd", "lr": 0.1, "lr_milestones": [2, 3], "epochs": 4}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    expected = run(Hooked([]), FakeTask(batches=3, random=True), whole, **settings)
    with pytest.raises(RuntimeError, match="killed at the start of epoch 3"):
        run(Hooked([]), FakeTask(batches=3, random=True, fail_at=3), killed, **settings)
    assert load_state(killed / "checkpoint.pt")["epoch"] == 2
    calls = []
    task = FakeTask(batches=3, random=True, calls=calls, initial_w=-7.0)
    assert run(Hooked(calls), task, killed, **settings) == expected
    assert calls[0] == ("initialise_from", task)
    assert [c for c in calls if c[0] == "start_epoch"] == [("start_epoch", 3), ("start_epoch", 4)]
    whole_w, killed_w = (load_state(d / "model.pt")["model"]["w"] for d in (whole, killed))
    assert torch.equal(whole_w, killed_w)
    assert sorted(p.name for p in killed.iterdir()) == ["model.pt", "summary.json",
                                                        "train_log.jsonl"]


def test_hooks_are_called_in_order_and_stats_logged(tmp_path):
    calls = []
    task = FakeTask(calls=calls, initial_w=3.0)
    history = run(Hooked(calls), task, tmp_path, optimizer="sgd", lr=0.1, momentum=0.0,
                  weight_decay=0.0, epochs=3)
    assert calls == [("initialise_from", task),
                     *[(name, epoch) for epoch in (1, 2, 3)
                       for name in ("start_epoch", "batches", "epoch_stats")]]
    assert [h["train_stats"] for h in history] == [{"epoch_twice": 2.0}, {"epoch_twice": 4.0},
                                                   {"epoch_twice": 6.0}]
    assert history[0]["val"]["w"] == pytest.approx(3.0 - 0.1 * 6.0)  # trained from w = 3


def test_a_models_own_first_phase_comes_on_top_of_the_epochs(tmp_path):
    calls = []
    model = Hooked(calls)
    model.phase_epochs = 2  # TAPM's adaptation phase
    history = run(model, FakeTask(calls=calls), tmp_path, epochs=3)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert [c for c in calls if c[0] == "start_epoch"] == [("start_epoch", e) for e in range(1, 6)]


def test_an_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="'adamw': must be one of adam, sgd"):
        TrainSettings(optimizer="adamw")


class NanTask(FakeTask):
    """The validation score is NaN in the epochs listed in ``nan_epochs``."""

    def __init__(self, nan_epochs: set[int]) -> None:
        super().__init__()
        self.nan_epochs = nan_epochs

    def selection_metric(self, metrics: dict) -> float:
        return math.nan if self.epoch in self.nan_epochs else super().selection_metric(metrics)


def test_a_nan_validation_score_is_never_the_best_epoch(tmp_path):
    """w shrinks each epoch, so the last epoch is the best, unless its score is NaN."""
    run(Scalar(), NanTask({3}), tmp_path, optimizer="sgd", lr=0.1, epochs=3)
    assert json.loads((tmp_path / "summary.json").read_text())["best_epoch"] == 2


def test_nan_validation_in_every_epoch_is_a_clear_error(tmp_path):
    with pytest.raises(FloatingPointError, match=r"NaN in every one of the 2 epochs.*'w': "):
        run(Scalar(), NanTask({1, 2}), tmp_path, epochs=2)
    assert not (tmp_path / "model.pt").exists()


class PlateauTask(FakeTask):
    """The validation score of each epoch is given: ``scores[epoch - 1]``."""

    def __init__(self, scores: list[float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.scores = scores

    def selection_metric(self, metrics: dict) -> float:
        return self.scores[self.epoch - 1]


def test_training_stops_after_patience_epochs_without_a_better_score(tmp_path):
    """Best at epoch 2 (a tie at 4 is no improvement): patience 2 stops after epoch 4."""
    history = run(Scalar(), PlateauTask([1.0, 3.0, 2.0, 3.0, 9.0, 9.0]), tmp_path, epochs=6,
                  patience=2)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["best_epoch"], summary["epochs"]) == (2, 4)
    assert load_state(tmp_path / "model.pt")["epoch"] == 2


def test_without_patience_every_epoch_runs(tmp_path):
    history = run(Scalar(), PlateauTask([3.0, 2.0, 1.0, 0.0]), tmp_path, epochs=4)
    assert len(history) == 4


def test_a_resumed_run_stops_on_the_plateau_its_history_shows(tmp_path, monkeypatch):
    """Killed after the plateau's last checkpoint, before the model file was written: the
    resumed run trains no further epoch and ends with the uninterrupted run's files."""
    scores = [5.0, 4.0, 4.5, 9.0]
    whole = run(Scalar(), PlateauTask(scores), tmp_path / "whole", epochs=4, patience=2)

    replace = os.replace

    def killed(source, target):
        if Path(target).name == "model.pt":
            raise KeyboardInterrupt("killed before the model file")
        replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr("vlpipe.training.loop.os.replace", killed)
        with pytest.raises(KeyboardInterrupt):
            run(Scalar(), PlateauTask(scores), tmp_path / "killed", epochs=4, patience=2)
    assert load_state(tmp_path / "killed" / "checkpoint.pt")["epoch"] == 3
    task = PlateauTask(scores)
    assert run(Scalar(), task, tmp_path / "killed", epochs=4, patience=2) == whole
    assert task.epoch == 0  # no batch drawn after the resume
    assert [h["epoch"] for h in whole] == [1, 2, 3]


def test_a_negative_patience_is_refused():
    with pytest.raises(ValueError, match="patience -1"):
        TrainSettings(patience=-1)


class LabelledTask(FakeTask):
    """A task whose spec names its validation score, as the real tasks' specs do."""

    spec = SimpleNamespace(selection_label="minus |w|")


def test_each_epoch_logs_its_loss_validation_score_and_seconds(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="vlpipe.training.loop"):
        history = run(Scalar(), LabelledTask(), tmp_path, optimizer="sgd", lr=0.1, epochs=2)
    lines = [m for m in caplog.messages if m.startswith("epoch")]
    assert [re.sub(r"\d+\.\d s$", "X s", m) for m in lines] == [
        f"epoch {h['epoch']}/2: loss {h['loss']:.4f}, val {h['selection']:.2f} (minus |w|), X s"
        for h in history]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vlpipe.training.loop"):
        run(Scalar(), FakeTask(), tmp_path / "unlabelled", epochs=1)
    assert re.fullmatch(r"epoch 1/1: loss 1\.0000, val -1\.00 \(score\), \d+\.\d s",
                        next(m for m in caplog.messages if m.startswith("epoch")))


def event_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag → (step, value) of every scalar in ``run_dir``'s event files, as TensorBoard reads
    them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


def logged_scalars(history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """The same from train_log.jsonl's entries: each number under its "/"-joined keys."""
    tags = {"loss": ["loss"], "lr": ["lr"], "selection": ["selection"], "val/w": ["val", "w"],
            "train_stats/epoch_twice": ["train_stats", "epoch_twice"]}
    return {tag: [(h["epoch"], functools.reduce(dict.get, keys, h)) for h in history]
            for tag, keys in tags.items()}


def assert_same_scalars(events: dict, logged: dict) -> None:
    assert events.keys() == logged.keys()
    for tag, values in logged.items():  # event files hold float32
        assert [step for step, _ in events[tag]] == [step for step, _ in values], tag
        assert [v for _, v in events[tag]] == pytest.approx([v for _, v in values], rel=1e-6)


def test_tensorboard_events_hold_the_logged_scalars_and_off_writes_none(tmp_path):
    settings = {"optimizer": "sgd", "lr": 0.1, "lr_milestones": [2], "epochs": 3}
    history = run(Hooked([]), FakeTask(batches=2, random=True), tmp_path, tensorboard=True,
                  **settings)
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
    assert_same_scalars(event_scalars(tmp_path), logged_scalars(history))
    run(Hooked([]), FakeTask(), tmp_path, **settings)  # trained again, without: none left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "summary.json",
                                                          "train_log.jsonl"]


def test_a_resumed_run_replaces_the_events_of_the_epoch_it_redoes(tmp_path, monkeypatch):
    """Killed while saving epoch 3's checkpoint, after its events were written: the resumed
    run redoes epoch 3, and TensorBoard reads each epoch once, as the uninterrupted run's."""
    settings = {"optimizer": "sgd", "lr": 0.1, "epochs": 4, "tensorboard": True}
    whole = run(Hooked([]), FakeTask(batches=3, random=True), tmp_path / "whole", **settings)
    save = loop._save

    def killed(path, state):
        if path.name == "checkpoint.pt" and state["epoch"] == 3:
            raise KeyboardInterrupt("killed while saving epoch 3")
        save(path, state)

    with monkeypatch.context() as patch:
        patch.setattr(loop, "_save", killed)
        with pytest.raises(KeyboardInterrupt):
            run(Hooked([]), FakeTask(batches=3, random=True), tmp_path / "killed", **settings)
    assert [step for step, _ in event_scalars(tmp_path / "killed")["loss"]] == [1, 2, 3]
    assert run(Hooked([]), FakeTask(batches=3, random=True), tmp_path / "killed",
               **settings) == whole
    assert_same_scalars(event_scalars(tmp_path / "killed"), logged_scalars(whole))


def test_a_model_with_nothing_to_train_is_scored_once(tmp_path):
    """A fixed baseline (no trainable parameter) gets one validation pass, its weights saved
    as they are, and no optimiser is made (Adam refuses an empty parameter list)."""

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("value", torch.tensor(0.25))

    class Task:
        def train_batches(self, rng):
            raise AssertionError("a fixed model is not trained")

        def evaluate(self, model, split, device):
            return {"score": float(model.value)}

        def selection_metric(self, metrics):
            return metrics["score"]

    summary = train(Fixed(), Task(), TrainSettings(epochs=5), tmp_path)
    assert summary["epochs"] == 1 and summary["best_selection"] == 0.25
    history = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert len(history) == 1 and history[0]["val"] == {"score": 0.25}
    assert torch.load(tmp_path / "model.pt")["model"]["value"] == 0.25
    assert not (tmp_path / "checkpoint.pt").exists()
