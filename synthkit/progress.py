"""Progress over a loop that a user waits on: rich's bar on a terminal, plain lines off it.

Off a terminal (output redirected to a file, a batch job's log) a rich bar prints nothing until it ends — a
transient one nothing at all — so a long step (registering hundreds of real scans at ~10 s each before
training starts) looked hung. There, :func:`track` prints ``<description>: i/n, r/s, ETA s`` every
``every_seconds`` and once at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def track(
    items: Iterable[T],
    *,
    description: str,
    total: int | None = None,
    transient: bool = False,
    every_seconds: float = 30.0,
) -> Iterator[T]:
    """Iterate over ``items`` with progress shown (see the module docstring)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if sys.stdout.isatty():
        from rich.progress import track as rich_track

        yield from rich_track(items, total=total, description=description, transient=transient)
        return
    t0 = last = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        now = time.perf_counter()
        if now - last >= every_seconds or done == total:
            last = now
            rate = done / max(now - t0, 1e-9)
            of = f"/{total}" if total is not None else ""
            eta = f", ETA {(total - done) / rate:.0f} s" if total is not None and rate > 0 else ""
            print(f"{description}: {done}{of}, {rate:.2f}/s{eta}", flush=True)
