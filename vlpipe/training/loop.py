"""One training loop for every system: Adam or SGD with momentum, a step-wise learning rate,
gradient clipping, a validation pass per epoch, the best epoch's weights kept, and a resumable
checkpoint after every epoch.

A task provides ``train_batches(rng)``, ``loss(model, batch)``, ``evaluate(model, split, device)``
and ``selection_metric(metrics)``. A model may provide, each used only where it exists:

- ``initialise_from(task)``: called once before training (resumed runs too, whose checkpoint
  then overwrites the weights), e.g. to set parameters from the training data;
- ``start_epoch(epoch)``: called with the 1-based epoch number before its batches;
- ``phase_epochs``: epochs of the model's own first phase (TAPM's adaptation), run before and
  on top of the configured ``epochs``, so that a variant without the phase trains on the
  task's objective as long;
- ``epoch_stats()``: called after an epoch's batches; its dict of floats is logged as that
  epoch's ``train_stats``.

Each epoch is one log line (stderr: the job's log): its loss, validation score (named by the
task's ``spec.selection_label`` where it has one) and seconds.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from vlpipe.atomic import atomic_path, write_json
from vlpipe.device import resolve_device
from vlpipe.progress import DONE, PROGRESS
from vlpipe.training.events import EpochEvents, remove_event_files
from vlpipe.training.prefetch import prefetched

log = logging.getLogger(__name__)


OPTIMIZERS = ("adam", "sgd")


@dataclass
class TrainSettings:
    epochs: int = 20
    lr: float = 1e-4
    weight_decay: float = 0.0005  # the paper's λ‖θ‖², applied by the optimizer
    grad_clip: float = 5.0
    seed: int = 0
    device: str = "auto"
    optimizer: str = "adam"  # one of OPTIMIZERS
    momentum: float = 0.9  # SGD only
    lr_milestones: list[int] = field(default_factory=list)  # 1-based epochs after which…
    lr_decay: float = 0.1  # …the learning rate is multiplied by this
    prefetch: int = 2  # batches prepared ahead in a background thread (0: inline)
    patience: int = 0  # stop after this many epochs without a better validation score (0: never;
    #                    `epochs` is then the most)
    tensorboard: bool = False  # also write each epoch's log entry as TensorBoard event files

    def __post_init__(self) -> None:
        if self.patience < 0:
            raise ValueError(f"patience {self.patience}: must be ≥ 0 (0: train all epochs)")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r}: must be one of "
                             f"{', '.join(OPTIMIZERS)}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def best_entry(history: list[dict]) -> dict | None:
    """The logged epoch with the best validation score (the first of equals; NaN never), or
    None when there is none."""
    return max((h for h in history if not math.isnan(h["selection"])),
               key=lambda h: h["selection"], default=None)


def epochs_since_best(history: list[dict]) -> int:
    """Epochs run after the best one; all of them if there is none."""
    best = best_entry(history)
    return len(history) - (best["epoch"] if best else 0)


def selection_name(task) -> str:
    """What the task's validation score is, for the log (its spec's label, else "score")."""
    spec = getattr(task, "spec", None)
    return spec.selection_label if spec is not None else "score"


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                               weight_decay=settings.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=settings.lr,
                            weight_decay=settings.weight_decay)


def _save(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint or model file, loaded with ``weights_only=True``: tensors and plain
    containers only; a file that holds anything else (pickled code) is refused, naming it."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(
            f"{path}: refused to load: it holds objects other than tensors and plain containers "
            "(only weights_only=True loads are allowed); delete it to start over") from err


def _non_finite(out_dir: Path, what: str, value: torch.Tensor, epoch: int,
                step: int) -> FloatingPointError:
    """The error that stops a run; ``epoch`` (0-based) epochs are done and checkpointed."""
    kept = (f"checkpoint.pt (epoch {epoch}) and best.pt are as they were" if epoch else
            "nothing was saved yet")
    return FloatingPointError(f"{out_dir}: {what} is {value.item()} at epoch {epoch + 1}, step "
                              f"{step}; stopping ({kept})")


def _write_results(out_dir: Path, history: list[dict], summary: dict) -> None:
    with atomic_path(out_dir / "train_log.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(h) + "\n" for h in history))
    write_json(out_dir / "summary.json", summary)


def _score_fixed(model: torch.nn.Module, task, settings: TrainSettings, out_dir: Path,
                 device: torch.device, record: dict | None) -> dict:
    """A model with nothing to train (a fixed baseline such as a central-bias gaze map): one
    validation pass stands for its one epoch, and its weights are saved as they are."""
    log.info("no trainable parameters: the model is scored as it is (one validation pass)")
    metrics = task.evaluate(model, "val", device)
    score = task.selection_metric(metrics)
    history = [{"epoch": 1, "loss": float("nan"), "lr": 0.0, "val": metrics,
                "selection": score}]
    _save(out_dir / "model.pt", {"model": model.state_dict(), "epoch": 1, **(record or {})})
    summary = {"settings": asdict(settings), "best_selection": score, "best_epoch": 1, "epochs": 1,
               **(record or {})}
    _write_results(out_dir, history, summary)
    return summary


def train(model: torch.nn.Module, task, settings: TrainSettings, out_dir: str | Path,
          fingerprint: str = "", record: dict | None = None) -> dict:
    """Train ``model`` on ``task`` under ``out_dir``; return the summary.

    Writes ``checkpoint.pt`` (resume state: weights, optimiser, learning-rate schedule, every
    random generator) and ``best.pt`` after each epoch, and at the end ``model.pt`` (the best
    epoch's weights), ``train_log.jsonl`` (per epoch: loss, lr, val metrics) and
    ``summary.json``; ``model.pt`` and ``summary.json`` also hold ``record``'s entries (e.g.
    the code that trained). A run killed mid-way resumes from ``checkpoint.pt`` if it was
    written for the same ``fingerprint`` (model, data, settings, code) and ends as the
    uninterrupted run would (bit for bit on the CPU); a finished run leaves no checkpoint
    behind. With ``settings.tensorboard`` each epoch's log entry is also written as TensorBoard
    scalars into ``out_dir`` (`vlpipe.training.events`). A non-finite loss or gradient norm
    stops the run with a ``FloatingPointError`` before the step, so no saved file ever holds
    NaNs. An epoch whose validation score is NaN
    is never the best one; if every epoch's is, the run ends with a ``FloatingPointError``
    (nothing written but the checkpoint). With ``settings.patience`` > 0 training stops early once
    that many epochs in a row brought no better validation score (a resumed run too: the rule
    reads the logged history).

    The model's optional hooks (see the module docstring): ``initialise_from(task)`` once, after
    ``model.to(device)`` and before the optimiser is made and the checkpoint loaded;
    ``start_epoch(epoch)`` before each epoch's batches; ``epoch_stats()`` after them, logged
    under ``train_stats``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(settings.device)
    model.to(device)
    if hasattr(model, "initialise_from"):
        model.initialise_from(task)
    if not any(parameter.requires_grad for parameter in model.parameters()):
        return _score_fixed(model, task, settings, out_dir, device, record)
    optimizer = make_optimizer(model, settings)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, settings.lr_milestones,
                                                     settings.lr_decay)
    rng = np.random.default_rng(settings.seed)
    start_epoch, best, history = 0, -math.inf, []
    checkpoint = out_dir / "checkpoint.pt"
    state = load_state(checkpoint, device) if checkpoint.exists() else None
    if state is not None and state["fingerprint"] == fingerprint:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state:  # absent from checkpoints written before lr_milestones existed
            scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
        start_epoch, best, history = state["epoch"], state["best"], state["history"]
        log.info("resumed from %s at epoch %d", checkpoint, start_epoch)
    if not start_epoch:
        remove_event_files(out_dir)  # an earlier run's
    events = EpochEvents(out_dir, start_epoch) if settings.tensorboard else None
    epochs = settings.epochs + getattr(model, "phase_epochs", 0)
    for epoch in range(start_epoch, epochs):
        if settings.patience and history and epochs_since_best(history) >= settings.patience:
            log.info("validation plateau: no better score in the last %d epochs; stopping after "
                     "epoch %d of at most %d", settings.patience, epoch, epochs)
            break
        started = time.monotonic()
        model.train()
        if hasattr(model, "start_epoch"):
            model.start_epoch(epoch + 1)
        lr, losses = optimizer.param_groups[0]["lr"], []
        for batch in prefetched(task.train_batches(rng), settings.prefetch):
            loss = task.loss(model, batch.to(device))
            if not torch.isfinite(loss):
                raise _non_finite(out_dir, "the loss", loss, epoch, len(losses) + 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            if not torch.isfinite(norm):
                raise _non_finite(out_dir, "the gradient norm", norm, epoch, len(losses) + 1)
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
        entry = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": lr}
        if hasattr(model, "epoch_stats"):
            entry["train_stats"] = model.epoch_stats()
        metrics = task.evaluate(model, "val", device)
        score = task.selection_metric(metrics)
        history.append({**entry, "val": metrics, "selection": score})
        log.info("epoch %d/%d: loss %.4f, val %.2f (%s), %.1f s", epoch + 1, epochs,
                 history[-1]["loss"], score, selection_name(task), time.monotonic() - started,
                 extra=PROGRESS)
        if events is not None:
            events.add(history[-1])
        if math.isnan(score):
            log.warning("%s: epoch %d's validation score is NaN; it cannot be the best epoch",
                        out_dir, epoch + 1)
        if score > best:
            best = score
            _save(out_dir / "best.pt", {"model": model.state_dict(), "epoch": epoch + 1,
                                        **(record or {})})
        _save(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(),
                           "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                           "cuda_rng": (torch.cuda.get_rng_state(device)
                                        if device.type == "cuda" else None),
                           "epoch": epoch + 1, "best": best, "history": history,
                           "fingerprint": fingerprint})
    if events is not None:
        events.close()
    best_epoch = best_entry(history)
    if best_epoch is None:
        raise FloatingPointError(
            f"{out_dir}: the validation score (the task's selection metric) is NaN in every one "
            f"of the {len(history)} epochs, so no epoch's weights can be chosen; the last "
            f"epoch's validation metrics: {history[-1]['val'] if history else None}")
    log.info("done: best epoch %d of %d, val %.2f (%s)", best_epoch["epoch"], len(history),
             best_epoch["selection"], selection_name(task), extra=DONE)
    os.replace(out_dir / "best.pt", out_dir / "model.pt")
    checkpoint.unlink()
    summary = {"settings": asdict(settings), "best_selection": best,
               "best_epoch": best_epoch["epoch"],
               "epochs": len(history), **(record or {})}
    _write_results(out_dir, history, summary)
    return summary
