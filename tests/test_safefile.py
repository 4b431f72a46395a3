"""A safetensors file is told apart from a pickle by its header, not by its first byte alone."""

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from synthkit.errors import CheckpointError
from synthkit.safefile import META_KEY, read_meta


def test_a_header_length_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    path = tmp_path / "m.safetensors"
    for pad in range(0, 512, 8):  # safetensors pads its header to 8 bytes: some length has 0x80 as first byte
        meta = {"kind": "ddpm", "pad": "x" * pad}
        save_file({"w": torch.zeros(2)}, str(path), metadata={META_KEY: json.dumps(meta)})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no header length with 0x80 as its first byte was reached")
    assert read_meta(path)[1]["kind"] == "ddpm"


def test_pickles_are_still_refused(tmp_path):
    for proto in (2, 4, 5):
        p = tmp_path / f"p{proto}.safetensors"
        p.write_bytes(pickle.dumps({"kind": "ddpm", "w": list(range(100))}, protocol=proto))
        with pytest.raises(CheckpointError, match="pickled"):
            read_meta(p)
