"""The index writer (engine.writer, engine.indexer): bad files, incremental updates, moves, one writer at
a time, readers during writes, and kill-at-any-moment-then-resume with nothing lost or duplicated."""
import errno
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine import describe, indexer
from engine.collection import SketchIndex
from engine.errors import IndexLocked
from engine.indexer import index_folders
from engine.settings import SketchSettings
from engine.writer import IndexWriter

from .synth import photo_with_shape, sketch_of

ROOT = Path(__file__).resolve().parents[2]


def photo(seed: int, size=(240, 320)) -> np.ndarray:
    """An RGB uint8 photo with a shape in it."""
    shape = ["arrow", "house", "ell", "star"][seed % 4]
    h, w = size
    img = photo_with_shape(shape, (w // 5, h // 6, w - w // 5, h - h // 6), seed=seed, size=(w, h))
    return img


def save(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` pixels but carries no image data (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def by_name(summary) -> dict[str, str]:
    return {os.path.basename(p): r for p, r in summary.skipped}


def descriptors(db) -> dict[str, np.ndarray]:
    index = SketchIndex(db)
    codes = np.asarray(index.codes)
    return {p: codes[i] for i, p in enumerate(index.paths)}


# -- bad input ---------------------------------------------------------------------------------------

def test_every_kind_of_bad_file_is_indexed_right_or_skipped_with_its_reason(tmp_path, monkeypatch):
    d = tmp_path / "photos"
    good = photo(1)
    save(d / "good.png", good)
    (d / "zero.jpg").write_bytes(b"")
    (d / "text.png").write_text("this is not an image\n")
    (d / "random.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    jpeg = cv2.imencode(".jpg", good)[1].tobytes()
    (d / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (d / "bomb.png").write_bytes(png_header_only(30000, 30000))
    cv2.imwrite(str(d / "sixteen.png"), (photo(2).astype(np.uint16) * 257))
    Image.fromarray(photo(3)).convert("CMYK").save(d / "cmyk.jpg", quality=92)
    upright = photo(4, size=(240, 320))
    im = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))  # stored turned; EXIF 6 turns it back
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(d / "exif6.jpg", exif=exif.tobytes(), quality=95)
    save(d / "upright.jpg", upright)
    save(d / "фото 写真 🌅.png", photo(5))
    long_name = "l" * 240 + ".png"
    save(d / long_name, photo(6))
    (d / "loop").mkdir()
    os.symlink("..", d / "loop" / "up")  # a folder link loop
    os.symlink("self.jpg", d / "self.jpg")  # a file link loop
    os.symlink("nowhere.jpg", d / "dangling.jpg")
    locked = save(d / "locked.png", photo(7))
    (d / "closed").mkdir()
    save(d / "closed" / "inside.png", photo(8))
    if os.geteuid() != 0:
        locked.chmod(0)
        (d / "closed").chmod(0)
    else:  # root reads everything: make the OS answer "permission denied" for these two
        real_hash, real_walk = indexer.content_hash, os.walk

        def no_read(path, *a, **k):
            if os.path.basename(path) == "locked.png":
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_hash(path, *a, **k)

        def walk(top, *a, onerror=None, **k):
            for dirpath, dirs, files in real_walk(top, *a, onerror=onerror, **k):
                if os.path.basename(dirpath) == "closed":
                    onerror(PermissionError(errno.EACCES, "Permission denied", dirpath))
                    continue
                yield dirpath, dirs, files

        monkeypatch.setattr(indexer, "content_hash", no_read)
        monkeypatch.setattr(indexer.os, "walk", walk)
    try:
        s = index_folders([d], tmp_path / "db", workers=1)
    finally:
        if os.geteuid() != 0:
            locked.chmod(0o644)
            (d / "closed").chmod(0o755)
    skipped = by_name(s)
    assert skipped["zero.jpg"] == "empty file (0 bytes)"
    assert "not a recognised image" in skipped["text.png"]
    assert "not a recognised image" in skipped["random.jpg"]
    assert "truncated" in skipped["truncated.jpg"]
    assert "decompression bomb" in skipped["bomb.png"]
    assert skipped["self.jpg"] == "symbolic link loop"
    assert skipped["dangling.jpg"] == "broken link or file vanished"
    assert skipped["locked.png"] == "permission denied"
    assert skipped["closed"] == "cannot read folder: permission denied"
    indexed = {"good.png", "sixteen.png", "cmyk.jpg", "exif6.jpg", "upright.jpg", "фото 写真 🌅.png", long_name}
    assert not indexed & set(skipped)
    index = SketchIndex(tmp_path / "db")
    names = [os.path.basename(p) for p in index.paths]
    assert sorted(names) == sorted(indexed)  # the link loop did not index anything twice
    geo = dict(zip(names, index.geometry, strict=True))
    assert tuple(geo["exif6.jpg"][:2]) == (320, 240)  # width, height the right way up
    codes = dict(zip(names, np.asarray(index.codes, np.float64), strict=True))
    cos = codes["exif6.jpg"] @ codes["upright.jpg"] / np.linalg.norm(codes["exif6.jpg"]) / np.linalg.norm(
        codes["upright.jpg"])
    assert cos > 0.95  # described upright: the same descriptor as the upright copy, up to JPEG noise
    info_skipped = dict(index.skipped)
    assert {os.path.basename(p) for p in info_skipped} >= {"zero.jpg", "bomb.png", "locked.png"}


def test_info_lists_counts_parts_and_skipped_files(tmp_path, capsys):
    from app.cli import main

    d = tmp_path / "p"
    save(d / "a.png", photo(1))
    (d / "bad.jpg").write_bytes(b"nope")
    assert main(["index", str(d), "--db", str(tmp_path / "db"), "-q"]) == 0
    capsys.readouterr()
    assert main(["info", "--db", str(tmp_path / "db")]) == 0
    out = capsys.readouterr().out
    assert "photos     1   skipped 1" in out and "bad.jpg" in out and "codes" in out and "catalog" in out
    assert main(["info", "--db", str(tmp_path / "db"), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 1 and info["skipped_files"][0]["path"].endswith("bad.jpg")
    assert {"catalog", "codes", "inv_norms", "ids"} <= set(info["bytes_on_disk"])


def test_opening_an_index_counts_its_skipped_files_from_an_index_not_the_whole_table(tmp_path):
    """The count of skipped files is read whenever an index opens: a scan of a 1M-photo catalog took 65 ms
    (warm) of a first search; a partial index makes it a lookup.  An older catalog gets it when a writer opens it."""
    import sqlite3

    from engine.catalog import CATALOG

    d, db = tmp_path / "p", tmp_path / "db"
    save(d / "a.png", photo(1))
    (d / "bad.jpg").write_bytes(b"nope")
    index_folders([d], db, workers=1, backbone=None)
    query = "SELECT COUNT(*) FROM files WHERE status = 'skipped'"

    def plan() -> str:
        con = sqlite3.connect(db / CATALOG)
        try:
            return " ".join(str(r[-1]) for r in con.execute("EXPLAIN QUERY PLAN " + query))
        finally:
            con.close()

    assert "files_skipped" in plan() and SketchIndex(db).n_skipped == 1
    con = sqlite3.connect(db / CATALOG)
    with con:
        con.execute("DROP INDEX files_skipped")  # a catalog from before it
    con.close()
    assert "files_skipped" not in plan() and SketchIndex(db).n_skipped == 1  # readers still count, by a scan
    index_folders([d], db, workers=1, backbone=None)
    assert "files_skipped" in plan() and SketchIndex(db).n_skipped == 1


# -- incremental --------------------------------------------------------------------------------------

def test_add_change_touch_remove_and_prune(tmp_path):
    d, db = tmp_path / "p", tmp_path / "db"
    for i in range(5):
        save(d / f"{i}.png", photo(i))
    s = index_folders([d], db, workers=1)
    assert (s.indexed, s.described) == (5, 5)
    first = descriptors(db)
    save(d / "5.png", photo(5))  # added
    save(d / "1.png", photo(11))  # changed
    os.utime(d / "2.png", (time.time() + 10, time.time() + 10))  # touched: same bytes, new mtime
    (d / "3.png").unlink()  # removed
    s = index_folders([d], db, workers=1)
    assert (s.indexed, s.described, s.reused, s.removed, s.missing) == (6, 2, 3, 0, 1)
    now = descriptors(db)
    assert not np.array_equal(now[str(d / "1.png")], first[str(d / "1.png")])
    np.testing.assert_array_equal(now[str(d / "2.png")], first[str(d / "2.png")])
    s = index_folders([d], db, workers=1)
    assert (s.described, s.reused, s.missing) == (0, 5, 1)
    s = index_folders([d], db, workers=1, prune=True)
    assert (s.indexed, s.removed) == (5, 1)
    assert sorted(os.path.basename(p) for p in SketchIndex(db).paths) == ["0.png", "1.png", "2.png", "4.png", "5.png"]


def test_other_folders_are_kept_and_prune_only_looks_under_the_folders_given(tmp_path):
    a, b, db = tmp_path / "a", tmp_path / "b", tmp_path / "db"
    save(a / "x.png", photo(1))
    save(b / "y.png", photo(2))
    index_folders([a], db, workers=1)
    index_folders([b], db, workers=1)
    (a / "x.png").unlink()
    s = index_folders([b], db, workers=1, prune=True)  # a's missing photo is not b's business
    assert s.indexed == 2 and s.removed == 0
    assert index_folders([a], db, workers=1, prune=True).removed == 1


def test_moved_and_renamed_files_keep_their_descriptors(tmp_path, monkeypatch):
    d, db = tmp_path / "p", tmp_path / "db"
    for i in range(4):
        save(d / f"{i}.png", photo(i))
    index_folders([d], db, workers=1)
    before = descriptors(db)
    (d / "sub").mkdir()
    (d / "0.png").rename(d / "sub" / "zero.png")
    (d / "1.png").rename(d / "one.png")
    shutil.copy(d / "2.png", d / "copy-of-2.png")  # a copy is a new photo (the original still exists)

    calls = []
    real = indexer.describe_file
    monkeypatch.setattr(indexer, "describe_file", lambda p, *a, **k: (calls.append(p.name), real(p, *a, **k))[1])
    s = index_folders([d], db, workers=1, prune=True)
    assert (s.moved, s.described, s.removed, s.indexed) == (2, 1, 0, 5) and calls == ["copy-of-2.png"]
    after = descriptors(db)
    np.testing.assert_array_equal(after[str(d / "sub" / "zero.png")], before[str(d / "0.png")])
    np.testing.assert_array_equal(after[str(d / "one.png")], before[str(d / "1.png")])
    assert str(d / "0.png") not in after
    sketch = tmp_path / "s.png"
    cv2.imwrite(str(sketch), sketch_of("arrow"))
    assert str(d / "sub" / "zero.png") in [h.path for h in SketchIndex(db).search(sketch, top_k=5)]


# -- writers and readers ---------------------------------------------------------------------------

def test_a_second_writer_is_refused_with_the_holder_named(tmp_path):
    d, db = tmp_path / "p", tmp_path / "db"
    save(d / "a.png", photo(1))
    with IndexWriter(db, SketchSettings()):
        with pytest.raises(IndexLocked, match=f"pid {os.getpid()}"):
            index_folders([d], db, workers=1)
        code = subprocess.run([sys.executable, "-m", "app.cli", "index", str(d), "--db", str(db), "-q"],
                              cwd=ROOT, capture_output=True, text=True)
        assert code.returncode == 2 and "another sketchsearch process" in code.stderr
    assert index_folders([d], db, workers=1).indexed == 1  # released


def test_readers_search_while_a_writer_adds(tmp_path):
    d, db = tmp_path / "p", tmp_path / "db"
    for i in range(3):
        save(d / f"{i}.png", photo(i))
    index_folders([d], db, workers=1, backbone=None)  # sketch descriptors only: the record below has no CNN part
    layout_settings = SketchSettings()
    extra = save(tmp_path / "q" / "new.png", photo(9))
    from engine.afm import FeatureLayout

    record = describe.describe_photo(extra, FeatureLayout.from_settings(layout_settings))
    with IndexWriter(db, layout_settings) as w:
        old = SketchIndex(db)
        w.add([record])
        new = SketchIndex(db)  # sees the committed chunk while the writer still holds the lock
        assert (len(old), len(new)) == (3, 4)
        sketch = tmp_path / "s.png"
        cv2.imwrite(str(sketch), sketch_of("arrow"))
        assert len(new.search(sketch, top_k=4)) == 4 and len(old.search(sketch, top_k=4)) == 3


def test_chunks_are_compacted_and_dead_slots_dropped(tmp_path, monkeypatch):
    d, db = tmp_path / "p", tmp_path / "db"
    for i in range(12):
        save(d / f"{i:02d}.png", photo(i, size=(120, 160)))
    monkeypatch.setattr(indexer, "FLUSH_EVERY", 1)  # a chunk per photo
    index_folders([d], db, workers=1)
    chunks = list(db.glob("chunk-*.codes.npy"))
    assert 1 <= len(chunks) <= 3  # merged as it went and at the end
    total = sum(len(np.load(c, mmap_mode="r")) for c in chunks)
    assert total == 12
    ref = descriptors(db)
    for i in range(4):
        save(d / f"{i:02d}.png", photo(40 + i, size=(120, 160)))
    index_folders([d], db, workers=1)
    with IndexWriter.existing(db) as w:
        w.compact(full=True)
    (chunk,) = db.glob("chunk-*.codes.npy")
    assert len(np.load(chunk, mmap_mode="r")) == 12  # the 4 dead slots are gone
    now = descriptors(db)
    for i in range(4, 12):
        np.testing.assert_array_equal(now[str(d / f"{i:02d}.png")], ref[str(d / f"{i:02d}.png")])


# -- kill at any moment, then resume -------------------------------------------------------------------

def _committed(db) -> int:
    """Indexed photos a reader sees now (0 while there is no catalog)."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{db / 'catalog.sqlite3'}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM files WHERE status = 'indexed'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def test_a_run_killed_while_making_the_catalog_leaves_no_catalog_without_its_tables(tmp_path, monkeypatch):
    """The first run makes the catalog complete under another name and renames it into place: killed before
    the rename, there is no catalog (no index yet), never one without its tables; the next run makes it."""
    import sqlite3

    from engine import writer
    from engine.errors import IndexNotFound

    db = tmp_path / "db"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stands for the kill between making the new catalog and renaming it

    monkeypatch.setattr(writer.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        IndexWriter(db, SketchSettings())
    monkeypatch.undo()
    assert not (db / "catalog.sqlite3").exists()  # (an exception removes the new one; a kill leaves it)
    with pytest.raises(IndexNotFound):
        SketchIndex(db)
    (db / "catalog.sqlite3.new").write_bytes(b"half of a catalog")  # what a kill leaves
    (db / "catalog.sqlite3.new-wal").write_bytes(b"its log")
    with IndexWriter(db, SketchSettings()):
        pass
    assert len(SketchIndex(db)) == 0
    assert not [p.name for p in db.iterdir() if p.name.startswith("catalog.sqlite3.new")]
    # a catalog an earlier version's killed run left without tables (an empty SQLite file): no index yet
    # for a reader, and the next run starts it afresh
    for name in ("catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm"):
        (db / name).unlink(missing_ok=True)
    sqlite3.connect(db / "catalog.sqlite3").execute("PRAGMA journal_mode=WAL").fetchall()
    with pytest.raises(IndexNotFound, match="no photos indexed yet"):
        SketchIndex(db)
    photos = tmp_path / "p"
    save(photos / "a.png", photo(1, size=(150, 200)))
    index_folders([photos], db)
    assert len(SketchIndex(db)) == 1


@pytest.mark.slow
def test_killed_runs_resume_with_nothing_lost_or_duplicated(tmp_path):
    d = tmp_path / "p"
    n = 100  # six runs, each killed once it has committed (every 7 photos) something more
    for i in range(n):
        save(d / f"{i:03d}.png", photo(i, size=(150, 200)))
    reference = tmp_path / "ref"
    index_folders([d], reference, workers=1)
    ref = descriptors(reference)
    db = tmp_path / "db"
    env = dict(os.environ, SKETCHSEARCH_COMMIT_EVERY="7", PYTHONPATH=str(ROOT))
    rng = random.Random(1)
    sketch = tmp_path / "s.png"
    cv2.imwrite(str(sketch), sketch_of("house"))
    seen = []
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "index", str(d), "--db", str(db), "-q",
                                 "--workers", str(1 + attempt % 2)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        if attempt == 0:
            time.sleep(rng.uniform(0.2, 1.0))  # early: perhaps before anything is committed
        else:  # mid-way: once this run has committed something (a loaded machine can take long to start)
            before = seen[-1] if seen else 0
            deadline = time.monotonic() + 180
            while proc.poll() is None and _committed(db) <= before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.6))
        os.killpg(proc.pid, signal.SIGKILL)  # the writer and its worker processes, mid-way
        proc.wait()
        if not (db / "catalog.sqlite3").exists():
            continue
        index = SketchIndex(db)  # opens, and answers for everything committed
        paths = index.paths
        assert len(paths) == len(set(paths)) and len(index.ids) == len(set(index.ids.tolist()))
        codes = np.asarray(index.codes)
        for i, p in enumerate(paths):
            np.testing.assert_array_equal(codes[i], ref[p])
        if paths:
            assert index.search(sketch, top_k=3)
        seen.append(len(paths))
    assert seen and max(seen) > 0, seen
    s = index_folders([d], db, workers=1)
    assert s.indexed == n and s.described == n - seen[-1]
    final = descriptors(db)
    assert sorted(final) == sorted(ref)
    for p, c in final.items():
        np.testing.assert_array_equal(c, ref[p])
    leftovers = {p.name for p in db.iterdir()} - {"catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm",
                                                  "lock", ".sketchsearch-index", *SketchIndex(db).chunk_files,
                                                  *SketchIndex(db).image_files}
    assert not leftovers
