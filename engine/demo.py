"""The bundled demo: index ``resources/demo/photos`` and search it with the demo sketches."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from resources import DEMO

from .collection import SketchIndex
from .indexer import index_folders


def default_demo_db() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sketchsearch" / "demo-index"


def run_demo(*, db: Path | None = None, top: int = 5, out=sys.stdout) -> int:
    """Index the demo photos (reusing an earlier demo index) and print each demo sketch's best hits.

    The first run on a machine builds the CNN in torch (to index, or for the first query where the index is
    reused), which caches the network's weights for numpy (``engine.npnet``): from then on the app and the
    command line answer queries without importing torch (seconds of import, most of the app's time to its
    first results before).
    """
    photos, sketches = DEMO / "photos", sorted((DEMO / "sketches").glob("*.png"))
    if not photos.is_dir() or not sketches:
        raise FileNotFoundError(f"{DEMO}: the demo collection is missing")
    own = db is None  # the demo's own cache folder: one of another format is rebuilt, not refused
    db = Path(db) if db else default_demo_db()
    t0 = time.perf_counter()
    summary = index_folders([photos], db, rebuild=own)
    print(f"demo index {db}: {summary.indexed} photos ({summary.described} new) in "
          f"{time.perf_counter() - t0:.1f} s", file=out)
    index = SketchIndex(db)
    for sketch in sketches:
        t0 = time.perf_counter()
        hits = index.search(sketch, top_k=top)
        dt = time.perf_counter() - t0
        print(f"\nsketch {sketch.name}  ({dt * 1000:.0f} ms)", file=out)
        for h in hits:
            box = ", ".join(f"{v:.0f}" for v in h.box)
            print(f"  {h.rank}. {h.score:.3f}  {Path(h.path).name:<28} box [{box}]"
                  f"{' (uncertain)' if h.box_sure is False else ''}{'  mirrored' if h.mirrored else ''}"
                  f"{'  likely match' if h.likely else ''}", file=out)
    _image_query(index, photos / "lomiri_sunset.jpg", top, out)
    print(f"\nsearch your own sketch: sketchsearch search --db {db} --sketch YOUR.png", file=out)
    print(f"search by image:        sketchsearch search --db {db} --image YOUR.jpg", file=out)
    return 0


def _image_query(index: SketchIndex, photo: Path, top: int, out) -> None:
    """Search by image with a cropped, mirrored copy of a demo photo (the photo itself should come first)."""
    if not index.image_settings or not photo.is_file():
        return
    import numpy as np

    from .imageio import load_image

    pixels = load_image(photo).pixels
    h, w = pixels.shape[:2]
    query = np.ascontiguousarray(pixels[int(0.15 * h):int(0.85 * h), int(0.15 * w):int(0.85 * w)][:, ::-1])
    t0 = time.perf_counter()
    hits = index.search_image(query, top_k=top)
    dt = time.perf_counter() - t0
    print(f"\nimage query: {photo.name}, cropped to 70 % and mirrored  ({dt * 1000:.0f} ms)", file=out)
    for h in hits:
        print(f"  {h.rank}. {h.score:.3f}  {Path(h.path).name}", file=out)
