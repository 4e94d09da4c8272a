"""Issue 18: the index owns only what it wrote, and hostile or damaged index files get one-line errors.

The critical cases run in a temporary folder with decoy files that must survive byte for byte."""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli import main
from engine import catalog, describe, indexer
from engine.catalog import CATALOG, FIXED_FILES, LAYOUT, MARKER
from engine.collection import SketchIndex
from engine.errors import (
    DamagedIndexWarning,
    IndexFormatError,
    IndexLocked,
    IndexNotFound,
    IndexWriteError,
    SketchSearchError,
)
from engine.indexer import index_folders
from engine.settings import SketchSettings
from engine.shards import Manifest, ShardedIndex, index_sharded
from engine.writer import IndexWriter

from .synth import photo_with_shape, sketch_of

SHAPES = ["arrow", "house", "ell", "star"]


def photo(seed: int) -> np.ndarray:
    shape = SHAPES[seed % 4]
    return photo_with_shape(shape, (30 + seed % 7, 20, 130, 100 + seed % 5), seed=seed, size=(160, 120))


def make_photos(folder: Path, n: int, start: int = 0, prefix: str = "p") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        Image.fromarray(photo(i)).save(folder / f"{prefix}{i:02d}.png")
    return folder


def snapshot(*roots: Path) -> dict[str, bytes]:
    """Every file under the roots (links as their target text), by path."""
    out = {}
    for root in roots:
        if root.is_file() or root.is_symlink():
            out[str(root)] = os.readlink(root).encode() if root.is_symlink() else root.read_bytes()
            continue
        for dirpath, dirs, files in os.walk(root):
            for name in dirs + files:
                if name.endswith(("-wal", "-shm")):  # SQLite's own, made by any reader
                    continue
                p = Path(dirpath) / name
                if p.is_symlink():
                    out[str(p)] = b"link:" + os.readlink(p).encode()
                elif p.is_file():
                    out[str(p)] = p.read_bytes()
                else:
                    out[str(p)] = b"dir"
    return out


def cli(*argv) -> tuple[int, str, str]:
    """Run the command line in this process: (exit code, stdout, stderr).  An uncaught exception fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def one_line_error(err: str, *names: str) -> str:
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.startswith("sketchsearch: error:")]
    assert len(lines) == 1, err
    for n in names:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """4 photos and an index of them (sketch descriptors only)."""
    tmp = tmp_path_factory.mktemp("plain")
    photos = make_photos(tmp / "photos", 4)
    s = index_folders([photos], tmp / "db", workers=1, backbone="none")
    assert s.indexed == 4
    return photos, tmp / "db"


def copy_of(plain, tmp_path) -> tuple[Path, Path]:
    photos, db = plain
    shutil.copytree(photos, tmp_path / "photos")
    shutil.copytree(db, tmp_path / "db")
    # the catalog names the photos by path: point it at the copies
    con = sqlite3.connect(tmp_path / "db" / CATALOG)
    with con:
        con.execute("UPDATE files SET path = replace(path, ?, ?)", (str(photos), str(tmp_path / "photos")))
    con.close()
    return tmp_path / "photos", tmp_path / "db"


# -- 1. the index folder is owned by a marker; a photo folder is never an index folder -------------------

def test_db_that_is_the_photo_folder_is_refused_and_the_photo_kept(tmp_path):
    p = tmp_path / "P"
    p.mkdir()
    Image.fromarray(photo(1)).save(p / "image-0001.jpg")
    before = snapshot(p)
    rc, _, err = cli("index", p, "--db", p, "-q", "--backbone", "none", "--workers", "1")
    assert rc == 2
    one_line_error(err, str(p))
    assert snapshot(p) == before
    rc, _, err = cli("index", p, "--db", p / "sub", "-q", "--backbone", "none", "--workers", "1")
    assert rc == 2
    one_line_error(err, str(p / "sub"))
    assert snapshot(p) == before and not (p / "sub").exists()
    # a photo folder inside the index folder is refused too
    d = tmp_path / "D"
    make_photos(d / "photos", 1)
    before = snapshot(d)
    with pytest.raises(SketchSearchError, match=str(d)):
        index_folders([d / "photos"], d, workers=1, backbone="none")
    assert snapshot(d) == before


def test_a_folder_that_is_not_an_index_is_never_written(tmp_path):
    photos = make_photos(tmp_path / "photos", 1)
    q = tmp_path / "Q"
    q.mkdir()
    (q / "chunk-00000001.codes.npy").write_bytes(b"my own data")
    (q / "image-abc.vectors.npy").write_bytes(b"more of mine")
    (q / "x.npy.tmp").write_bytes(b"and this")
    (q / "notes.txt").write_text("hello")
    before = snapshot(q, photos)
    rc, _, err = cli("index", photos, "--db", q, "-q", "--backbone", "none", "--workers", "1")
    assert rc == 2
    assert "not empty" in one_line_error(err, str(q))
    assert snapshot(q, photos) == before
    with pytest.raises(IndexNotFound, match="not empty"):
        IndexWriter(q, SketchSettings())
    assert snapshot(q, photos) == before


def test_an_empty_or_new_folder_becomes_an_index_with_a_marker(tmp_path):
    photos = make_photos(tmp_path / "photos", 1)
    (tmp_path / "empty").mkdir()
    for db in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        assert index_folders([photos], db, workers=1, backbone="none").indexed == 1
        marker = json.loads((db / MARKER).read_text())
        assert marker["format"] == "sketchsearch-index" and marker["id"]


def test_files_in_an_index_folder_that_the_index_did_not_write_survive(plain, tmp_path):
    photos, db = copy_of(plain, tmp_path)
    decoys = {"chunk-99999999.codes.npy": b"decoy 1", "chunk-00000001.polar.npy.tmp": b"decoy 2",
              "image-0001.jpg": b"decoy 3", "image-abcdef012345.vectors.npy": b"decoy 4", "stray.npy.tmp": b"decoy 5",
              ".image-abcdef012345.faiss.xyz.tmp": b"decoy 6", "notes.txt": b"decoy 7"}
    for name, data in decoys.items():
        (db / name).write_bytes(data)
    before = snapshot(*(db / n for n in decoys))
    Image.fromarray(photo(20)).save(photos / "p01.png")  # changed: described again, its old slot dead
    make_photos(photos, 2, start=30)
    assert index_folders([photos], db, workers=1).described == 3  # compacts: the first chunk is deleted
    with IndexWriter.existing(db) as w:
        w.compact(full=True)
    assert not (db / "chunk-00000001.codes.npy").exists()
    (photos / "p02.png").unlink()
    assert index_folders([photos], db, workers=1, prune=True).removed == 1
    assert snapshot(*(db / n for n in decoys)) == before
    assert len(SketchIndex(db)) == 5
    # what the index did write is tracked: only its live chunks are left of its own files
    index = SketchIndex(db)
    ours = {p.name for p in db.iterdir()} - set(decoys)
    assert ours == {CATALOG, "lock", MARKER, *index.chunk_files} | ({f"{CATALOG}-wal", f"{CATALOG}-shm"} & ours)


def test_an_index_made_before_the_marker_is_adopted_and_its_orphans_cleaned(plain, tmp_path):
    photos, db = copy_of(plain, tmp_path)
    (db / MARKER).unlink()
    con = sqlite3.connect(db / CATALOG)
    with con:
        con.execute("DROP TABLE IF EXISTS owned")
    con.close()
    np.save(db / "chunk-00000077.codes.npy", np.zeros((2, 243), np.int8))  # left by a killed writer
    make_photos(photos, 1, start=40)
    s = index_folders([photos], db, workers=1)
    assert (s.described, s.indexed) == (1, 5)
    assert (db / MARKER).is_file() and not (db / "chunk-00000077.codes.npy").exists()
    assert len(SketchIndex(db).search(sketch_of("star"), top_k=5)) == 5


def test_an_old_index_with_files_it_did_not_write_is_refused(plain, tmp_path):
    photos, db = copy_of(plain, tmp_path)
    (db / MARKER).unlink()
    (db / "notes.txt").write_text("mine")
    before = snapshot(db)
    with pytest.raises(IndexNotFound, match="notes.txt"):
        index_folders([photos], db, workers=1)
    assert snapshot(db) == before
    assert len(SketchIndex(db)) == 4  # still searchable


# -- 2. crafted manifests --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sharded")
    photos = make_photos(tmp / "photos", 2)
    index_sharded([photos], tmp / "c" / "c.json", n_shards=2, workers=1, backbone="none")
    return photos, tmp / "c"


@pytest.fixture()
def manifest(sharded, tmp_path):
    photos, folder = sharded
    shutil.copytree(folder, tmp_path / "c")
    return photos, tmp_path / "c" / "c.json"


def edit(path: Path, **fields) -> None:
    d = json.loads(path.read_text())
    d.update(fields)
    path.write_text(json.dumps(d))


@pytest.mark.parametrize("field, value", [
    ("shards", ["../../victim", "c.shard-001"]), ("shards", ["/abs/victim", "c.shard-001"]),
    ("shards", ["c.shard-000", "sub/../../victim"]), ("shards", [1, 2]), ("shards", [None, None]),
    ("shards", "c.shard-000"), ("n_shards", 0), ("n_shards", 3), ("n_shards", "2"), ("n_shards", True),
    ("learned", "x/../../../victim3/secret"), ("learned", 5), ("id", "../x")])
def test_crafted_manifest_fields_are_refused_with_one_line(manifest, tmp_path, field, value):
    photos, m = manifest
    victim = tmp_path / "victim"
    make_photos(victim, 1)
    (victim / "catalog.sqlite3").write_bytes(b"decoy catalog")
    (victim / "chunk-00000001.codes.npy").write_bytes(b"decoy chunk")
    (tmp_path / "victim3").mkdir()
    np.savez(tmp_path / "victim3" / "secret.npz", a=np.arange(3))
    before = snapshot(victim, tmp_path / "victim3")
    edit(m, **{field: value})
    with pytest.raises(IndexFormatError, match=f"'{field}'"):
        Manifest.load(m)
    for argv in (["info", "--db", m], ["search", "--db", m, "--sketch", photos / "p00.png"],
                 ["duplicates", "--db", m], ["index", photos, "--db", m, "-q", "--workers", "1"]):
        rc, _, err = cli(*argv)
        assert rc == 2, argv
        one_line_error(err, str(m), field)
    assert snapshot(victim, tmp_path / "victim3") == before


# -- 3. the lock ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["symlink", "hardlink", "folder"])
def test_a_lock_that_is_not_the_index_own_file_is_refused_and_its_target_kept(plain, tmp_path, kind):
    photos, db = copy_of(plain, tmp_path)
    victim = tmp_path / "victimfile"
    victim.write_text("precious\n")
    (db / "lock").unlink()
    if kind == "symlink":
        os.symlink("../victimfile", db / "lock")
    elif kind == "hardlink":
        os.link(victim, db / "lock")
    else:
        (db / "lock").mkdir()
    before = snapshot(victim)
    with pytest.raises((IndexLocked, IndexFormatError), match="lock"):
        index_folders([photos], db, workers=1)
    rc, _, err = cli("index", photos, "--db", db, "-q", "--workers", "1")
    assert rc == 2
    one_line_error(err, "lock")
    assert snapshot(victim) == before


# -- 4. another format version ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["0", "99"])
def test_another_format_version_is_refused_and_rebuilt_only_when_asked(plain, tmp_path, version):
    photos, db = copy_of(plain, tmp_path)
    con = sqlite3.connect(db / CATALOG)
    with con:
        con.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (version,))
    con.close()
    (db / "notes.txt").write_text("not the index's")
    (db / "image-0007.jpg").write_bytes(b"nor this")
    before = snapshot(db)
    with pytest.raises(IndexFormatError, match="index format") as e:
        index_folders([photos], db, workers=1)
    assert e.value.hint.action == "rebuild"
    rc, _, err = cli("index", photos, "--db", db, "-q", "--workers", "1")
    assert rc == 2
    one_line_error(err, "--rebuild")
    assert snapshot(db) == before  # nothing written, nothing deleted
    s = index_folders([photos], db, workers=1, rebuild=True)
    assert (s.described, s.indexed) == (4, 4)
    assert (db / "notes.txt").read_text() == "not the index's" and (db / "image-0007.jpg").read_bytes() == b"nor this"
    assert len(SketchIndex(db)) == 4


# -- 5. paths with URI characters ---------------------------------------------------------------------------

def test_db_paths_with_uri_characters_work(plain, tmp_path, monkeypatch):
    photos = make_photos(tmp_path / "photos", 2)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for name in ("a#b", "c?d=1", "e%20f", "g%h"):
        db = tmp_path / name
        assert index_folders([photos], db, workers=1, backbone="none").described == 2
        assert len(SketchIndex(db)) == 2 and SketchIndex(db).paths
        assert index_folders([photos], db, workers=1).described == 0
        rc, out, err = cli("search", "--db", db, "--sketch", photos / "p00.png", "--json", "--top", "2")
        assert rc == 0, err
        assert len(out.splitlines()) == 2
    assert list(cwd.iterdir()) == []


# -- 6. damaged descriptor files and catalog meta --------------------------------------------------------

def two_chunks(tmp_path, monkeypatch) -> tuple[list[Path], Path]:
    monkeypatch.setattr(indexer, "FLUSH_SECONDS", 1e9)  # one chunk per run, however slow the machine
    a, b = make_photos(tmp_path / "a", 4), make_photos(tmp_path / "b", 2, start=10)
    db = tmp_path / "db"
    index_folders([a], db, workers=1, backbone="none")
    index_folders([a, b], db, workers=1)
    assert len(SketchIndex(db).chunk_files) == 10  # two chunks of 5 arrays
    return [a, b], db


def small_chunk(db: Path) -> list[Path]:
    con = sqlite3.connect(db / CATALOG)
    (cid,) = con.execute("SELECT id FROM chunks ORDER BY n LIMIT 1").fetchone()
    con.close()
    return sorted(db.glob(f"chunk-{cid:08d}.*.npy"))


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "zero":
        path.write_bytes(bytes(len(data)))
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(len(data)).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    else:
        raise ValueError(how)


@pytest.mark.parametrize("how", ["delete", "truncate", "zero", "garbage"])
def test_a_damaged_chunk_is_left_out_with_a_warning_and_described_again(tmp_path, monkeypatch, how):
    folders, db = two_chunks(tmp_path, monkeypatch)
    bad = next(p for p in small_chunk(db) if ".codes." in p.name)
    damage(bad, how)
    with pytest.warns(DamagedIndexWarning, match=bad.name):
        index = SketchIndex(db)
    assert len(index) == 4
    hits = index.search(sketch_of("star"), top_k=10)
    assert len(hits) == 4 and all("/a/" in h.path for h in hits)
    with warnings.catch_warnings():  # the command line shows it as one line (or Python's warning display does)
        warnings.simplefilter("always", DamagedIndexWarning)
        rc, out, err = cli("search", "--db", db, "--sketch", folders[0] / "p00.png", "--json")
    assert rc == 0 and len(out.splitlines()) == 4 and "Traceback" not in err and bad.name in err
    s = index_folders(folders, db, workers=1)
    assert (s.described, s.indexed) == (2, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(SketchIndex(db)) == 6
    assert not bad.exists() or bad.name in SketchIndex(db).chunk_files


def test_a_chunk_that_cannot_be_read_now_is_not_dropped(plain, tmp_path, monkeypatch):
    photos, db = copy_of(plain, tmp_path)
    real = np.load

    def denied(path, *a, **k):
        if ".codes." in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(np, "load", denied)
    with pytest.raises(IndexWriteError, match="Permission denied"):
        index_folders([photos], db, workers=1)
    monkeypatch.setattr(np, "load", real)
    s = index_folders([photos], db, workers=1)
    assert s.described == 0 and len(SketchIndex(db)) == 4


@pytest.mark.parametrize("key, value", [
    ("settings", "{not json"), ("settings", '{"n_freq_xy": 1}'), ("settings", '{"bogus": 3}'),
    ("settings", None), ("format_version", None), ("image_settings", "[1, 2]"), ("image_index", "{oops"),
    ("image_index", '{"gen": "../x", "n": 1, "kind": "flat", "whitened": false}')])
def test_edited_catalog_meta_gives_one_line_errors(plain, tmp_path, key, value):
    photos, db = copy_of(plain, tmp_path)
    con = sqlite3.connect(db / CATALOG)
    with con:
        if value is None:
            con.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
    con.close()
    with pytest.raises(IndexFormatError, match=str(db)):
        SketchIndex(db)
    for argv in (["info", "--db", db], ["search", "--db", db, "--sketch", photos / "p00.png"],
                 ["index", photos, "--db", db, "-q", "--workers", "1"]):
        rc, _, err = cli(*argv)
        assert rc == 2
        one_line_error(err, str(db))
    s = index_folders([photos], db, workers=1, backbone="none", rebuild=True)
    assert s.indexed == 4 and len(SketchIndex(db)) == 4


@pytest.fixture(scope="module")
def with_images(tmp_path_factory):
    """4 photos and an index with image descriptors."""
    tmp = tmp_path_factory.mktemp("images")
    photos = make_photos(tmp / "photos", 4)
    index_folders([photos], tmp / "db", workers=1, backbone="efficientnet-lite0")
    return photos, tmp / "db"


@pytest.mark.parametrize("part, how", [("ids.npy", "empty"), ("sketch_mean.npy", "empty"),
                                       ("image_codes.npy", "truncate"), ("sketch_codes.npy", "garbage"),
                                       ("image_norm.npy", "zero"), ("basis.npz", "garbage"), ("ids.npy", "delete"),
                                       ("faiss", "garbage"), ("whitening.npz", "garbage")])
def test_damaged_image_index_files_give_one_line_errors_and_are_rebuilt(with_images, tmp_path, part, how):
    photos, db = copy_of(with_images, tmp_path)
    index = SketchIndex(db)
    rec = json.loads(index.meta["image_index"])
    target = db / f"image-{rec['gen']}.{part}"
    if part in ("faiss", "whitening.npz"):  # only large collections have them: claim one, and write it damaged
        rec.update({"faiss": {"kind": "ivfpq"}, "whitening.npz": {"whitened": True}}[part])
        con = sqlite3.connect(db / CATALOG)
        with con:
            con.execute("UPDATE meta SET value = ? WHERE key = 'image_index'", (json.dumps(rec),))
            con.execute("INSERT OR IGNORE INTO owned VALUES (?)", (target.name,))
        con.close()
        target.write_bytes(b"\x00garbage" * 100)
    else:
        damage(target, how)
    with pytest.raises(IndexFormatError, match=f"{db}.*{part}"):
        SketchIndex(db).search_image(photos / "p01.png")
    rc, _, err = cli("search", "--db", db, "--image", photos / "p01.png")
    assert rc == 2
    one_line_error(err, str(db))
    rc, out, err = cli("search", "--db", db, "--sketch", photos / "p01.png")
    # a sketch search ranks by the shape alone, with a warning naming the file (it failed with the image error)
    assert rc == 0 and "p01.png" in out and "Traceback" not in err, (rc, err)
    assert part in err and "rank by the shape alone" in err and len(err.strip().splitlines()) == 1, err
    view = SketchIndex(db)  # said once per view: its next searches rank by the shape at once, without a word
    with pytest.warns(DamagedIndexWarning, match=part):
        first = view.search(photos / "p01.png", top_k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [h.path for h in view.search(photos / "p01.png", top_k=2)] == [h.path for h in first]
    assert part in view.image_damage
    rc, _, err = cli("info", "--db", db)
    assert rc == 0 and part in err and "rank by the shape alone" in err
    # what a build derives from the codes is rebuilt; the codes are the only copy of the photos' image
    # descriptors: damaged, the photos are described again
    s = index_folders([photos], db, workers=1)
    assert s.described == (0 if part in ("sketch_mean.npy", "image_norm.npy", "faiss", "whitening.npz") else 4)
    assert SketchIndex(db).search_image(photos / "p01.png", top_k=1)[0].path == str(photos / "p01.png")


# -- 7. only regular files are read ----------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_fifos_devices_and_huge_files_are_skipped_with_their_reason(tmp_path, monkeypatch):
    d = make_photos(tmp_path / "photos", 2)
    os.mkfifo(d / "x.jpg")
    os.symlink("/dev/zero", d / "zero.jpg")
    size = (d / "p00.png").stat().st_size
    (d / "big.png").write_bytes(b"\x89PNG" + bytes(size + 1000))
    monkeypatch.setattr(indexer, "MAX_FILE_BYTES", size + 10)
    s = index_folders([d], tmp_path / "db", workers=1, backbone="none")
    reasons = {Path(p).name: r for p, r in s.skipped}
    assert s.indexed == 2
    assert reasons["x.jpg"] == "not a regular file" and reasons["zero.jpg"] == "not a regular file"
    assert reasons["big.png"].startswith("larger than")
    (d / "p01.png").unlink()  # an indexed photo's path now holds a FIFO: no longer a photo
    os.mkfifo(d / "p01.png")
    s = index_folders([d], tmp_path / "db", workers=1)
    assert s.indexed == 1 and len(SketchIndex(tmp_path / "db")) == 1
    assert dict(SketchIndex(tmp_path / "db").skipped)[str(d / "p01.png")] == "not a regular file"


# -- 8. disk full ----------------------------------------------------------------------------------------

def test_disk_full_at_the_catalog_commit_is_one_line_and_loses_nothing(plain, tmp_path, monkeypatch):
    photos, db = copy_of(plain, tmp_path)
    make_photos(photos, 3, start=50)
    real = IndexWriter._open

    class FullDisk:
        """The writer's connection on a full disk: every commit fails as SQLite's does."""

        def __init__(self, con):
            self.con = con

        def __getattr__(self, name):
            return getattr(self.con, name)

        def __enter__(self):
            return self.con.__enter__()

        def __exit__(self, kind, *rest):
            if kind is None:
                self.con.rollback()
                raise sqlite3.OperationalError("database or disk is full")
            return self.con.__exit__(kind, *rest)

    def full(self, *a, **k):
        real(self, *a, **k)
        self.con = FullDisk(self.con)

    monkeypatch.setattr(IndexWriter, "_open", full)
    monkeypatch.setattr(indexer, "FLUSH_EVERY", 1)
    with pytest.raises(IndexWriteError, match=f"{db}.*full"):
        index_folders([photos], db, workers=1)
    rc, _, err = cli("index", photos, "--db", db, "-q", "--workers", "1")
    assert rc == 2
    one_line_error(err, str(db), "full")
    monkeypatch.setattr(IndexWriter, "_open", real)
    assert len(SketchIndex(db)) >= 4
    s = index_folders([photos], db, workers=1)
    assert s.indexed == 7 and len(SketchIndex(db)) == 7


@pytest.mark.parametrize("stage", ["chunk", "image"])
def test_a_write_error_names_the_index_and_loses_nothing(with_images, tmp_path, monkeypatch, stage):
    photos, db = copy_of(with_images, tmp_path)
    make_photos(photos, 1, start=60)
    real = np.save

    def failing(f, a, *args, **kw):
        name = getattr(f, "name", str(f))
        if (stage == "chunk" and "chunk-" in name) or (stage == "image" and "image-" in name):
            raise OSError("92925 requested and 47040 written")
        return real(f, a, *args, **kw)

    monkeypatch.setattr(np, "save", failing)
    with pytest.raises(IndexWriteError, match=str(db)):
        index_folders([photos], db, workers=1)
    monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    rc, _, err = cli("index", photos, "--db", db, "-q", "--workers", "1")
    assert rc == 2
    one_line_error(err, str(db))
    monkeypatch.setattr(np, "save", real)
    assert len(SketchIndex(db)) >= 4
    assert not list(db.glob("*.tmp"))
    assert index_folders([photos], db, workers=1).indexed == 5
    assert SketchIndex(db).search_image(photos / "p60.png", top_k=1)[0].path == str(photos / "p60.png")


# -- 11. a sharded collection while its first run goes on, or after it was killed ----------------------------

def test_a_collection_with_missing_shards_searches_the_others_with_a_warning(tmp_path):
    from engine.collection import PartialResultWarning

    photos = make_photos(tmp_path / "photos", 6)
    index_sharded([photos], tmp_path / "c.json", n_shards=3, workers=1, backbone="none")
    m = Manifest.load(tmp_path / "c.json")
    # photos go to shards by a hash of their path, which holds tmp_path: the fullest shard stays, so that
    # something is left to search whatever the temporary folder is called (an empty one fails the search)
    sizes = [len(SketchIndex(m.shard_path(i))) for i in range(3)]
    stay = int(np.argmax(sizes))
    gone, early = (i for i in range(3) if i != stay)
    shutil.rmtree(m.shard_path(gone))
    m.shard_path(early).rename(tmp_path / "kept")
    m.shard_path(early).mkdir()  # a shard whose run has not made its catalog yet
    with pytest.warns(PartialResultWarning, match="shard"):
        c = ShardedIndex(tmp_path / "c.json")
        hits = c.search(sketch_of("star"), top_k=10)
    n = sizes[stay]
    assert n >= 2 and len(c) == n and len(hits) == n
    rc, out, err = cli("search", "--db", tmp_path / "c.json", "--sketch", photos / "p00.png", "--json")
    assert rc == 0 and len(out.splitlines()) == n and "warning" in err and "Traceback" not in err, (rc, err)
    rc, out, err = cli("info", "--db", tmp_path / "c.json")
    assert rc == 0 and "Traceback" not in err
    shutil.rmtree(m.shard_path(early))
    assert index_sharded([photos], tmp_path / "c.json", workers=1).indexed == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(ShardedIndex(tmp_path / "c.json").search(sketch_of("star"), top_k=10)) == 6


# -- 13. links out of the indexed folders ---------------------------------------------------------------

def test_folder_links_out_of_the_indexed_folders_are_not_followed(tmp_path):
    d = make_photos(tmp_path / "photos", 2)
    outside = make_photos(tmp_path / "outside", 3, start=10)
    os.symlink(outside, d / "out")
    os.symlink("/", d / "root")
    os.symlink(d, d / "self")  # inside: followed, each real folder once
    (d / "sub").mkdir()
    Image.fromarray(photo(5)).save(d / "sub" / "s.png")
    os.symlink(d / "sub", d / "also-sub")
    s = index_folders([d], tmp_path / "db", workers=1, backbone="none")
    assert s.indexed == 3
    reasons = {Path(p).name: r for p, r in s.skipped}
    assert "outside the indexed folders" in reasons["out"] and "outside the indexed folders" in reasons["root"]
    assert sorted(s.skipped) == sorted(SketchIndex(tmp_path / "db").skipped)
    (d / "root").unlink()
    s = index_folders([d], tmp_path / "db2", workers=1, backbone="none", follow_links=True)
    assert s.indexed == 6 and not s.skipped



def test_a_link_into_the_index_folder_is_not_walked_into(tmp_path):
    """The index folder may not hold the photo folder or lie in it; a link from a photo folder up to a folder
    that holds the index (followed with ``follow_links``), or to a photo kept inside the index folder, reached it
    anyway, and the index's own files were catalogued as photos.  Nothing under the index folder is taken."""
    top = tmp_path / "top"
    d = make_photos(top / "photos", 2)
    db = top / "db"
    s = index_folders([d], db, workers=1, backbone="none")
    assert s.indexed == 2
    Image.fromarray(photo(7)).save(db / "stray.png")  # a photo that happens to lie in the index folder
    os.symlink(top, d / "up")  # up to a folder that holds the index
    os.symlink(db / "stray.png", d / "stray-link.png")
    s = index_folders([d], db, workers=1, backbone="none", follow_links=True)
    paths = SketchIndex(db).paths
    assert len(paths) == 2 and not any(str(db) in p for p in paths), paths
    reasons = {Path(p).name: r for p, r in s.skipped}
    assert "inside the index folder" in reasons["db"] and "inside the index folder" in reasons["stray-link.png"]


# -- 15. an unreadable folder is not a deletion -------------------------------------------------------------

def unreadable(monkeypatch, folder: Path):
    """Make ``folder`` unreadable (permission denied), also for root."""
    if os.geteuid() != 0:
        folder.chmod(0)
        return lambda: folder.chmod(0o755)
    real_walk, real_stat = os.walk, os.stat

    def walk(top, *a, onerror=None, **k):
        for dirpath, dirs, files in real_walk(top, *a, onerror=onerror, **k):
            if Path(dirpath) == folder:
                onerror(PermissionError(errno.EACCES, "Permission denied", dirpath))
                continue
            yield dirpath, dirs, files

    def stat(path, *a, **k):
        if Path(os.fspath(path)).parent == folder:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_stat(path, *a, **k)

    monkeypatch.setattr(indexer.os, "walk", walk)
    monkeypatch.setattr(indexer.os, "stat", stat)
    monkeypatch.setattr(indexer.os.path, "exists", lambda p: Path(os.fspath(p)).parent != folder and
                        os.path.lexists(p))
    return lambda: monkeypatch.undo()


def test_prune_keeps_what_is_under_a_folder_it_could_not_read(tmp_path, monkeypatch):
    d = make_photos(tmp_path / "photos", 2)
    make_photos(d / "sub", 2, start=10)
    db = tmp_path / "db"
    assert index_folders([d], db, workers=1, backbone="none").indexed == 4
    restore = unreadable(monkeypatch, d / "sub")
    try:
        s = index_folders([d], db, workers=1, prune=True)
    finally:
        restore()
    assert s.removed == 0 and s.indexed == 4 and len(SketchIndex(db)) == 4
    assert any(r.startswith("cannot read folder") for _, r in s.skipped)


# -- 16. a read-only index left with a -wal and no -shm -----------------------------------------------------

def wal_without_shm(plain, tmp_path) -> tuple[Path, int]:
    """A copy of an index whose last commit is only in its -wal (as a killed writer leaves it), without -shm."""
    photos, db = copy_of(plain, tmp_path)
    make_photos(photos, 1, start=70)
    record = describe.describe_photo(photos / "p70.png", SketchIndex(db).layout)
    w = IndexWriter.existing(db)
    w.con.execute("PRAGMA wal_autocheckpoint = 0")
    w.add([record])
    crashed = tmp_path / "crashed"
    shutil.copytree(db, crashed, ignore=shutil.ignore_patterns("*-shm"))
    w.close()
    assert (crashed / f"{CATALOG}-wal").stat().st_size > 0
    return crashed, 5


def test_a_read_only_index_with_a_wal_and_no_shm_opens_with_everything(plain, tmp_path, monkeypatch):
    db, n = wal_without_shm(plain, tmp_path)
    if os.geteuid() != 0:
        for p in [db, *db.iterdir()]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            assert len(SketchIndex(db)) == n
        finally:
            for p in [db, *db.iterdir()]:
                p.chmod(0o755 if p.is_dir() else 0o644)
    # the same as root, where permissions do not stop SQLite from making the -shm: it cannot, here
    real = sqlite3.connect

    def no_shm(target, *a, **k):
        if "vfs=unix-none" not in target and "immutable" not in target:
            raise sqlite3.OperationalError("unable to open database file")
        return real(target, *a, **k)

    monkeypatch.setattr(catalog.sqlite3, "connect", no_shm)
    index = SketchIndex(db)
    assert len(index) == n and sorted(Path(p).name for p in index.paths)[-1] == "p70.png"
    assert not (db / f"{CATALOG}-shm").exists()


# -- 17. info and the run list the same skipped files; vanished ones are dropped -------------------------------

def test_info_lists_what_the_run_skipped_and_forgets_what_vanished(tmp_path, monkeypatch):
    d = make_photos(tmp_path / "photos", 2)
    (d / "bad.jpg").write_bytes(b"not a jpeg")
    (d / "empty.png").write_bytes(b"")
    os.symlink("nowhere.jpg", d / "dangling.jpg")
    with open(os.path.join(os.fsencode(d), b"bad\xff.png"), "wb") as f:
        f.write((d / "p00.png").read_bytes())
    os.mkfifo(d / "fifo.jpg")
    (d / "closed").mkdir()
    make_photos(d / "closed", 1, start=30)
    db = tmp_path / "db"
    restore = unreadable(monkeypatch, d / "closed")
    try:
        s = index_folders([d], db, workers=1, backbone="none")
    finally:
        restore()
    assert len(s.skipped) == 6
    assert sorted(s.skipped) == sorted(SketchIndex(db).skipped)
    rc, out, _ = cli("info", "--db", db, "--json")
    assert json.loads(out)["skipped"] == 6
    (d / "bad.jpg").unlink()
    (d / "dangling.jpg").unlink()
    (d / "fifo.jpg").unlink()
    s = index_folders([d], db, workers=1)
    assert s.indexed == 3  # the closed folder is readable now
    assert sorted(s.skipped) == sorted(SketchIndex(db).skipped)
    assert sorted(Path(p).name for p, _ in SketchIndex(db).skipped) == ["bad?.png", "empty.png"]



def test_what_is_skipped_is_listed_once_whatever_way_its_folder_was_typed(tmp_path, monkeypatch):
    """A broken link or a FIFO was recorded under the folder as typed: indexed as ``ph`` and as its absolute
    path, it was listed twice ("skipped 4" for two problems), and never dropped once it was gone."""
    d = make_photos(tmp_path / "ph", 1)
    os.symlink("nowhere.jpg", d / "dangling.jpg")
    os.mkfifo(d / "fifo.jpg")
    db = tmp_path / "db"
    monkeypatch.chdir(tmp_path)
    for folder in ("ph", str(d), "./ph/../ph"):
        index_folders([folder], db, workers=1, backbone="none")
        listed = SketchIndex(db).skipped
        assert sorted(Path(p).name for p, _ in listed) == ["dangling.jpg", "fifo.jpg"], listed
        assert all(os.path.isabs(p) for p, _ in listed)
    (d / "dangling.jpg").unlink()
    index_folders(["ph"], db, workers=1, backbone="none")
    assert [Path(p).name for p, _ in SketchIndex(db).skipped] == ["fifo.jpg"]


def test_an_emptied_catalog_beside_descriptor_files_is_a_lost_catalog(tmp_path):
    """A 0-byte catalog read as "no photos indexed yet (the first run stopped before it began)", and the next run
    started over beside the old descriptor files, which stayed for ever.  Now it is damage: one line asking for
    --rebuild, which leaves only what the new catalog owns."""
    photos = make_photos(tmp_path / "photos", 3)
    db = tmp_path / "db"
    index_folders([photos], db, workers=1, backbone="none")
    (db / CATALOG).write_bytes(b"")
    for name in (f"{CATALOG}-wal", f"{CATALOG}-shm"):
        (db / name).unlink(missing_ok=True)
    for argv in (("info", "--db", db), ("search", "--db", db, "--sketch", photos / "p01.png"),
                 ("index", photos, "--db", db)):
        rc, _, err = cli(*argv)
        assert rc == 2 and "catalog was lost" in one_line_error(err, str(db), "--rebuild")
    rc, _, _ = cli("index", photos, "--db", db, "--rebuild")
    assert rc == 0 and len(SketchIndex(db)) == 3
    con = sqlite3.connect(db / CATALOG)
    owned = {n for (n,) in con.execute("SELECT name FROM owned")}
    con.close()
    assert {p.name for p in db.iterdir() if LAYOUT.match(p.name) and p.name not in FIXED_FILES} <= owned

# -- fuzz: every index file damaged in turn ------------------------------------------------------------------

CORRUPTIONS = ["truncate", "zero", "garbage", "delete"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("kind", ["plain", "with_images"])
def test_every_damaged_index_file_gives_one_line_errors_and_index_repairs_it(request, tmp_path, kind):
    base = request.getfixturevalue(kind)
    photos0, db0 = base
    files = sorted(p.name for p in db0.iterdir() if p.is_file() and not p.name.endswith(("-wal", "-shm")))
    assert CATALOG in files and MARKER in files and any(f.startswith("chunk-") for f in files)
    images = kind == "with_images"
    if images:  # the files a plain index also has are the plain case's
        files = [f for f in files if f.startswith("image-") or f.endswith((".gem.npy", ".sketch.npy"))]
        assert len(files) >= 6, files
    sketch = tmp_path / "sketch.png"
    Image.fromarray(sketch_of("star")).save(sketch)
    decoy = tmp_path / "decoy.txt"
    decoy.write_text("keep me")
    for name in files:
        for how in CORRUPTIONS:
            case = tmp_path / f"{name}-{how}"
            photos, db = copy_of(base, case)
            outside = snapshot(photos, decoy)
            damage(db / name, how)
            commands = [["info", "--db", db], ["search", "--db", db, "--sketch", sketch, "--json"],
                        ["duplicates", "--db", db]]
            if images:
                commands.append(["search", "--db", db, "--image", photos / "p01.png", "--json"])
            for argv in commands:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DamagedIndexWarning)
                    rc, _, err = cli(*argv)
                assert rc in (0, 2), (name, how, argv, err)
                if rc == 2:
                    one_line_error(err)
                assert "Traceback" not in err
            rc, _, err = cli("index", photos, "--db", db, "-q", "--workers", "1")
            assert rc in (0, 2), (name, how, err)
            if rc == 2:  # only a catalog that cannot be read asks for a rebuild
                assert "--rebuild" in one_line_error(err), (name, how, err)
                assert name.startswith(CATALOG), (name, how, err)
                index_folders([photos], db, workers=1, rebuild=True)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                index = SketchIndex(db)
                assert len(index) == 4, (name, how)
                assert len(index.search(sketch, top_k=10)) == 4
                if images:
                    assert index.search_image(photos / "p01.png", top_k=1)[0].path == str(photos / "p01.png")
            assert snapshot(photos, decoy) == outside
            shutil.rmtree(case)
