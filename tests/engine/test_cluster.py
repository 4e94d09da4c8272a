"""A sharded collection on a local Dask cluster of 2 worker processes (started here): indexing and search give
what one index of the same photos gives; a worker killed during indexing loses and duplicates nothing once
the run is repeated; a worker killed (or frozen) during a search gives a warning and the other shards'
results within the timeout."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
import warnings

import cv2
import pytest

pytest.importorskip("distributed")

from app.cli import main  # noqa: E402
from engine.cluster import ClusterIndex, DaskRunner, connect, local_cluster_kwargs, local_workers  # noqa: E402
from engine.collection import (
    PartialResultWarning,  # noqa: E402
    SketchIndex,  # noqa: E402
)
from engine.errors import SketchSearchError  # noqa: E402
from engine.indexer import index_folders  # noqa: E402
from engine.shards import Manifest, ShardedIndex, index_sharded, shard_of  # noqa: E402

from .synth import sketch_of  # noqa: E402
from .test_shards import make_photos, same_hits  # noqa: E402

slow = pytest.mark.slow  # every test but the first few, which start no cluster
# one worker runs the module (pytest -n): its tests share one Dask cluster and the manifest the first one builds
pytestmark = pytest.mark.xdist_group("cluster")


@pytest.fixture(scope="module")
def cluster():
    with connect("local:2") as c:
        yield c


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    folder = make_photos(tmp / "photos", 40)
    index_folders([folder], tmp / "single", workers=1)
    return tmp, folder


def worker_pids(cluster) -> list[int]:
    return sorted(cluster.client.run(os.getpid).values())


def catalog_paths(manifest) -> list[str]:
    m = Manifest.load(manifest)
    out = []
    for i in range(m.n_shards):
        con = sqlite3.connect(m.shard_path(i) / "catalog.sqlite3")
        out += [r[0] for r in con.execute("SELECT path FROM files WHERE status = 'indexed'")]
        con.close()
    return out


def test_a_local_cluster_listens_on_loopback_only_and_has_no_dashboard():
    kw = local_cluster_kwargs(3)
    assert kw["n_workers"] == 3 and kw["threads_per_worker"] == 1 and kw["host"] == "127.0.0.1"
    assert kw["dashboard_address"] is None and kw["worker_dashboard_address"] is None
    assert kw["scheduler_kwargs"]["dashboard_address"].startswith("127.0.0.1:")


def test_local_workers_are_at_most_the_cores(caplog):
    cores = os.cpu_count() or 1
    assert local_workers("local:1") == 1
    with caplog.at_level("WARNING"):
        assert local_workers("local:99999999999999999999") == cores
    assert f"has {cores} cores" in caplog.text
    for bad in ("local:0", "local:-2", "local:x", "local:"):
        with pytest.raises(SketchSearchError, match="local:N"):
            local_workers(bad)


@slow
def test_every_service_of_a_local_cluster_is_on_loopback(cluster):
    import urllib.error
    import urllib.request

    psutil = pytest.importorskip("psutil")
    info = cluster.client.scheduler_info()
    assert info["address"].startswith("tcp://127.0.0.1:")
    assert all(w.startswith("tcp://127.0.0.1:") for w in info["workers"])
    listening = []
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        listening += [c.laddr for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip in ("127.0.0.1", "::1") for addr in listening), listening
    port = info["services"].get("dashboard")
    if port:  # the scheduler's HTTP routes (health, metrics) are there; the dashboard is not
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10)
        assert e.value.code == 404


@pytest.fixture(scope="module")
def built(cluster, photos):
    """The photos indexed on the cluster into 3 shards (``c.json``): (summary of the run, progress reports)."""
    tmp, folder = photos
    seen = []
    summary = index_sharded([folder], tmp / "c.json", runner=DaskRunner(cluster), n_shards=3,
                            progress=lambda d, t: seen.append((d, t)))
    return summary, seen


@slow
def test_cluster_indexing_and_search_match_one_index(cluster, photos, built):
    tmp, folder = photos
    summary, seen = built
    assert summary.indexed == summary.described == 40
    assert seen and seen[-1] == (40, 40)  # progress summed over the shards' workers
    single = SketchIndex(tmp / "single")
    ix = ClusterIndex(tmp / "c.json", cluster, timeout=60)
    assert len(ix) == 40 and len(set(ix.worker_pids())) == 2  # the shards are spread over both workers
    for shape in ("star", "ell"):
        same_hits(ix.search(sketch_of(shape), top_k=10), single.search(sketch_of(shape), top_k=10))
        same_hits(ix.search(sketch_of(shape), top_k=10), ShardedIndex(tmp / "c.json").search(sketch_of(shape),
                                                                                                 top_k=10))
    query = sorted(folder.iterdir())[3]
    same_hits(ix.search_image(query, top_k=6), single.search_image(query, top_k=6))
    # a second client finds the shards loaded (the actors are kept on the cluster)
    again = ClusterIndex(tmp / "c.json", cluster, timeout=60)
    assert again.worker_pids() == ix.worker_pids()


@slow
def test_loaded_shards_see_what_a_later_run_added(cluster, tmp_path):
    folder = make_photos(tmp_path / "photos", 4)
    runner = DaskRunner(cluster)
    index_sharded([folder], tmp_path / "a.json", runner=runner, n_shards=2, backbone="none")
    assert len(ClusterIndex(tmp_path / "a.json", cluster)) == 4
    make_photos(folder, 3, start=4)
    index_sharded([folder], tmp_path / "a.json", runner=runner)
    ix = ClusterIndex(tmp_path / "a.json", cluster)  # the same actors, each reopening its changed shard
    assert len(ix) == 7 and any("06-" in h.path for h in ix.search(sketch_of("ell"), top_k=7))


@slow
def test_a_worker_killed_during_indexing_loses_and_duplicates_nothing_after_a_rerun(cluster, tmp_path):
    n = 120  # enough for the run to last several progress reports
    folder = make_photos(tmp_path / "photos", n)
    manifest = tmp_path / "k.json"
    runner = DaskRunner(cluster)
    victim = worker_pids(cluster)[0]
    outcome: dict = {}

    started = threading.Event()

    def run() -> None:
        try:
            outcome["summary"] = index_sharded([folder], manifest, runner=runner, n_shards=4,
                                               progress=lambda done, total: started.set())
        except SketchSearchError as e:  # the task died more often than the scheduler retries: said, not hidden
            outcome["error"] = str(e)

    t = threading.Thread(target=run)
    t.start()
    assert started.wait(120)  # the workers are describing photos (about 5 s of work for both)
    assert t.is_alive(), "the run ended before a worker could be killed"
    os.kill(victim, signal.SIGKILL)
    t.join(300)
    assert not t.is_alive()
    cluster.client.wait_for_workers(2, timeout=120)  # the nanny restarts it
    rerun = index_sharded([folder], manifest, runner=runner)
    assert rerun.indexed == n and not rerun.skipped
    paths = catalog_paths(manifest)
    assert len(paths) == len(set(paths)) == n  # nothing lost, nothing twice
    m = Manifest.load(manifest)
    for i in range(4):  # each in its own shard, and every catalogued photo has its descriptor
        ix = SketchIndex(m.shard_path(i))
        assert all(shard_of(p, 4) == i for p in ix.paths) and len(ix) == len(ix.paths)
    sharded = ShardedIndex(manifest)
    assert len(sharded) == n and sharded.shards.images_ready  # the image index was rebuilt on all shards
    assert "star" in sharded.search(sketch_of("star"), top_k=3)[0].path


@slow
def test_a_worker_killed_during_search_gives_a_warning_and_the_other_shards_results(cluster, photos, built):
    tmp, _ = photos
    cluster.client.wait_for_workers(2, timeout=120)
    ix = ClusterIndex(tmp / "c.json", cluster, timeout=20)
    assert len(ix.search(sketch_of("star"), top_k=5)) == 5
    victim = ix.worker_pids()[0]
    dead = {i for i, pid in enumerate(ix.worker_pids()) if pid == victim}
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.warns(PartialResultWarning, match=f"{len(dead)} of 3 shards did not answer"):
        hits = ix.search(sketch_of("star"), top_k=5)
    # a dead worker's shard is left out once the step's timeout is up (sooner when Dask sees it die): the
    # query is bounded by the timeout, not hung; the slack is for a loaded machine (CI took 20.3 s once)
    assert time.monotonic() - t0 < ix.timeout + 15
    assert hits and all(shard_of(h.path, 3) not in dead for h in hits)
    with pytest.warns(PartialResultWarning):
        assert ix.search_image(hits[0].path, top_k=3)
    # the next client reloads the lost shards on the workers there are
    cluster.client.wait_for_workers(2, timeout=120)
    fresh = ClusterIndex(tmp / "c.json", cluster, timeout=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartialResultWarning)
        same_hits(fresh.search(sketch_of("star"), top_k=5), SketchIndex(tmp / "single").search(sketch_of("star"),
                                                                                                top_k=5))


@slow
def test_a_worker_killed_between_the_steps_of_a_query(cluster, photos, built, monkeypatch):
    from engine.cluster import ActorShards
    from engine.shardsearch import ShardSearcher

    tmp, _ = photos
    cluster.client.wait_for_workers(2, timeout=120)
    ix = ClusterIndex(tmp / "c.json", cluster, timeout=20)
    victim = ix.worker_pids()[0]
    dead = {i for i, pid in enumerate(ix.worker_pids()) if pid == victim}
    original = ActorShards._call

    def call(self, step, args):  # the worker dies once the shards have sent their candidates
        out = original(self, step, args)
        if step is ShardSearcher.sketch_candidates:
            os.kill(victim, signal.SIGKILL)
        return out

    monkeypatch.setattr(ActorShards, "_call", call)
    t0 = time.monotonic()
    with pytest.warns(PartialResultWarning, match="did not answer"):
        hits = ix.search(sketch_of("star"), top_k=5)  # expansion and boxes without that worker's shards
    assert time.monotonic() - t0 < 20
    assert hits and all(shard_of(h.path, 3) not in dead for h in hits)


@slow
def test_a_frozen_worker_does_not_hang_the_search(cluster, photos, built):
    tmp, _ = photos
    cluster.client.wait_for_workers(2, timeout=120)
    ix = ClusterIndex(tmp / "c.json", cluster, timeout=3)
    victim = ix.worker_pids()[-1]
    os.kill(victim, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.warns(PartialResultWarning, match="no answer within 3 s"):
            hits = ix.search(sketch_of("ell"), top_k=5)
        assert time.monotonic() - t0 < 3 * 2 + 5  # at most the timeout per step the shard was still asked
        frozen = {i for i, pid in enumerate(ix.worker_pids()) if pid == victim}
        assert all(shard_of(h.path, 3) not in frozen for h in hits)
    finally:
        os.kill(victim, signal.SIGCONT)


@slow
def test_cli_index_and_search_on_a_local_cluster(photos, tmp_path, capsys):
    _, folder = photos
    cv2.imwrite(str(tmp_path / "s.png"), sketch_of("star"))
    db = str(tmp_path / "cli.json")
    assert main(["index", str(folder), "--db", db, "--cluster", "local:2", "--backbone", "none", "-q"]) == 0
    assert "40 photos in" in capsys.readouterr().err
    assert Manifest.load(db).n_shards == 2  # one per worker
    assert main(["search", "--db", db, "--cluster", "local:2", "--sketch", str(tmp_path / "s.png"), "--json",
                 "--top", "4"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 4 and {"rank", "path", "score", "box", "scale", "mirrored", "raw_score"} <= set(rows[0])
    assert main(["search", "--db", db, "--sketch", str(tmp_path / "s.png"), "--json", "--top", "4"]) == 0
    assert [json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()] == [r["path"] for r in rows]
    assert main(["search", "--db", str(tmp_path), "--cluster", "local:1", "--sketch", str(tmp_path / "s.png")]) == 2
    assert "--cluster searches a sharded collection" in capsys.readouterr().err


def test_an_address_dask_trips_over_is_a_one_line_error(monkeypatch):
    from engine import cluster
    from engine.errors import SketchSearchError

    class Tripping:
        @staticmethod
        def Client(*args, **kwargs):  # noqa: N802 -- Dask's name
            raise AssertionError  # what Dask's address parsing once did on "http://[::1" under load

    monkeypatch.setattr(cluster, "load_distributed", lambda: Tripping)
    with pytest.raises(SketchSearchError, match="not a Dask scheduler address"):
        cluster.connect("http://[::1")
