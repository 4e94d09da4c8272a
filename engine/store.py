"""The sketch index on disk: a SQLite catalog plus descriptor arrays, and searching it.

Layout of an index folder::

    catalog.sqlite3   meta (format version, settings), images (one row per indexed photo),
                      skipped (files that could not be indexed, with the reason)
    codes.npy         (N, D) int8 descriptors in storage order, row i <-> images.row = i
    inv_norms.npy     (N, K, 3) float32 inverse kernel norms

A write builds the new arrays and catalog under temporary names and renames them into place, so a
reader never sees a half-written index.
"""
from __future__ import annotations

import json
import os
import sqlite3
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
CODES = "codes.npy"
INV_NORMS = "inv_norms.npy"

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

    Returns the number of indexed photos.
    """
    db = Path(db)
    if db.exists() and not db.is_dir():
        raise IndexNotFound(f"{db}: exists and is not a folder; an index is a folder")
    db.mkdir(parents=True, exist_ok=True)
    records = sorted(records, key=lambda r: r.path)
    layout_dim = settings.dim
    n_k = len(settings.scales)
    codes = np.zeros((len(records), layout_dim), np.int8)
    inv = np.zeros((len(records), n_k, 3), np.float32)
    for i, r in enumerate(records):
        codes[i] = r.codes
        inv[i] = r.inv_norms
    tmp = f".tmp-{os.getpid()}"
    np.save(db / (CODES + tmp), codes)
    os.replace(db / (CODES + tmp + ".npy"), db / (CODES + tmp))
    np.save(db / (INV_NORMS + tmp), inv)
    os.replace(db / (INV_NORMS + tmp + ".npy"), db / (INV_NORMS + tmp))
    cat_tmp = db / (CATALOG + tmp)
    if cat_tmp.exists():
        cat_tmp.unlink()
    con = sqlite3.connect(str(cat_tmp))
    with con:
        con.executescript(_SCHEMA)
        con.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("format_version", str(FORMAT_VERSION)), ("settings", settings.to_json())])
        con.executemany(
            "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(i, r.path, r.size, r.mtime, r.width, r.height, r.work_width, r.work_height, r.work_scale,
              r.n_points) for i, r in enumerate(records)])
        con.executemany("INSERT OR REPLACE INTO skipped VALUES (?, ?)", sorted(skipped))
    con.close()
    for name in (CODES, INV_NORMS):
        os.replace(db / (name + tmp), db / name)
    for suffix in ("-wal", "-shm"):
        (db / (CATALOG + suffix)).unlink(missing_ok=True)
    os.replace(cat_tmp, db / CATALOG)
    return len(records)


def read_settings(db: Path) -> SketchSettings:
    """Settings of an existing index (raises IndexNotFound / IndexFormatError)."""
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
    return SketchSettings.from_json(meta["settings"])


class SketchIndex:
    """A read-only view of an index folder that answers sketch queries.

    Parameters
    ----------
    db : path of the index folder
    """

    def __init__(self, db: str | os.PathLike) -> None:
        self.path = Path(db)
        self.settings = read_settings(self.path)
        con = sqlite3.connect(f"file:{self.path / CATALOG}?mode=ro", uri=True, timeout=30)
        try:
            rows = con.execute("SELECT row, path, width, height, work_width, work_height, work_scale "
                               "FROM images ORDER BY row").fetchall()
            self.skipped = con.execute("SELECT path, reason FROM skipped ORDER BY path").fetchall()
        finally:
            con.close()
        self.paths = [r[1] for r in rows]
        self.geometry = np.array([r[2:] for r in rows], np.float64).reshape(-1, 5)
        n = len(rows)
        if n:
            try:
                self.codes = np.load(self.path / CODES, mmap_mode="r")
                self.inv_norms = np.load(self.path / INV_NORMS, mmap_mode="r")
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
        edges = self.sketch_query(sketch)
        scorer = QueryScorer(encode_query(edges, self.layout), self.layout, mirror=options.mirror,
                             device=pick_device(options.device))
        ranking = rank(scorer, self.codes, self.inv_norms, options, top_k=top_k)
        hits = []
        for i, (row, al) in enumerate(zip(ranking.rows, ranking.alignments, strict=False)):
            hits.append(Hit(i + 1, self.paths[row], float(ranking.scores[i]),
                            self.box(int(row), edges, al.scale, al.dx, al.dy), al.scale, al.mirrored, int(row)))
        return hits

    def box(self, row: int, sketch: EdgeMap, scale: float, dx: float, dy: float) -> tuple[float, ...]:
        """Box in original pixels of the sketch frame at ``scale`` placed ``(dx, dy)`` from the photo centre."""
        return photo_box(self.geometry[row], sketch.width * scale, sketch.height * scale, dx, dy)

    def info(self) -> dict:
        """Counts, settings and sizes on disk."""
        sizes = {name: (self.path / name).stat().st_size for name in (CATALOG, CODES, INV_NORMS)
                 if (self.path / name).exists()}
        n = len(self)
        return {"path": str(self.path), "images": n, "skipped": len(self.skipped),
                "format_version": FORMAT_VERSION, "settings": json.loads(self.settings.to_json()),
                "descriptor_dim": self.settings.dim, "bytes_on_disk": sizes,
                "bytes_per_image": self.settings.dim + len(self.settings.scales) * 3 * 4}
