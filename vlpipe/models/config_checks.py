"""Checks the model families' config dataclasses share (torch-free: run while the workflow is
planned); errors name the field and its value."""

from __future__ import annotations


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_positive(config: object, *names: str) -> None:
    """Each field ``names`` of ``config`` is a positive integer."""
    for name in names:
        value = getattr(config, name)
        if not _positive_int(value):
            raise ValueError(f"{name}={value!r}: must be a positive integer")


def positive_tuple(config: object, name: str, what: str) -> None:
    """Field ``name`` is a non-empty list of positive integers (``what``: one per which layer);
    it is stored as a tuple."""
    value = getattr(config, name)
    if isinstance(value, int) or not value:
        raise ValueError(f"{name}={value!r}: a non-empty list, {what}")
    if not all(_positive_int(entry) for entry in value):
        raise ValueError(f"{name}={list(value)}: every entry must be a positive integer")
    setattr(config, name, tuple(value))


def check_dropout(config: object) -> None:
    """``config.dropout`` is a probability below 1."""
    if not 0 <= config.dropout < 1:
        raise ValueError(f"dropout={config.dropout!r}: must be in [0, 1)")
