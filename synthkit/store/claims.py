"""Shard claims, so that concurrent ``generate --resume`` runs split the unfinished shards instead of each
redoing all of them.

Before a task generates shard ``k`` it creates ``claims/<k>`` inside the store (``O_CREAT | O_EXCL``: one
process wins) holding its pid, host and time, and removes it once ``shard_done[k]`` is written. Another task
that finds a live claim skips the shard; a stale claim — its process is gone (same host), or it is older than
:data:`STALE_SECONDS` (another host, where the pid cannot be checked) — is taken over. Two takers of one stale
claim may both write the shard; that is harmless (both write the same bytes, and each file is replaced
atomically), only wasted work.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

CLAIMS = "claims"
#: a claim from another host older than this is taken over (its owner cannot be asked whether it is alive)
STALE_SECONDS = 3600.0


def _file(store: str | Path, shard: int) -> Path:
    return Path(store) / CLAIMS / str(shard)


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()}


def owner(store: str | Path, shard: int) -> dict[str, Any] | None:
    """The claim on a shard, or None (no claim, or one being written or removed right now)."""
    try:
        data = json.loads(_file(store, shard).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_live(claim: dict[str, Any] | None) -> bool:
    """Whether a claim's owner may still be writing its shard."""
    if claim is None:
        return False
    if claim.get("host") != socket.gethostname():
        return time.time() - float(claim.get("time", 0)) < STALE_SECONDS
    pid = int(claim.get("pid", -1))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def claim(store: str | Path, shard: int) -> dict[str, Any] | None:
    """Claim a shard for this process. Returns None once it is ours, or the live claim of another process."""
    f = _file(store, shard)
    f.parent.mkdir(exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            current = owner(store, shard)
            if is_live(current) and current.get("pid") != os.getpid():  # type: ignore[union-attr]
                return current
            if current is not None and current.get("pid") == os.getpid():
                return None  # a retry of our own task
            f.unlink(missing_ok=True)  # stale (or unreadable): take it over
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(_me(), fh)
        return None
    return owner(store, shard) or {"pid": None, "host": "?", "time": time.time()}


def release(store: str | Path, shard: int) -> None:
    """Remove this process's claim on a shard (after its done flag is written)."""
    current = owner(store, shard)
    if current is None or (current.get("pid") == os.getpid() and current.get("host") == socket.gethostname()):
        _file(store, shard).unlink(missing_ok=True)


def clear(store: str | Path) -> None:
    """Remove the claims folder of a finished store."""
    shutil.rmtree(Path(store) / CLAIMS, ignore_errors=True)
