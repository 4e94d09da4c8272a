"""The command line never shows a traceback for an expected failure: each is one line ``sketchsearch: error:
...`` naming the thing, exit 2 (bad options are argparse's error line, exit 2); a bug is one line ``internal
error`` (exit 1) unless SKETCHSEARCH_DEBUG is set.  File names are printed escaped in text output."""
from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import engine.indexer
import engine.shards
from app.cli import main, printable, read_sketch_list
from engine.errors import SketchSearchError
from tests.engine.synth import photo_with_shape, sketch_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors-photos")
    cv2.imwrite(str(root / "house.jpg"), photo_with_shape("house", (40, 60, 380, 460), seed=1)[..., ::-1])
    cv2.imwrite(str(root / "star.png"), photo_with_shape("star", (100, 30, 500, 430), seed=2)[..., ::-1])
    path = tmp_path_factory.mktemp("errors-db") / "index"
    assert main(["index", str(root), "--db", str(path), "--workers", "1", "-q", "--backbone", "none"]) == 0
    return path


@pytest.fixture
def sketch(tmp_path):
    path = tmp_path / "s.png"
    cv2.imwrite(str(path), sketch_of("house"))
    return path


def one_line_error(capsys, argv, *needles, code=2) -> str:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("sketchsearch: error:") and "\n" not in err, err
    for n in needles:
        assert n in err, err
    return err


def argparse_error(capsys, argv, *needles) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err  # no usage block before it
    last = err.splitlines()[-1]
    assert last.startswith("sketchsearch") and "error: argument" in last, err
    for n in needles:
        assert n in last, err
    return last


# ----------------------------------------------------------------------------------------- options checked up front

@pytest.mark.parametrize("device, needle", [("bogus", "bogus"), ("cuda:99", "cuda:99")])
def test_a_bad_device_is_an_argument_error(db, sketch, capsys, device, needle):
    argparse_error(capsys, ["search", "--db", db, "--sketch", sketch, "--device", device], "--device", needle)
    argparse_error(capsys, ["index", db, "--db", db, "--device", device], "--device", needle)


def test_cuda_without_cuda_is_an_argument_error(db, sketch, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argparse_error(capsys, ["search", "--db", db, "--sketch", sketch, "--device", "cuda"], "cuda", "CUDA")


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "x"])
def test_timeout_must_be_a_positive_number(db, sketch, capsys, value):
    argparse_error(capsys, ["search", "--db", db, "--sketch", sketch, "--timeout", value], "--timeout")


@pytest.mark.parametrize("option, value", [("--qe", "-3"), ("--expand", "-2"), ("--top", "0"), ("--shortlist", "-1")])
def test_counts_are_not_negative(db, sketch, capsys, option, value):
    argparse_error(capsys, ["search", "--db", db, "--sketch", sketch, option, value], option)


@pytest.mark.parametrize("option, value, words", [("--min-side", "9223372036854775808", "at most"),  # SQLite overflowed
                                                   ("--top", "abc", "expected a whole number, got 'abc'"),
                                                   ("--workers", "2.5", "expected a whole number")])
def test_bad_option_values_are_one_line_naming_the_option(db, sketch, capsys, option, value, words):
    """argparse printed its usage block first, and named its type function ("invalid _positive value")."""
    args = (["index", sketch, "--db", db] if option == "--workers" else ["search", "--db", db, "--sketch", sketch])
    last = argparse_error(capsys, [*args, option, value], option, words, "--help")
    assert "_positive" not in last
    with pytest.raises(SystemExit) as e:
        main(["search", "--db", str(db), "--sketch", str(sketch), "--topp", "3"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "--topp" in err


def test_output_piped_into_a_reader_that_goes_away_ends_quietly(db, sketch, capsys, monkeypatch):
    """`search ... | head -2` said "error: INDEX: Broken pipe", naming the index as if it were at fault."""
    for argv in (["search", "--db", db, "--sketch", sketch], ["search", "--db", db, "--sketch", sketch, "--json"],
                 ["info", "--db", db]):
        r, w = os.pipe()
        os.close(r)  # the reader is gone before the first line
        with open(w, "w", buffering=1) as out:  # line-buffered: the first line written meets the closed pipe
            capsys.readouterr()
            monkeypatch.setattr(sys, "stdout", out)
            assert main([str(a) for a in argv]) == 141
            monkeypatch.undo()
        assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", ["nan", "-1", "0", "1.5", "inf", "x"])
def test_duplicates_threshold_must_be_in_0_1(db, capsys, value):
    argparse_error(capsys, ["duplicates", "--db", db, "--threshold", value], "--threshold")


@pytest.mark.parametrize("address", ["foo", "http://[::1", "local:x", "local:0"])
def test_a_bad_cluster_address_is_one_line(tmp_path, capsys, address):
    pytest.importorskip("distributed")
    (tmp_path / "photos").mkdir()
    one_line_error(capsys, ["index", tmp_path / "photos", "--db", tmp_path / "c.json", "--cluster", address, "-q"],
                   f"--cluster {address}")


# ----------------------------------------------------------------------------------------- the last-resort handler

def test_disk_full_in_the_catalog_commit_is_one_line(db, tmp_path, capsys, monkeypatch):
    def full(*a, **kw):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(engine.indexer, "index_folders", full)
    one_line_error(capsys, ["index", tmp_path, "--db", tmp_path / "db", "-q"], "disk full", str(tmp_path / "db"))


def test_a_catalog_error_is_one_line(db, tmp_path, capsys, monkeypatch):
    def damaged(*a, **kw):
        raise sqlite3.DatabaseError("file is not a database")

    monkeypatch.setattr(engine.shards, "open_collection", damaged)
    one_line_error(capsys, ["info", "--db", db], str(db), "file is not a database")


@pytest.mark.parametrize("filename", [None, "chunk-00000001.codes.npy"])
def test_disk_full_names_the_file_or_the_index(tmp_path, capsys, monkeypatch, filename):
    def full(*a, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([str(tmp_path / filename)] if filename else []))

    monkeypatch.setattr(engine.indexer, "index_folders", full)
    one_line_error(capsys, ["index", tmp_path, "--db", tmp_path / "db", "-q"], "disk full while writing",
                   str(tmp_path / (filename or "db")))


@pytest.mark.parametrize("content", [b"", b"\x93NUMPY\x01\x00garbage", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', "
                                     b"'fortran_order': False, 'shape': (1000,), }" + b" " * 40 + b"\n"])
def test_a_damaged_array_file_is_one_line(db, tmp_path, capsys, monkeypatch, content):
    """EOFError / ValueError from numpy reading a damaged file, wherever the engine lets one through."""
    bad = tmp_path / "chunk.npy"
    bad.write_bytes(content)

    def open_damaged(*a, **kw):
        return np.load(bad)[0]

    monkeypatch.setattr(engine.shards, "open_collection", open_damaged)
    err = one_line_error(capsys, ["info", "--db", db], str(db), "damaged")
    assert "internal error" not in err


def test_memory_error_is_one_line(db, capsys, monkeypatch):
    def huge(*a, **kw):
        raise MemoryError

    monkeypatch.setattr(engine.shards, "open_collection", huge)
    one_line_error(capsys, ["info", "--db", db], "not enough memory")


def test_a_bug_is_one_line_unless_debugging(db, capsys, monkeypatch):
    def bug(*a, **kw):
        return 1 / 0

    monkeypatch.setattr(engine.shards, "open_collection", bug)
    monkeypatch.delenv("SKETCHSEARCH_DEBUG", raising=False)
    one_line_error(capsys, ["info", "--db", db], "internal error: ZeroDivisionError", "SKETCHSEARCH_DEBUG=1",
                   code=1)
    monkeypatch.setenv("SKETCHSEARCH_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["info", "--db", str(db)])


def test_engine_warnings_are_one_line(db, capsys, monkeypatch):
    import warnings

    from engine.collection import PartialResultWarning

    def warn(*a, **kw):
        warnings.warn("shard 2 of\nx is missing", PartialResultWarning, stacklevel=1)
        raise SketchSearchError("stop here")

    monkeypatch.setattr(engine.shards, "open_collection", warn)
    capsys.readouterr()
    assert main(["info", "--db", str(db)]) == 2
    assert capsys.readouterr().err.splitlines() == ["sketchsearch: warning: shard 2 of\\nx is missing",
                                                    "sketchsearch: error: stop here"]


def test_an_error_message_is_escaped_to_one_line(tmp_path, capsys):
    folder = tmp_path / "no\nsuch\x1b[31mfolder"
    err = one_line_error(capsys, ["index", folder, "--db", tmp_path / "db", "-q"], "no\\nsuch\\x1b[31mfolder")
    assert "\x1b" not in err and str(tmp_path / "db") not in err  # the folder is the thing, not the index


# ----------------------------------------------------------------------------------------- queries

@pytest.mark.parametrize("kind, needle", [("missing", "file not found"), ("dir", "directory"),
                                          ("text", "not a recognised image"), ("zero", "empty file"),
                                          ("blank", "empty")])
def test_bad_sketches_are_one_line(db, tmp_path, capsys, kind, needle):
    path = tmp_path / f"{kind}.png"
    if kind == "dir":
        path.mkdir()
    elif kind == "text":
        path.write_text("not an image")
    elif kind == "zero":
        path.write_bytes(b"")
    elif kind == "blank":
        cv2.imwrite(str(path), np.full((60, 60), 255, np.uint8))
    one_line_error(capsys, ["search", "--db", db, "--sketch", path], str(path), needle)


def test_sketch_list_refuses_what_is_not_a_regular_file(db, tmp_path, capsys):
    one_line_error(capsys, ["search", "--db", db, "--sketch-list", "/dev/zero"], "/dev/zero", "not a regular file")
    one_line_error(capsys, ["search", "--db", db, "--sketch-list", tmp_path], str(tmp_path), "not a regular file")
    fifo = tmp_path / "list.fifo"
    os.mkfifo(fifo)  # opening it must not wait for a writer
    one_line_error(capsys, ["search", "--db", db, "--sketch-list", fifo], str(fifo), "not a regular file")



def test_a_query_file_that_is_not_a_regular_file_says_so(db, tmp_path, capsys):
    """A FIFO or a link to /dev/zero as the query was called "empty file (0 bytes)"."""
    fifo = tmp_path / "q.png"
    os.mkfifo(fifo)
    zero = tmp_path / "z.jpg"
    os.symlink("/dev/zero", zero)
    for option, path in (("--sketch", fifo), ("--sketch", zero)):
        one_line_error(capsys, ["search", "--db", db, option, path], str(path), "not a regular file")

def test_sketch_list_has_a_size_limit(db, tmp_path, capsys):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(17 << 20)
    one_line_error(capsys, ["search", "--db", db, "--sketch-list", big], str(big), "too large")


def test_sketch_list_with_a_byte_order_mark(db, tmp_path, sketch, capsys):
    lst = tmp_path / "bom.txt"
    lst.write_bytes("\ufeff".encode() + f"{sketch.name}\n# a comment\n".encode())
    assert read_sketch_list(lst) == [(sketch.name, sketch)]
    capsys.readouterr()
    assert main(["search", "--db", str(db), "--sketch-list", str(lst), "--top", "1", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["query"] == sketch.name and "error" not in row


def test_a_db_that_is_a_photo_or_a_photo_folder_is_not_told_to_be_built(tmp_path, sketch, capsys):
    """``--db photo.jpg`` (or a folder of photos) suggested ``sketchsearch index FOLDER --db photo.jpg``, which
    indexing then refuses: the way out is another --db."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"\xff\xd8 a photo")
    for where, words in ((photos / "a.jpg", "a file, not a sketchsearch index"), (photos, "holds other files")):
        for argv in (["info", "--db", where], ["search", "--db", where, "--sketch", sketch]):
            err = one_line_error(capsys, argv, str(where), words, "choose another --db")
            assert "sketchsearch index FOLDER" not in err
    assert (photos / "a.jpg").read_bytes() == b"\xff\xd8 a photo"


def test_options_a_query_does_not_use_are_said_to_be_ignored(db, sketch, capsys):
    capsys.readouterr()
    assert main(["search", "--db", str(db), "--sketch", str(sketch), "--qe", "3", "--top", "1"]) == 0
    assert "--qe is ignored here" in capsys.readouterr().err
    for extra in (["--no-fusion"], ["--rotation", "any"]):
        assert main(["search", "--db", str(db), "--sketch", str(sketch), "--expand", "2", "--top", "1", *extra]) == 0
        assert "--expand is ignored here" in capsys.readouterr().err
    assert main(["search", "--db", str(db), "--sketch", str(sketch), "--expand", "2", "--top", "1"]) == 0
    assert "ignored" not in capsys.readouterr().err


def test_a_sketch_list_that_names_no_sketch_says_so(db, tmp_path, capsys):
    """It exited 0 and printed nothing, as if every sketch had no results."""
    for text in ("", "\n\n", "# only comments\n   \n"):
        lst = tmp_path / "empty.txt"
        lst.write_text(text)
        one_line_error(capsys, ["search", "--db", db, "--sketch-list", lst], str(lst), "names no sketch")


def test_sketch_list_that_is_not_text(tmp_path):
    lst = tmp_path / "bin.txt"
    lst.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(SketchSearchError, match="bin.txt"):
        read_sketch_list(lst)


# ----------------------------------------------------------------------------------------- escaped file names

@pytest.mark.parametrize("raw, shown", [
    ("plain/name.jpg", "plain/name.jpg"),
    ("a\x1b[31mred.jpg", "a\\x1b[31mred.jpg"),
    ("two\nlines.jpg", "two\\nlines.jpg"),
    ("tab\there\r.jpg", "tab\\there\\r.jpg"),
    ("bidi\u202eexe.jpg", "bidi\\u202eexe.jpg"),
    ("bytes\udcff.jpg", "bytes\\xff.jpg"),  # an undecodable byte of the file name (surrogate escape)
    ("café ümlaut 写真.jpg", "café ümlaut 写真.jpg"),
])
def test_printable(raw, shown):
    assert printable(raw) == shown
    assert printable(Path(raw)) == shown


def test_file_names_are_escaped_in_every_text_output(tmp_path, capsys):
    root = tmp_path / "photos"
    root.mkdir()
    evil = "red\x1b[31m\nname"
    photo = photo_with_shape("star", (100, 30, 500, 430), seed=2)[..., ::-1]
    cv2.imwrite(str(root / f"{evil}.png"), photo)
    cv2.imwrite(str(root / f"{evil} copy.png"), photo)  # a duplicate
    (root / f"bad{evil}.jpg").write_bytes(b"")  # skipped
    db = tmp_path / "db"
    sketch = tmp_path / "s.png"
    cv2.imwrite(str(sketch), sketch_of("star"))
    shown = "red\\x1b[31m\\nname"
    outputs = []
    capsys.readouterr()
    assert main(["index", str(root), "--db", str(db), "--workers", "1", "-q", "--backbone", "none"]) == 0
    outputs.append(capsys.readouterr().err)
    for argv in (["search", "--db", str(db), "--sketch", str(sketch), "--top", "2"], ["info", "--db", str(db)],
                 ["duplicates", "--db", str(db)]):
        assert main(argv) == 0
        outputs.append(capsys.readouterr().out)
    for out in outputs:
        assert "\x1b" not in out and shown in out, out
    assert outputs[0].count(f"bad{shown}") == 1  # index: the skipped file
    assert sum(shown in line for line in outputs[1].splitlines()) == 2  # search: both copies, one row each
    assert f"bad{shown}" in outputs[2]  # info: the skipped list
    assert sum(shown in line for line in outputs[3].splitlines()) == 2  # duplicates: the group
    assert main(["search", "--db", str(db), "--sketch", str(sketch), "--top", "2", "--json"]) == 0
    assert {json.loads(x)["path"] for x in capsys.readouterr().out.splitlines()} == {
        str(root / f"{evil}.png"), str(root / f"{evil} copy.png")}  # JSON keeps the name exact


# ----------------------------------------------------------------------------------------- the app without a display

def test_gui_without_a_display_is_one_line(tmp_path):
    pytest.importorskip("PySide6")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)  # no settings of the user's
    r = subprocess.run([sys.executable, "-m", "app.cli", "gui", "--db", str(tmp_path / "db")], env=env,
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.strip().startswith("sketchsearch: error: no display") and "\n" not in r.stderr.strip()


def test_has_display_follows_the_platform(monkeypatch):
    pytest.importorskip("PySide6")
    from app.main import display_problem

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    if not sys.platform.startswith("linux"):
        pytest.skip("displays are checked on Linux")
    assert "no display" in display_problem()
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert "DISPLAY" in display_problem()
    monkeypatch.setenv("DISPLAY", ":0")
    assert display_problem() is None
    monkeypatch.setenv("QT_QPA_PLATFORM", "wayland")
    assert "WAYLAND_DISPLAY" in display_problem()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert display_problem() is None

