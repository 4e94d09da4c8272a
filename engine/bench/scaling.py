"""Cost as the collection grows (``sketchsearch bench --only scaling``).

For each size N (1,000 to 1,000,000 photos; quick: 1,000 and 10,000) a synthetic index with every descriptor
(``synthetic_index``: random alignment codes, raw image and global sketch vectors that the writer folds into
the compact image index) is built in a temporary folder, measured in this process and deleted:

* sketch query seconds, the median of a few repeats after a warm-up: the alignment alone (what
  ``search --no-fusion`` runs) and the default fused search with query expansion; and the seconds to open
  the index and get the first fused results (the networks already loaded in this process, the files in the
  page cache: they were just written);
* bytes per photo on disk: the per-photo cost (alignment, rotation and compact image descriptors, as
  ``SketchIndex.info`` counts them) and the whole folder over N (with the catalog and what the collection
  holds once: the bases and the whitening).

Then the indexing throughput of real photos against the number of worker processes (``bench_indexing``: the
whole ``index_folders`` call, a fresh index each time).  With ``png``, the three panels are drawn with OpenCV:
query seconds and bytes per photo against N (log-log), photos/s against workers.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..collection import SketchIndex
from .datasets import store_photos
from .metrics import median_seconds
from .speed import bench_indexing
from .synthetic import synthetic_index, synthetic_sketch

SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
TOP_K = 20
COLOURS = ((200, 90, 30), (30, 120, 230), (60, 160, 60), (150, 60, 170))  # BGR, one per line of a panel
PANEL = (400, 440)  # (width, height) of one panel: three side by side make a 1200 px wide figure


def folder_bytes(folder: Path) -> int:
    """Bytes of the files in a folder and its subfolders."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure_size(n: int, *, repeats: int, work: Path) -> dict:
    """Build an ``n``-photo synthetic index with every descriptor under ``work``, measure it, delete it.

    Returns
    -------
    dict
        ``photos``, the median seconds of the alignment-only and the fused query, the seconds to open the
        index and get the first fused results, the per-photo bytes, the folder's bytes over N, the build
        seconds.
    """
    db = work / f"index-{n}"
    sketch = synthetic_sketch()
    try:
        t0 = time.perf_counter()
        synthetic_index(db, n, images=True)
        build = time.perf_counter() - t0
        SketchIndex(db).search(sketch, top_k=TOP_K)  # loads the networks (once per process): not the index's cost
        t0 = time.perf_counter()
        index = SketchIndex(db)
        index.search(sketch, top_k=TOP_K)
        first = time.perf_counter() - t0
        alignment = median_seconds(lambda: index.search(sketch, top_k=TOP_K, fusion=False), repeats)
        fused = median_seconds(lambda: index.search(sketch, top_k=TOP_K), repeats)
        info = index.info()
        per_photo = info["bytes_per_image"] + info["rotation_bytes_per_image"] + info["image_bytes_per_image"]
        folder = folder_bytes(db) / n
    finally:
        shutil.rmtree(db, ignore_errors=True)
    return {"photos": n, "alignment s": round(alignment, 4), "fused s": round(fused, 4),
            "open + first fused s": round(first, 4), "bytes/photo": per_photo,
            "folder bytes/photo": round(folder, 1), "build s": round(build, 1)}


def bench_scaling(*, quick: bool = False, png: Path | None = None, photos: list[Path] | None = None,
                  data: str | os.PathLike | None = None, sizes: Sequence[int] | None = None,
                  workers: Sequence[int] = (1, 2)) -> dict:
    """Query time and bytes per photo against N, indexing photos/s against workers; the figure.

    Parameters
    ----------
    quick : bool
        Sizes 1,000 and 10,000 (else up to 1,000,000), 3 query repeats (else 5; 3 at 1,000,000), 40 photos
        indexed (else 200).
    png : Path, optional
        Where to write the figure (``plot_cost``).
    photos : list of Path, optional
        The photos indexed for the throughput, as given (default: about 40 or 200 of ``store_photos(data)``).
    data : evaluation data folder of ``store_photos`` (default ``../shared/data``)
    sizes : the collection sizes (default as ``quick`` says)
    workers : the worker counts of the indexing throughput

    Returns
    -------
    dict
        ``rows`` (one per size, ``measure_size``), ``indexing`` (one per worker count, ``bench_indexing``),
        ``tables`` (title: rows) and, with ``png``, ``png``: the figure's path.
    """
    sizes = tuple(sizes or (QUICK_SIZES if quick else SIZES))
    if photos is None:
        every = store_photos(Path(data) if data else None)
        want = 40 if quick else 200
        photos = every[::max(1, len(every) // want)][:want]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure_size(n, repeats=3 if quick or n >= 1_000_000 else 5, work=Path(tmp)) for n in sizes]
    indexing = bench_indexing(list(photos), workers=tuple(workers))
    out: dict = {"rows": rows, "indexing": indexing, "tables": {
        f"Cost as the collection grows (synthetic index with every descriptor; query seconds: median of repeats, "
        f"top {TOP_K}, this process)": rows,
        f"Indexing throughput against worker processes ({len(photos)} real photos, whole index run)": indexing}}
    if png is not None:
        plot_cost(rows, indexing, png)
        out["png"] = str(png)
    return out


def plot_cost(rows: list[dict], indexing: list[dict], path: str | Path) -> None:
    """Write the three panels (query seconds and bytes per photo against N, log-log; indexing photos/s
    against worker processes) side by side as a PNG."""
    n = [r["photos"] for r in rows]
    panels = [
        plot_panel({"alignment only": (n, [r["alignment s"] for r in rows]),
                    "fused + expansion": (n, [r["fused s"] for r in rows])},
                   xlabel="photos in the collection", ylabel="query seconds", title="Sketch query time"),
        plot_panel({"per photo": (n, [r["bytes/photo"] for r in rows]),
                    "whole folder / N": (n, [r["folder bytes/photo"] for r in rows])},
                   xlabel="photos in the collection", ylabel="bytes per photo", title="Index size on disk"),
        plot_panel({"photos/s": ([r["workers"] for r in indexing], [r["images_per_s"] for r in indexing])},
                   xlabel="worker processes", ylabel="photos per second", title="Indexing throughput",
                   log=(False, False)),
    ]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.hstack(panels))


def label(v: float) -> str:
    """A tick label: 1k, 10k, 1M for thousands and millions, else the shortest decimal."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:g}{suffix}"
    return f"{v:g}"


def log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """The axis range of positive values ``lo`` to ``hi`` widened to whole decades, and its decade ticks."""
    a = math.floor(math.log10(lo))
    b = max(math.ceil(math.log10(hi)), a + 1)
    return 10.0 ** a, 10.0 ** b, [10.0 ** k for k in range(a, b + 1)]


def linear_ticks(hi: float, *, whole: bool = False) -> tuple[float, float, list[float]]:
    """The axis range from 0 to a round number at least a tenth above ``hi`` (values >= 0), and its 3 to 6
    ticks; with ``whole``, whole numbers only."""
    span = max(1.1 * hi, 1e-9)
    step = 10.0 ** math.floor(math.log10(span / 5))
    step *= next(m for m in (1, 2, 5, 10) if span / (step * m) <= 5)
    if whole:
        step = max(step, 1.0)
    steps = math.ceil(span / step)
    return 0.0, steps * step, [i * step for i in range(steps + 1)]


def plot_panel(series: dict[str, tuple[Sequence[float], Sequence[float]]], *, xlabel: str, ylabel: str,
               title: str = "", log: tuple[bool, bool] = (True, True), size: tuple[int, int] = PANEL) -> np.ndarray:
    """One chart of lines with markers on a white (height, width, 3) uint8 BGR image.

    Parameters
    ----------
    series : {legend label: (xs, ys)}
        One line each, in ``COLOURS`` order; on a log axis, points with a value <= 0 are left out.
    xlabel, ylabel, title : str
    log : (bool, bool)
        Log scale of the x and the y axis: the range widened to whole decades, a tick and a grid line at each
        decade (lighter lines at 2..9 times it).  A linear axis runs from 0 (for values >= 0), with
        whole-number ticks where every value is a whole number.
    size : (width, height) in pixels
    """
    width, height = size
    img = np.full((height, width, 3), 255, np.uint8)
    x0, y0, x1, y1 = 70, height - 60, width - 15, 50  # plot area: left, bottom, right, top

    kept = {name: [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)
                   if (x > 0 or not log[0]) and (y > 0 or not log[1])] for name, (xs, ys) in series.items()}
    every = [p for pts in kept.values() for p in pts] or [(1.0, 1.0)]
    axes = []
    for k in (0, 1):
        values = [p[k] for p in every]
        axes.append(log_ticks(min(values), max(values)) if log[k]
                    else linear_ticks(max(values), whole=all(v.is_integer() for v in values)))
    (xlo, xhi, xticks), (ylo, yhi, yticks) = axes

    def frac(v: float, k: int) -> float:
        lo, hi, _ = axes[k]
        return math.log10(v / lo) / math.log10(hi / lo) if log[k] else (v - lo) / (hi - lo)

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x0 + frac(x, 0) * (x1 - x0))), int(round(y0 - frac(y, 1) * (y0 - y1)))

    def minor(ticks: list[float], is_log: bool) -> list[float]:  # 2..9 times each decade
        return [t * m for t in ticks[:-1] for m in range(2, 10)] if is_log else []

    font, black = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    for ticks, shade in ((minor(xticks, log[0]), 243), (xticks, 222)):
        for t in ticks:
            cv2.line(img, pt(t, ylo), pt(t, yhi), (shade, shade, shade), 1)
    for ticks, shade in ((minor(yticks, log[1]), 243), (yticks, 222)):
        for t in ticks:
            cv2.line(img, pt(xlo, t), pt(xhi, t), (shade, shade, shade), 1)
    for t in xticks:
        (tw, _), _ = cv2.getTextSize(label(t), font, 0.45, 1)
        cv2.putText(img, label(t), (pt(t, ylo)[0] - tw // 2, y0 + 20), font, 0.45, black, 1, cv2.LINE_AA)
    for t in yticks:
        (tw, th), _ = cv2.getTextSize(label(t), font, 0.45, 1)
        cv2.putText(img, label(t), (x0 - 8 - tw, pt(xlo, t)[1] + th // 2), font, 0.45, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y1), (x1, y0), black, 1)
    for pts, colour in zip(kept.values(), COLOURS, strict=False):
        xy = [pt(x, y) for x, y in sorted(pts)]
        for a, b in zip(xy[:-1], xy[1:], strict=False):
            cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
        for p in xy:
            cv2.circle(img, p, 4, colour, -1, cv2.LINE_AA)
    for i, (name, colour) in enumerate(zip(kept, COLOURS, strict=False)):  # legend, top left inside the axes
        y = y1 + 18 + 20 * i
        cv2.line(img, (x0 + 10, y - 4), (x0 + 34, y - 4), colour, 2, cv2.LINE_AA)
        cv2.putText(img, name, (x0 + 40, y), font, 0.45, black, 1, cv2.LINE_AA)
    (tw, _), _ = cv2.getTextSize(xlabel, font, 0.5, 1)
    cv2.putText(img, xlabel, ((x0 + x1 - tw) // 2, height - 15), font, 0.5, black, 1, cv2.LINE_AA)
    cv2.putText(img, ylabel, (8, y1 - 10), font, 0.5, black, 1, cv2.LINE_AA)
    if title:
        (tw, _), _ = cv2.getTextSize(title, font, 0.6, 2)
        cv2.putText(img, title, ((width - tw) // 2, 22), font, 0.6, black, 2, cv2.LINE_AA)
    return img
