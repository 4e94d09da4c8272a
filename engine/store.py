"""The sketch index on disk: a SQLite catalog plus descriptor arrays, and searching it.

Layout of an index folder::

    catalog.sqlite3   meta (format version, settings), images (one row per indexed photo),
                      skipped (files that could not be indexed, with the reason)
    codes-<gen>.npy   (N, D) int8 descriptors in storage order, row i <-> images.row = i
    inv_norms-<gen>.npy  (N, K, 3) float32 inverse kernel norms

Each write puts its arrays under new names (a generation, recorded in ``meta``) and renames the new
catalog into place last, so a reader never sees a half-written index.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .afm import FeatureLayout, encode_query
from .edges import EdgeMap, sketch_edges
from .errors import IndexFormatError, IndexNotFound, QueryError
from .imageio import ImageError, load_image
from .settings import FORMAT_VERSION, SketchSettings

CATALOG = "catalog.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    row INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    work_width INTEGER NOT NULL,
    work_height INTEGER NOT NULL,
    work_scale REAL NOT NULL,
    n_points INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS skipped (path TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""


@dataclass(frozen=True)
class PhotoRecord:
    """One indexed photo: its file identity, geometry and stored descriptor."""

    path: str
    size: int
    mtime: float
    width: int
    height: int
    work_width: int
    work_height: int
    work_scale: float
    n_points: int
    codes: np.ndarray  # (D,) int8, storage order
    inv_norms: np.ndarray  # (K, 3) float32


@dataclass(frozen=True)
class Hit:
    """One search result.

    ``box`` is ``[x0, y0, x1, y1]`` in the photo's original pixels (after EXIF orientation).
    """

    rank: int
    path: str
    score: float
    box: tuple[float, float, float, float]
    scale: float
    mirrored: bool
    row: int

    def to_json(self) -> dict:
        return {"rank": self.rank, "path": self.path, "score": round(self.score, 6),
                "box": [round(v, 1) for v in self.box], "scale": self.scale, "mirrored": self.mirrored}


def photo_box(geometry, width: float, height: float, dx: float, dy: float) -> tuple[float, float, float, float]:
    """Box ``[x0, y0, x1, y1]`` in a photo's original pixels of a ``width x height`` (working pixels) frame
    centred ``(dx, dy)`` from the working frame's centre, clipped to the photo.

    ``geometry`` is the photo's (width, height, work_width, work_height, work_scale).
    """
    full_w, full_h, ww, wh, ws = geometry
    cx, cy = ww / 2 + dx, wh / 2 + dy
    x0, x1 = np.clip([(cx - width / 2) / ws, (cx + width / 2) / ws], 0, full_w)
    y0, y1 = np.clip([(cy - height / 2) / ws, (cy + height / 2) / ws], 0, full_h)
    return float(x0), float(y0), float(x1), float(y1)


def write_index(db: Path, settings: SketchSettings, records: Iterable[PhotoRecord],
                skipped: Iterable[tuple[str, str]]) -> int:
    """Write a complete index to ``db`` (a folder, created if needed), replacing what was there.

    The arrays of each write get new file names (a generation), named in the catalog; the catalog is
    swapped in last with one rename, so a reader sees either the old index or the new one, never a mix.
    Returns the number of indexed photos.
    """
    db = Path(db)
    if db.exists() and not db.is_dir():
        raise IndexNotFound(f"{db}: exists and is not a folder; an index is a folder")
    db.mkdir(parents=True, exist_ok=True)
    records = sorted(records, key=lambda r: r.path)
    codes = np.zeros((len(records), settings.dim), np.int8)
    inv = np.zeros((len(records), len(settings.scales), 3), np.float32)
    for i, r in enumerate(records):
        codes[i] = r.codes
        inv[i] = r.inv_norms
    gen = uuid.uuid4().hex[:12]
    names = {"codes": f"codes-{gen}.npy", "inv_norms": f"inv_norms-{gen}.npy"}
    cat_tmp = db / f"{CATALOG}.tmp-{gen}"
    try:
        np.save(db / names["codes"], codes)
        np.save(db / names["inv_norms"], inv)
        con = sqlite3.connect(str(cat_tmp))
        with con:
            con.executescript(_SCHEMA)
            con.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("format_version", str(FORMAT_VERSION)), ("settings", settings.to_json()),
                ("codes", names["codes"]), ("inv_norms", names["inv_norms"])])
            con.executemany(
                "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(i, r.path, r.size, r.mtime, r.width, r.height, r.work_width, r.work_height, r.work_scale,
                  r.n_points) for i, r in enumerate(records)])
            con.executemany("INSERT OR REPLACE INTO skipped VALUES (?, ?)", sorted(skipped))
        con.close()
        for suffix in ("-wal", "-shm"):
            (db / (CATALOG + suffix)).unlink(missing_ok=True)
        os.replace(cat_tmp, db / CATALOG)
    except BaseException:
        for leftover in (cat_tmp, db / names["codes"], db / names["inv_norms"]):
            leftover.unlink(missing_ok=True)
        raise
    for old in [*db.glob("codes-*.npy"), *db.glob("inv_norms-*.npy")]:
        if old.name not in names.values():
            old.unlink(missing_ok=True)  # an older generation (a reader that has it open keeps its data)
    return len(records)


def read_settings(db: Path) -> SketchSettings:
    """Settings of an existing index (raises IndexNotFound / IndexFormatError)."""
    return SketchSettings.from_json(_read_meta(db)["settings"])


def _read_meta(db: Path) -> dict[str, str]:
    """The ``meta`` table of an index, checked for its format version."""
    db = Path(db)
    if not (db / CATALOG).is_file():
        if db.exists():
            raise IndexNotFound(f"{db}: not a sketchsearch index (no {CATALOG}); "
                                f"build one with: sketchsearch index FOLDER --db {db}")
        raise IndexNotFound(f"{db}: no such index; build one with: sketchsearch index FOLDER --db {db}")
    try:
        con = sqlite3.connect(f"file:{db / CATALOG}?mode=ro", uri=True, timeout=30)
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        con.close()
    except sqlite3.Error as e:
        raise IndexFormatError(f"{db}: unreadable catalog ({e}); rebuild with: "
                               f"sketchsearch index FOLDER --db {db}") from None
    version = meta.get("format_version")
    if version != str(FORMAT_VERSION):
        raise IndexFormatError(f"{db}: index format {version} but this sketchsearch reads format "
                               f"{FORMAT_VERSION}; rebuild with: sketchsearch index FOLDER --db {db}")
    return meta


class SketchIndex:
    """A read-only view of an index folder that answers sketch queries.

    Parameters
    ----------
    db : path of the index folder
    """

    def __init__(self, db: str | os.PathLike) -> None:
        self.path = Path(db)
        try:
            self._load()
        except IndexFormatError:
            self._load()  # a writer may have swapped generations between reading the catalog and the arrays

    def _load(self) -> None:
        _read_meta(self.path)  # raises the right error when there is no (valid) catalog
        con = sqlite3.connect(f"file:{self.path / CATALOG}?mode=ro", uri=True, timeout=30)
        try:  # one connection: meta, rows and array names of the same generation
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            rows = con.execute("SELECT row, path, width, height, work_width, work_height, work_scale, size, mtime, "
                               "n_points FROM images ORDER BY row").fetchall()
            self.skipped = con.execute("SELECT path, reason FROM skipped ORDER BY path").fetchall()
        finally:
            con.close()
        self.settings = SketchSettings.from_json(meta["settings"])
        self.files = {"codes": meta.get("codes", ""), "inv_norms": meta.get("inv_norms", "")}
        self.paths = [r[1] for r in rows]
        self.geometry = np.array([r[2:7] for r in rows], np.float64).reshape(-1, 5)
        self._file_info = [r[7:] for r in rows]  # size, mtime, n_points
        n = len(rows)
        if n:
            try:
                self.codes = np.load(self.path / self.files["codes"], mmap_mode="r")
                self.inv_norms = np.load(self.path / self.files["inv_norms"], mmap_mode="r")
            except (OSError, ValueError) as e:
                raise IndexFormatError(f"{self.path}: descriptor arrays are missing or damaged ({e}); rebuild "
                                       f"with: sketchsearch index FOLDER --db {self.path}") from None
        else:
            self.codes = np.zeros((0, self.settings.dim), np.int8)
            self.inv_norms = np.zeros((0, len(self.settings.scales), 3), np.float32)
        if self.codes.shape != (n, self.settings.dim) or self.inv_norms.shape[0] != n:
            raise IndexFormatError(f"{self.path}: descriptor arrays do not match the catalog; rebuild with: "
                                   f"sketchsearch index FOLDER --db {self.path}")

    def __len__(self) -> int:
        return len(self.paths)

    def records(self) -> dict[str, PhotoRecord]:
        """Every indexed photo as a PhotoRecord (descriptor copied out of the arrays), by path."""
        out = {}
        for row, (path, (size, mtime, n_points)) in enumerate(zip(self.paths, self._file_info, strict=True)):
            width, height, ww, wh, ws = self.geometry[row]
            out[path] = PhotoRecord(path, size, mtime, int(width), int(height), int(ww), int(wh), float(ws),
                                    n_points, np.array(self.codes[row]), np.array(self.inv_norms[row]))
        return out

    @cached_property
    def layout(self) -> FeatureLayout:
        return FeatureLayout.from_settings(self.settings)

    def sketch_query(self, sketch) -> EdgeMap:
        """Sketch image (path or array) -> its edge map at scale 1."""
        if isinstance(sketch, EdgeMap):
            return sketch
        if isinstance(sketch, str | os.PathLike):
            try:
                sketch = load_image(sketch).pixels
            except ImageError as e:
                raise QueryError(str(e)) from None
        try:
            return sketch_edges(sketch, max_side=self.settings.max_side)
        except ValueError as e:
            raise QueryError(str(e)) from None

    def search(self, sketch, *, top_k: int = 20, options=None) -> list[Hit]:
        """Photos that contain the sketched shape, best first, each with its box.

        Parameters
        ----------
        sketch : path, image array or EdgeMap
        top_k : int
        options : SearchOptions

        Returns
        -------
        list of Hit (at most ``top_k``, fewer when the index is smaller)
        """
        from .search import QueryScorer, SearchOptions, pick_device, rank  # torch: only where searches run

        options = options or SearchOptions()
        if options.mode == "fast" and options.shortlist_size(len(self)) < top_k:
            # every returned hit is re-ranked in 2-D, so its score and its box belong together
            options = dataclasses.replace(options, shortlist=min(len(self), top_k))
        edges = self.sketch_query(sketch)
        scorer = QueryScorer(encode_query(edges, self.layout), self.layout, mirror=options.mirror,
                             device=pick_device(options.device))
        ranking = rank(scorer, self.codes, self.inv_norms, options, top_k=top_k, n_align=top_k)
        # the alignment's score is the exact maximum at the box shown (the binary mode only approximates)
        found = sorted(zip(ranking.rows, ranking.alignments, strict=True), key=lambda ra: -ra[1].score)
        return [Hit(i + 1, self.paths[row], al.score, self.box(int(row), edges, al.scale, al.dx, al.dy),
                    al.scale, al.mirrored, int(row)) for i, (row, al) in enumerate(found)]

    def box(self, row: int, sketch: EdgeMap, scale: float, dx: float, dy: float) -> tuple[float, ...]:
        """Box in original pixels of the sketch frame at ``scale`` placed ``(dx, dy)`` from the photo centre."""
        return photo_box(self.geometry[row], sketch.width * scale, sketch.height * scale, dx, dy)

    def info(self) -> dict:
        """Counts, settings and sizes on disk."""
        sizes = {name: (self.path / name).stat().st_size for name in (CATALOG, *self.files.values())
                 if name and (self.path / name).is_file()}
        n = len(self)
        return {"path": str(self.path), "images": n, "skipped": len(self.skipped),
                "format_version": FORMAT_VERSION, "settings": json.loads(self.settings.to_json()),
                "descriptor_dim": self.settings.dim, "bytes_on_disk": sizes,
                "bytes_per_image": self.settings.dim + len(self.settings.scales) * 3 * 4}
