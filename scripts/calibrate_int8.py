"""Calibrate the indexer's int8 network (``engine.ortnet.model_bytes(net, ranges)``) on half of Sketchy's classes
and check it on the other half.

The int8 graph quantises every activation to uint8 over a range: the least and greatest value it takes over
calibration images.  Those are the network inputs of photos of the classes at even positions of the sorted class
list (``PER_CLASS`` photos each, as the indexer's workers make them: decoded, resized to 384 px, then the three
scales of the image descriptor).  Range by plain least/greatest value: clipping rare values (quantiles 1e-5 to
1e-3 of each image) was tried and moved the descriptors further from the float ones, above all the drawings'.
Calibrating on the drawings of the photos' edges as well, or on them alone, did too (cosine 0.971 and 0.973
against 0.983 for the drawings).

The check, on photos of the classes at odd positions (``CHECK_PER_CLASS`` each): the cosine between the int8 and
the float descriptors, of the photos (image descriptor, three scales) and of their edges drawn (global sketch
descriptor), and the network's time per photo on one thread.  Written with the ranges to
``engine/data/<backbone>-int8.json``; ``tests/engine/test_ortnet.py`` holds the int8 graph to the tolerances.
The indexer uses the int8 graph for the photos only: int8 drawings, though within cosine 0.98 of the float ones,
moved the best hit of the global sketch score that the fused search's expansion is anchored on, and cost it 3-5 %
of its mAP on held classes.  Retrieval quality with int8 photos: ``sketchsearch bench --only compact`` (photo ->
photo), ``--only fusion`` and ``--only rotation``, docs/benchmarks.md.

Usage: python scripts/calibrate_int8.py [--data ../shared/data]   (about a minute on 2 cores)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

PER_CLASS = 2
CHECK_PER_CLASS = 4


def network_inputs(paths: list[Path], side: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(the photos' network inputs at ``side`` px, their edges drawn), uint8, as the indexer's workers make them."""
    from engine.afm import FeatureLayout
    from engine.describe import describe_file
    from engine.settings import SketchSettings

    layout = FeatureLayout.from_settings(SketchSettings())
    photos, drawings = [], []
    for path in paths:
        _, (photo, drawing) = describe_file(path, layout, None, side)
        photos.append(photo)
        drawings.append(drawing)
    return photos, drawings


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from engine import ortnet
    from engine.bench import datasets as ds
    from engine.cnn import INT8_RANGES, GemDescriber, GemSettings, numpy_network, scale_inputs
    from engine.describe import DEFAULT_BACKBONE, drawing_settings
    from engine.imageio import to_rgb

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = ap.parse_args(argv)
    data = ds.load_sketchy(Path(args.data) / "sketchy")
    backbone = DEFAULT_BACKBONE
    gem = GemSettings(backbone=backbone)

    def photos_of(parity: int, k: int) -> list[Path]:
        return [Path(data.photo_paths[i]) for c in range(len(data.class_names)) if c % 2 == parity
                for i in np.flatnonzero(data.photo_class == c)[:k]]

    t0 = time.perf_counter()
    fit, _ = network_inputs(photos_of(0, PER_CLASS), gem.max_side)
    net = numpy_network(backbone)
    ranges = ortnet.activation_ranges(net, (image for photo in fit for image in scale_inputs(to_rgb(photo), gem)))
    seconds = time.perf_counter() - t0

    out = {
        "backbone": backbone,
        "data": f"Sketchy photos: {PER_CLASS} per class of the even classes, the image descriptor's three scales",
        "images": len(fit) * len(gem.sides()),
        "calibration seconds": round(seconds, 1),
        "ranges": {name: [round(lo, 6), round(hi, 6)] for name, (lo, hi) in ranges.items()},
    }
    path = INT8_RANGES[backbone]
    path.write_text(json.dumps(out, indent=1) + "\n")  # what backend="onnx-int8" reads

    photos, drawings = network_inputs(photos_of(1, CHECK_PER_CLASS), gem.max_side)
    check = {}
    for kind, settings, images in (("photos", gem, photos), ("drawings", drawing_settings(backbone), drawings)):
        got = {}
        for name, backend in (("float", "onnx"), ("int8", "onnx-int8")):
            describer = GemDescriber(settings, "cpu", num_threads=1, backend=backend)
            describer.describe(images[:1])
            t = time.perf_counter()
            got[name] = describer.describe(images)
            got[name + " ms"] = 1000 * (time.perf_counter() - t) / len(images)
        cos = np.sum(got["float"] * got["int8"], axis=1)
        check[kind] = {"cosine mean": round(float(cos.mean()), 4), "cosine least": round(float(cos.min()), 4),
                       "ms per image, float": round(got["float ms"], 1),
                       "ms per image, int8": round(got["int8 ms"], 1)}
        print(f"{kind}: {check[kind]}")
    ranges_json = out.pop("ranges")
    out["check"] = {"data": f"Sketchy photos: {CHECK_PER_CLASS} per class of the odd classes; one thread", **check}
    out["ranges"] = ranges_json
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
