"""Overlap producing items with consuming them: a background thread runs ahead of the consumer.

Video decoding (PyAV, OpenCV) and encoding release the GIL, so a thread that decodes the next
frames while the main thread runs the model, or draws while another encodes, uses both cores.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(iterable: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Yield the items of ``iterable`` while a background thread produces up to ``depth`` ahead.

    Order is kept; an exception raised by the producer is re-raised in the consumer at the point
    where the failing item would have come. Closing the returned generator (or breaking out of a
    ``for`` loop over it, which closes it when it is collected) stops the producer; memory is
    bounded by ``depth`` items.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(iterable)
        try:
            for item in iterator:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, not swallowed
            put(_Failure(err))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="vistr-prefetch", daemon=True)
    thread.start()
    return _consume(items, stop, thread)


def _consume(items: queue.Queue, stop: threading.Event, thread: threading.Thread) -> Iterator:
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
