"""Shard claims: one owner at a time, live claims respected, stale ones taken over."""

import json
import os
import socket
import subprocess
import sys
import time

from synthkit.store import claims


def write_claim(store, shard, **kw):
    (store / "claims").mkdir(exist_ok=True)
    (store / "claims" / str(shard)).write_text(json.dumps({"pid": 1, "host": socket.gethostname(), "time": time.time(), **kw}))


def test_claim_release_and_a_live_claim_is_respected(tmp_path):
    assert claims.claim(tmp_path, 3) is None
    assert claims.owner(tmp_path, 3)["pid"] == os.getpid()
    assert claims.claim(tmp_path, 3) is None  # our own claim (a retried task)
    claims.release(tmp_path, 3)
    assert claims.owner(tmp_path, 3) is None
    write_claim(tmp_path, 4, pid=os.getppid())  # a live process on this host
    assert claims.claim(tmp_path, 4)["pid"] == os.getppid()
    write_claim(tmp_path, 5, host="elsewhere")  # another host, recent
    assert claims.claim(tmp_path, 5)["host"] == "elsewhere"


def test_stale_claims_are_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_claim(tmp_path, 1, pid=dead.pid)  # its process is gone
    assert claims.claim(tmp_path, 1) is None and claims.owner(tmp_path, 1)["pid"] == os.getpid()
    write_claim(tmp_path, 2, host="elsewhere", time=time.time() - claims.STALE_SECONDS - 1)
    assert claims.claim(tmp_path, 2) is None
    (tmp_path / "claims" / "6").write_text("{half a claim")
    assert claims.claim(tmp_path, 6) is None
    claims.clear(tmp_path)
    assert not (tmp_path / "claims").exists()
