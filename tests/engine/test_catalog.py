"""engine.catalog and engine.atomic, the index format's ground floor: atomic writes, errors that say what to do."""
import os
from pathlib import Path

import numpy as np
import pytest

from engine.atomic import atomic_write
from engine.catalog import CATALOG, read_meta, save_array
from engine.errors import Hint, IndexNotFound, IndexWriteError


def test_an_atomic_write_replaces_the_file_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"first"))
    assert target.read_bytes() == b"first"

    def fails(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, fails)
    assert target.read_bytes() == b"first" and os.listdir(target.parent) == ["a.bin"]  # no temporary file left


def test_a_fixed_temporary_name_is_never_an_existing_file(tmp_path):
    target, tmp = tmp_path / "a.npy", tmp_path / "a.npy.tmp"
    tmp.write_bytes(b"someone's")
    with pytest.raises(FileExistsError):
        atomic_write(target, lambda t: None, tmp=tmp)
    assert tmp.read_bytes() == b"someone's" and not target.exists()


def test_an_index_array_that_cannot_be_written_names_the_file(tmp_path):
    save_array(tmp_path / "chunk-1.codes.npy", np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "chunk-1.codes.npy"), np.arange(3))
    (tmp_path / "chunk-2.codes.npy.tmp").write_bytes(b"")  # left by a killed writer, not yet cleaned
    with pytest.raises(IndexWriteError, match="cannot write chunk-2.codes.npy"):
        save_array(tmp_path / "chunk-2.codes.npy", np.arange(3))


def test_a_folder_without_an_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexNotFound, match=f"no {CATALOG}") as e:
        read_meta(tmp_path)
    assert e.value.hint == Hint("build", str(tmp_path))
    with pytest.raises(IndexNotFound, match="no such index") as e:
        read_meta(tmp_path / "absent")
    assert e.value.hint == Hint("build", str(tmp_path / "absent"))
