"""Build the reference sample of the fused sketch score (``engine/data/reference.npz``; see engine/reference.py).

The reference photos are made here, from sources the repository already ships under free licences:

* crops of the real photos of the demo collection (``resources/demo/photos/skimage_*.jpg`` and
  ``lomiri_*.jpg``: public domain, CC0 and CC BY 4.0, see ``resources/demo/LICENSE.md``), at random
  positions, sizes and aspect ratios, some mirrored;
* scenes rendered by ``scripts/make_demo.py`` with seeds other than the demo's (so other pixels).

None of the evaluation data (``../shared/data``) is used.  The photos are indexed with the product's
indexer and default settings (classical edges, the compact descriptor, efficientnet-lite0), and their
descriptors are written compactly (codes int8, vectors float16).  Nothing here runs in the app.

Usage::

    python scripts/build_reference.py [--crops 12] [--scenes 2] [--out engine/data/reference.npz]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.collection import SketchIndex  # noqa: E402
from engine.indexer import index_folders  # noqa: E402
from engine.reference import REFERENCE_FILE, from_index  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import make_demo  # noqa: E402

SEED = 20261202


def crops(photo: Path, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` random crops (RGB uint8) of a photo: 35-90 % of each side, aspect ratio 0.6-1.7, a third of them
    mirrored, longer side 400-640 px."""
    img = cv2.cvtColor(cv2.imread(str(photo), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    out = []
    for _ in range(n):
        area = rng.uniform(0.15, 0.7) * h * w
        aspect = float(np.exp(rng.uniform(np.log(0.6), np.log(1.7))))
        cw = int(min(w, round(np.sqrt(area * aspect))))
        ch = int(min(h, round(np.sqrt(area / aspect))))
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
        c = img[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 1 / 3:
            c = c[:, ::-1]
        out.append(make_demo.fit_longer_side(np.ascontiguousarray(c)))
    return out


def scenes(per_function: int) -> list[tuple[str, np.ndarray]]:
    """Scenes of ``make_demo.GENERATED`` rendered with other seeds (the demo's own seed + 1000 k)."""
    out = []
    for name, fn, seed in make_demo.GENERATED:
        for k in range(1, per_function + 1):
            rng = np.random.default_rng(seed + 1000 * k)
            sc = fn(rng)
            img = make_demo.finish(sc.img, rng, sc.size, **getattr(sc, "finish_kw", {}))
            out.append((f"{name[:-4]}_s{k}", img))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crops", type=int, default=12, help="crops per real photo (default 12)")
    ap.add_argument("--scenes", type=int, default=2, help="renders per demo scene function (default 2)")
    ap.add_argument("--out", type=Path, default=REFERENCE_FILE)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(SEED)
    real = sorted((make_demo.PHOTOS).glob("skimage_*.jpg")) + sorted(make_demo.PHOTOS.glob("lomiri_*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        t0 = time.perf_counter()
        for p in real:
            for j, c in enumerate(crops(p, args.crops, rng)):
                make_demo.save_jpeg(folder / f"{p.stem}_c{j:02d}.jpg", c)
        for name, img in scenes(args.scenes):
            make_demo.save_jpeg(folder / f"{name}.jpg", img)
        n = len(list(folder.iterdir()))
        print(f"{n} reference photos made in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        index_folders([folder], Path(tmp) / "index", backbone="efficientnet-lite0", edges="classical")
        index = SketchIndex(Path(tmp) / "index")
        print(f"indexed in {time.perf_counter() - t0:.0f} s")
        ref = from_index(index)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        ref.save(args.out)
    print(f"wrote {args.out}: {len(ref)} photos, {args.out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
