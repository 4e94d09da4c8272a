"""Benchmark of the scale-out (``sketchsearch bench --only cluster``).

* Indexing throughput with 1 and 2 Dask workers (``local:N``; cluster start-up reported apart), beside the
  single-machine indexer with 2 processes.
* Sketch-search latency over 4 shards of synthetic descriptors totalling 4M photos -- in this process, and
  on a 2-worker local cluster (actors) -- against one 4M index (alignment path: synthetic indexes have no
  image descriptors).
* The engine's own per-query cost: one step sent to 4 empty shards and back, and a whole sketch query on 4
  one-photo shards (5 steps), on the cluster and in this process.
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from .metrics import median_seconds

log = logging.getLogger(__name__)


def synthetic_manifest(path: Path, n_shards: int, n_per_shard: int, *, seed: int = 0) -> Path:
    """A manifest of ``n_shards`` synthetic sketch-only shards (``engine.bench.synthetic_index``)."""
    from ..settings import SketchSettings
    from ..shards import SHARD_META, Manifest
    from ..writer import IndexWriter
    from .synthetic import synthetic_index

    m = Manifest.create(path, n_shards, SketchSettings(), None)
    for i in range(n_shards):
        db = m.shard_path(i)
        if n_per_shard:
            synthetic_index(db, n_per_shard, seed=seed + i, prefix=f"/photos/shard{i}/")
        with IndexWriter(db, SketchSettings()) as w:
            w.set_meta(SHARD_META, m.shard_record(i))
    return path


def bench_cluster_indexing(photos: list[Path], *, workers: tuple[int, ...] = (1, 2)) -> list[dict]:
    """Photos per second indexing a sharded collection on ``local:N`` clusters (one shard per worker)."""
    from ..cluster import DaskRunner, connect
    from ..indexer import index_folders
    from ..shards import index_sharded
    from .datasets import copies

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = copies(photos, len(photos), Path(tmp) / "photos")
        t0 = time.perf_counter()
        s = index_folders([src], Path(tmp) / "single", workers=2)
        dt = time.perf_counter() - t0
        rows.append({"how": "one index, 2 processes (no cluster)", "workers": 2, "images": s.described,
                     "start_s": 0.0, "seconds": round(dt, 2), "images_per_s": round(s.described / dt, 1)})
        for w in workers:
            t0 = time.perf_counter()
            with connect(f"local:{w}") as cluster:
                start = time.perf_counter() - t0
                t1 = time.perf_counter()
                s = index_sharded([src], Path(tmp) / f"c{w}.json", runner=DaskRunner(cluster), n_shards=w)
                dt = time.perf_counter() - t1
            rows.append({"how": f"sharded, Dask local:{w}", "workers": w, "images": s.described,
                         "start_s": round(start, 2), "seconds": round(dt, 2),
                         "images_per_s": round(s.described / dt, 1)})
    return rows


def bench_cluster_search(total: int, *, shards: int = 4, repeats: int = 5) -> list[dict]:
    """Sketch-query latency: one ``total``-photo index vs ``shards`` shards of ``total / shards`` photos."""
    from ..cluster import ClusterIndex, connect
    from ..collection import SketchIndex
    from ..shards import ShardedIndex
    from .synthetic import synthetic_index, synthetic_sketch

    sketch = synthetic_sketch()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        synthetic_index(Path(tmp) / "single", total)
        synthetic_manifest(Path(tmp) / "c.json", shards, total // shards)
        build = time.perf_counter() - t0
        for name, where, index in [(f"one index of {total:,}", "this process", SketchIndex(Path(tmp) / "single")),
                                   (f"{shards} shards of {total // shards:,}", "this process (one after another)",
                                    ShardedIndex(Path(tmp) / "c.json"))]:
            rows.append({"collection": name, "where": where,
                         "seconds": round(median_seconds(lambda ix=index: ix.search(sketch, top_k=20), repeats), 3)})
        with connect("local:2") as cluster:
            ix = ClusterIndex(Path(tmp) / "c.json", cluster, timeout=600)
            rows.append({"collection": f"{shards} shards of {total // shards:,}", "where": "Dask local:2 (actors)",
                         "seconds": round(median_seconds(lambda: ix.search(sketch, top_k=20), repeats), 3)})
    for r in rows:
        r["build_s"] = round(build, 1)
    return rows


def bench_cluster_overhead(*, shards: int = 4, repeats: int = 20) -> list[dict]:
    """The engine's per-query cost: one step to empty shards and back; a whole query on one-photo shards."""
    from ..cluster import ClusterIndex, connect
    from ..shards import ShardedIndex
    from ..shardsearch import ShardSearcher
    from .synthetic import synthetic_sketch

    sketch = synthetic_sketch()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        synthetic_manifest(Path(tmp) / "empty.json", shards, 0)
        synthetic_manifest(Path(tmp) / "one.json", shards, 1)
        local = ShardedIndex(Path(tmp) / "one.json")
        rows.append({"what": f"sketch query, {shards} one-photo shards (5 steps)", "where": "this process",
                     "ms": round(1000 * median_seconds(lambda: local.search(sketch, top_k=20), repeats), 1)})
        with connect("local:2") as cluster:
            empty = ClusterIndex(Path(tmp) / "empty.json", cluster, timeout=60)

            def step():
                got = empty.shards.call(ShardSearcher.summary, {i: () for i in range(shards)})
                assert len(got) == shards

            rows.append({"what": f"one step to {shards} empty shards and back", "where": "Dask local:2",
                         "ms": round(1000 * median_seconds(step, repeats), 1)})
            one = ClusterIndex(Path(tmp) / "one.json", cluster, timeout=60)
            rows.append({"what": f"sketch query, {shards} one-photo shards (5 steps)", "where": "Dask local:2",
                         "ms": round(1000 * median_seconds(lambda: one.search(sketch, top_k=20), repeats), 1)})
    return rows


def bench_cluster(*, data: Path | None = None, quick: bool = False) -> dict:
    """All of it, as ``{"tables": {title: rows}}`` for ``engine.bench``."""
    from ..cluster import load_distributed
    from ..errors import SketchSearchError
    from .datasets import indexing_photos

    try:
        load_distributed()
    except SketchSearchError as e:
        return {"tables": {}, "skipped": [str(e)]}
    tables = {}
    photos = indexing_photos(data, 40 if quick else 200)
    rows = bench_cluster_indexing(photos)
    tables[f"Indexing {len(photos)} photos into a sharded collection (one shard per worker; start-up apart)"] = rows
    total = 400_000 if quick else 4_000_000
    tables[f"Sketch query latency, {total:,} synthetic photos: one index vs 4 shards (median of 5, top 20)"] = \
        bench_cluster_search(total)
    tables["The engine's per-query cost (median of 20)"] = bench_cluster_overhead()
    return {"tables": tables}
