"""Batches prepared in a background thread while the model trains on the previous ones.

The task's generator runs in one thread, in order, so it draws from its random generator
exactly as it would inline (runs stay bit-identical and resumable); the features it reads come
from the stores (Zarr decompression and NumPy release the GIL), overlapping with the step.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items`` in order, up to ``depth`` prepared ahead by a background thread (``depth`` 0:
    inline). An error raised while preparing an item is raised here, where that item would be;
    stopping early (an error in the consumer) stops the thread."""
    if depth < 1:
        yield from items
        return
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put(_Failure(error))
            return
        put(_END)

    worker = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()
