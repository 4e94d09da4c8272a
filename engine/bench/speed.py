"""Speed benchmarks: kernel approximation, edge maps, query latency, indexing throughput, opening a large index."""
from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..afm import FeatureLayout, encode_query
from ..hed import VGG_BLOCKS, HEDDetector, hed_available, load_hed
from ..search import QueryScorer, SearchOptions, pick_device, rank
from ..settings import SketchSettings
from .datasets import copies
from .synthetic import synthetic_database, synthetic_index, synthetic_sketch

log = logging.getLogger(__name__)


# -- kernels ---------------------------------------------------------------------------------------------

def bench_kernels() -> list[dict]:
    """Max approximation error per spatial kernel: joint frequencies vs harmonic-only, |Omega| = 5, 6."""
    from ..featuremaps import approximation_report

    rows = []
    for n_freq in (5, 6):
        s = SketchSettings(n_freq_xy=n_freq)
        for r in approximation_report(s.sigmas, n_freq, s.lam_max):
            rows.append({"n_freq": n_freq, **r})
    return rows


# -- edges -----------------------------------------------------------------------------------------------

def bench_edges(data: Path | None, quick: bool = False) -> list[dict]:
    """Boundary precision / recall / F of the classical detector and plain Canny on SYSU outlines."""
    from . import edges as edge_quality
    from .datasets import existing_root

    root = existing_root(data)
    if root is None or not (root / "sysu-shapes").is_dir():
        return []
    items = edge_quality.load_sysu(root / "sysu-shapes")
    images: dict = {}
    rows = []
    names = ["canny", "classical"] + (["hed"] if hed_available() else [])
    for name in names:
        r = edge_quality.evaluate_detector(name, root / "sysu-shapes", items=items, images=images,
                                           step=7 if quick else 1)
        rows.append({"detector": name, "images": r["n_images"], "P (in boxes)": r["precision"],
                     "R": r["recall"], "F": r["f"], "P (whole image)": r["precision_all"],
                     "best F": r["ods_f"], "at w": r["ods_threshold"], "ms/image": round(r["ms_per_image"], 1),
                     "img/s": round(1000.0 / r["ms_per_image"], 1)})
    return rows


def bench_hed_speed(device: str | None = None, quick: bool = False) -> list[dict]:
    """HED images/s on this machine's CPU and, where present, its GPU (batched)."""


    if not hed_available():
        return []
    rows = [throughput("cpu", n=4 if quick else 16)]
    if torch.cuda.is_available() and (device is None or str(device).startswith("cuda")):
        rows.append(throughput(device or "cuda", n=64 if quick else 512, batch_size=32))
    return rows


# -- speed -----------------------------------------------------------------------------------------------

def _time_query(scorer, codes, inv, options, repeats) -> tuple[float, float, dict]:
    """Median seconds of a query, median CPU seconds of the process (every thread's) and mean seconds per stage."""
    times, cpu, stages = [], [], {}
    rank(scorer, codes, inv, options, top_k=20)  # warm-up: first-call allocations are not the query's cost
    for _ in range(repeats):
        t = {}
        t0, c0 = time.perf_counter(), time.process_time()
        rank(scorer, codes, inv, options, top_k=20, timings=t)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        for k, v in t.items():
            stages[k] = stages.get(k, 0.0) + v / repeats
    return float(np.median(times)), float(np.median(cpu)), {k: round(v, 4) for k, v in stages.items()}


def bench_speed(*, quick: bool = False, device: str | None = None) -> dict:
    """Query latency on synthetic descriptors, bytes per image, and the stage profile; the load of the machine
    (1-minute load average) beside each figure, as other work on the cores slows it."""
    settings = SketchSettings()
    layout = FeatureLayout.from_settings(settings)
    sizes = (2_000, 10_000) if quick else (10_000, 100_000, 1_000_000)
    exhaustive_max = 10_000 if quick else 100_000
    dev = pick_device(device)
    if dev.type == "cuda":
        exhaustive_max = sizes[-1]
    scorer = QueryScorer(encode_query(synthetic_sketch(), layout), layout, device=dev)
    rows = []
    for n in sizes:
        codes, inv = synthetic_database(layout, n)
        auto = SearchOptions()
        variants = [(f"fast, default ({auto.shortlist_order(n)})", auto),
                    ("fast (coarse 2-D)", SearchOptions(order="coarse")),
                    ("fast (S_x + S_y)", SearchOptions(order="sum")),
                    ("fast (discriminative)", SearchOptions(order="discriminative")),
                    ("fast (S_x + S_y) + binary", SearchOptions(order="sum", binary=True))]
        if n <= exhaustive_max:
            variants.append(("exhaustive", SearchOptions(mode="exhaustive")))
        for name, opt in variants:
            repeats = 5 if n <= 100_000 else 3
            seconds, cpu, stages = _time_query(scorer, codes, inv, opt, repeats)
            rows.append({"images": n, "pipeline": name, "shortlist": opt.shortlist_size(n) if opt.mode == "fast"
                         else n, "seconds": round(seconds, 4), "cpu_s": round(cpu, 4), "stages": stages,
                         "load": round(os.getloadavg()[0], 2)})
        del codes, inv
    bytes_per_image = settings.dim + len(settings.scales) * 3 * 4
    return {"device": str(dev), "threads": scorer.threads, "queries": rows, "bytes_per_image": bytes_per_image,
            "targets": {"100k_fast_s": 0.03, "1M_fast_s": 0.25, "bytes_per_image": 300}}


def _cpu_seconds() -> float:
    """CPU seconds (user and system) of this process and of its child processes that have ended."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def bench_indexing(photos: list[Path], *, workers: tuple[int, ...] = (1, 2)) -> list[dict]:
    """Indexing throughput (images/s) over real photos with 1 and 2 worker processes, with the CPU seconds
    the run took (its worker processes included) and the load average when it started: on a machine that
    other programs share, images per CPU second tell more than images per second."""
    import tempfile

    from ..indexer import index_folders

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photos"
        src.mkdir()
        for i, p in enumerate(photos):
            (src / f"{i:05d}{p.suffix.lower()}").symlink_to(p.resolve())
        for w in workers:
            db = Path(tmp) / f"db{w}"
            load = os.getloadavg()[0]
            c0, t0 = _cpu_seconds(), time.perf_counter()
            s = index_folders([src], db, workers=w)
            dt, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
            rows.append({"workers": w, "images": s.described, "seconds": round(dt, 2),
                         "images_per_s": round(s.described / dt, 1), "cpu_s": round(cpu, 2),
                         "images_per_cpu_s": round(s.described / max(cpu, 1e-9), 1), "load": round(load, 1),
                         "skipped": len(s.skipped)})
    return rows


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def bench_store_indexing(photos: list[Path], n: int, *, workers: tuple[int, ...] = (1, 2),
                         sketch_only: tuple[int, ...] = (2,)) -> list[dict]:
    """Indexing throughput on ``n`` real photos (repeated as copies), and the index's bytes per photo;
    with image descriptors for each of ``workers``, without (``--backbone none``) for ``sketch_only``."""
    import tempfile

    from ..indexer import index_folders

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = copies(photos, n, Path(tmp) / "photos")
        for w, backbone in [(w, "auto") for w in workers] + [(w, "none") for w in sketch_only]:
            db = Path(tmp) / f"db{w}-{backbone}"
            t0 = time.perf_counter()
            s = index_folders([src], db, workers=w, backbone=backbone)
            dt = time.perf_counter() - t0
            t1 = time.perf_counter()
            again = index_folders([src], db, workers=w, backbone=backbone)  # nothing changed: incremental re-run
            rerun = time.perf_counter() - t1
            rows.append({"workers": w, "image descriptors": backbone != "none", "images": s.described,
                         "seconds": round(dt, 2),
                         "images_per_s": round(s.described / dt, 1), "rerun_s": round(rerun, 2),
                         "rerun_described": again.described, "skipped": len(s.skipped),
                         "index_bytes_per_image": round(_folder_bytes(db) / max(1, s.indexed), 1)})
    return rows


_OPEN_AND_SEARCH = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from engine.collection import SketchIndex
from engine.search import SearchOptions
import torch
from engine.edges import EdgeMap
imports = time.perf_counter() - t0
def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0
rss0 = anon_mb()
t0 = time.perf_counter()
index = SketchIndex(sys.argv[1])
opened = time.perf_counter() - t0
rng = np.random.default_rng(0)
n = 400
sketch = EdgeMap(rng.uniform(-150, 150, n), rng.uniform(-150, 150, n), rng.uniform(0, np.pi, n), np.ones(n),
                 400, 400, 1.0, (0.0, 0.0))
hits = index.search(sketch, top_k=20)
first = time.perf_counter() - t0
t1 = time.perf_counter()
index.search(sketch, top_k=20)
second = time.perf_counter() - t1
print(json.dumps({"images": len(index), "imports_s": imports, "open_s": opened, "open_and_first_search_s": first,
                  "second_search_s": second, "hits": len(hits),
                  "private_memory_growth_mb": anon_mb() - rss0}))
"""


def bench_store_open(n: int) -> dict:
    """Open-and-first-search time of an ``n``-photo synthetic index, in a fresh process (memory-mapped)."""
    import subprocess
    import sys
    import tempfile


    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "index"
        t0 = time.perf_counter()
        synthetic_index(db, n)
        built = time.perf_counter() - t0
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        out = subprocess.run([sys.executable, "-c", _OPEN_AND_SEARCH, str(db)], capture_output=True, text=True,
                             env=env, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["build_s"] = round(built, 1)
        row["index_mb"] = round(_folder_bytes(db) / 1e6, 1)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


def throughput(device: str | None = None, *, n: int = 16, size: tuple[int, int] = (300, 400),
               batch_size: int = 16) -> dict:
    """Images per second of the ``"hed"`` detector on synthetic photos of ``size`` (h, w): the network
    alone and with thinning / filtering (for ``sketchsearch bench``)."""
    import time

    import torch

    rng = np.random.default_rng(0)
    images = [rng.random(size + (3,), dtype=np.float32) for _ in range(n)]
    det = HEDDetector(device=device, batch_size=batch_size)
    det.probabilities(images[:min(2, n)])  # load, warm up
    dev = str(next(load_hed(device).parameters()).device)
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    t0 = time.perf_counter()
    probs = det.probabilities(images)
    sync()
    t1 = time.perf_counter()
    for e in probs:
        det.from_probability(e)
    t2 = time.perf_counter()
    return {"device": dev, "size": f"{size[1]}x{size[0]}", "batch": batch_size if dev.startswith("cuda") else 1,
            "threads": torch.get_num_threads(), "net img/s": round(n / (t1 - t0), 1),
            "detector img/s": round(n / (t2 - t0), 1), "GFLOP/img": round(flops(*size) / 1e9, 1)}


def flops(height: int, width: int) -> float:
    """Multiply-adds x 2 of one HED forward pass on an image of that size (for the benchmark's notes)."""
    total, h, w, cin = 0.0, height, width, 3
    for b, convs in enumerate(VGG_BLOCKS):
        if b:
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        for cout in convs:
            total += 2.0 * h * w * 9 * cin * cout
            cin = cout
    return total
