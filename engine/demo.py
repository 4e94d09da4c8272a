"""The bundled demo: index ``resources/demo/photos`` and search it with the demo sketches."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .indexer import index_folders
from .store import SketchIndex

DEMO = Path(__file__).resolve().parent.parent / "resources" / "demo"


def default_demo_db() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sketchsearch" / "demo-index"


def run_demo(*, db: Path | None = None, top: int = 5, out=sys.stdout) -> int:
    """Index the demo photos (reusing an earlier demo index) and print each demo sketch's best hits."""
    photos, sketches = DEMO / "photos", sorted((DEMO / "sketches").glob("*.png"))
    if not photos.is_dir() or not sketches:
        raise FileNotFoundError(f"{DEMO}: the demo collection is missing")
    db = Path(db) if db else default_demo_db()
    t0 = time.perf_counter()
    summary = index_folders([photos], db)
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
                  f"{'  mirrored' if h.mirrored else ''}", file=out)
    print(f"\nsearch your own sketch: sketchsearch search --db {db} --sketch YOUR.png", file=out)
    return 0
