"""A sharded collection on a Dask cluster: indexing spread over the workers, shards kept open in actors.

Why Dask (``distributed``) and not Ray: it is pure Python and a small install beside torch (Ray is a
large binary wheel with its own object store and raylet daemons), its ``LocalCluster`` gives a real
multi-process cluster on one machine for tests and laptops, a cluster is a scheduler address (``dask
scheduler`` / ``dask worker`` on the machines, or dask-jobqueue / dask-kubernetes), and it has what this
needs: tasks that move to another worker when theirs dies, actors (stateful objects on a worker) with
futures that take a timeout.  See the README's scaling section.

* ``connect("local:N" | "tcp://host:8786")`` -> :class:`Cluster`.
* :class:`DaskRunner` runs ``engine.shards`` jobs on the workers: one task per shard (the shard's own
  indexing, resumable like any index; a task whose worker dies runs again on another), progress sent
  back through a Dask queue.
* :class:`ClusterIndex` searches: one :class:`ShardActor` per shard holds it open (memory-mapped) on a
  worker; the client (``engine.shardsearch``) sends each step to all of them and waits at most
  ``timeout`` seconds; a shard that fails or does not answer is left out with a
  ``PartialResultWarning``.  The actors are published on the scheduler under the manifest's id, so later
  clients (each ``sketchsearch search --cluster``) find them loaded.

Workers must see the shards' folders at the manifest's paths (a shared file system), and the photos at
the paths given to ``index``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .collection import Collection, Shards
from .errors import QueryError, SketchSearchError
from .shards import Manifest, ShardJob, index_shard, mark_stale
from .shardsearch import ShardSummary

__all__ = ["Cluster", "ClusterIndex", "DaskRunner", "ShardActor", "connect", "local_cluster_kwargs", "local_workers"]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0  # seconds a search waits for the shards, per step


def load_distributed():
    """Dask's ``distributed`` module (SketchSearchError naming the extra to install where it is missing)."""
    # Dask logs every connection at INFO; keep its errors (and -v's logging, where the root logger asks for more)
    if logging.getLogger().level > logging.INFO:
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    try:
        import distributed
    except ImportError as e:
        raise SketchSearchError(f"--cluster needs Dask: pip install 'sketchsearch[cluster]' ({e})") from None
    return distributed


class Cluster:
    """A Dask client, and the local cluster it started (``local:N``), closed together."""

    def __init__(self, client, local=None) -> None:
        self.client = client
        self.local = local

    @property
    def n_workers(self) -> int:
        return len(self.client.scheduler_info()["workers"])

    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info()["workers"])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self.local is not None:
            with contextlib.suppress(Exception):
                self.local.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def local_workers(address: str) -> int:
    """N of ``local:N``, at most the machine's cores (a larger N is lowered, with a warning).

    Raises
    ------
    SketchSearchError
        When N is not a whole number >= 1.
    """
    try:
        n = int(address.split(":", 1)[1])
    except ValueError:
        n = 0
    if n < 1:
        raise SketchSearchError(f"--cluster {address}: expected local:N with N >= 1 workers")
    cores = os.cpu_count() or 1
    if n > cores:
        log.warning("--cluster %s: this machine has %d cores; starting %d workers", address[:40], cores, cores)
        n = cores
    return n


def local_cluster_kwargs(n_workers: int) -> dict:
    """Keyword arguments of Dask's ``LocalCluster`` for ``local:N``: N single-thread worker processes, every
    service (scheduler, workers, nannies, their HTTP endpoints) bound to 127.0.0.1 and no dashboard: nothing
    of it is reachable from another machine."""
    return dict(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, worker_dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # its health/metrics routes, not the dashboard
                silence_logs=logging.ERROR)


def connect(address: str, *, timeout: float = 30.0) -> Cluster:
    """``local:N``: start N worker processes on this machine (one thread each; see :func:`local_workers` and
    :func:`local_cluster_kwargs`); else the address of a running Dask scheduler (``tcp://host:8786``)."""
    if address.startswith("local:"):
        n = local_workers(address)
        distributed = load_distributed()
        local = distributed.LocalCluster(**local_cluster_kwargs(n))
        return Cluster(distributed.Client(local), local)
    distributed = load_distributed()
    try:
        client = distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise SketchSearchError(f"--cluster {address}: cannot reach a Dask scheduler there ({e})") from None
    # "missing port number", "unknown address scheme 'http'", ...; under load Dask's address parsing has also
    # failed one of its own assertions on a malformed address ("http://[::1", once in a full test run)
    except (ValueError, TypeError, AssertionError) as e:
        raise SketchSearchError(f"--cluster {address}: not a Dask scheduler address ({e}); expected "
                                f"tcp://HOST:PORT (e.g. tcp://host:8786) or local:N") from None
    return Cluster(client)


def _malloc_for_numpy() -> None:
    """Undo what Dask's nanny sets for its workers, ``MALLOC_TRIM_THRESHOLD_=65536``: with it glibc maps and
    unmaps every array over 128 KB, and indexing ran 2.5x slower (4 vs 10 photos/s on one core).  Large
    thresholds again (as glibc's dynamic ones reach); a no-op where there is no glibc."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD


# --------------------------------------------------------------------------------------------------
# Indexing


def _index_shard_task(job: ShardJob, queue_name: str):
    """One shard's indexing, on a worker; progress to the client's queue (at most twice a second)."""
    from distributed import Queue

    _malloc_for_numpy()

    queue = Queue(queue_name)
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or done == total:
            last[0] = now
            with contextlib.suppress(Exception):  # progress is best effort
                queue.put((job.index, done, total))

    return index_shard(job, report)


class DaskRunner:
    """Runs ``engine.shards`` jobs on a Dask cluster (see ``engine.shards.index_sharded``)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.client = cluster.client

    @property
    def n_workers(self) -> int:
        return self.cluster.n_workers

    def run_shards(self, jobs: list[ShardJob], progress: Callable[[int, int], None] | None, total: int | None):
        from distributed import Queue, wait

        name = f"sketchsearch-progress-{uuid.uuid4().hex}"
        queue = Queue(name, client=self.client)
        # workers=1: each Dask worker is one core; the job describes its photos in the worker's process
        futures = [self.client.submit(_index_shard_task, ShardJob(**{**job.__dict__, "workers": 1}), name,
                                      key=f"sketchsearch-index-{job.index}-{uuid.uuid4().hex[:8]}", pure=False)
                   for job in jobs]
        seen: dict[int, tuple[int, int]] = {}

        def drain() -> None:
            try:
                n = queue.qsize()
                items = queue.get(batch=n) if n else []
            except Exception:  # progress is best effort
                return
            for i, d, t in items:
                seen[i] = (d, t)
            if progress and seen:
                progress(sum(d for d, _ in seen.values()), max(total or 0, sum(t for _, t in seen.values())))

        while not all(f.done() for f in futures):
            time.sleep(0.5)
            drain()
        drain()
        wait(futures)
        out, errors = [], []
        for job, f in zip(jobs, futures, strict=True):
            if f.status == "finished":
                out.append(f.result())
                continue
            e = f.exception()
            if isinstance(e, SketchSearchError):
                raise e
            errors.append(f"shard {job.index} ({job.db}): {type(e).__name__}: {e}")
        with contextlib.suppress(Exception):
            queue.close()
        if errors:
            raise SketchSearchError("indexing failed on the cluster (what was indexed is kept; run the same command "
                                    "again to continue): " + "; ".join(errors))
        return out

    def map(self, fn: Callable, args: list[tuple]) -> list:
        futures = [self.client.submit(fn, *a, pure=False) for a in args]
        return self.client.gather(futures)


# --------------------------------------------------------------------------------------------------
# Searching


class ShardActor:
    """One shard, open on a worker (a Dask actor): answers ``engine.shardsearch.ShardSearcher`` steps."""

    def __init__(self, manifest: str, index: int) -> None:
        _malloc_for_numpy()
        self.manifest = manifest
        self.index = index
        self._open()

    def _open(self) -> None:
        from .catalog import read_meta
        from .collection import SketchIndex
        from .shardsearch import ShardSearcher

        m = Manifest.load(self.manifest)
        db = m.shard_path(self.index)
        m.check_shard(self.index, read_meta(db))
        self.searcher = ShardSearcher(SketchIndex(db))
        self.stamp = self._stamp(db)

    @staticmethod
    def _stamp(db: Path) -> tuple:
        out = []
        for name in ("catalog.sqlite3", "catalog.sqlite3-wal"):
            try:
                st = os.stat(db / name)
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def summary(self) -> ShardSummary:
        """The shard's summary, reopening it first when a writer changed it since."""
        if self._stamp(self.searcher.index.path) != self.stamp:
            self._open()
        return dataclasses.replace(self.searcher.summary(), pid=os.getpid())

    def call(self, step: str, *args):
        """``ShardSearcher.<step>(*args)``: one of the protocol's steps (``shardsearch.STEPS``), by name (the
        name crosses the network; the client names it by the method itself)."""
        from .shardsearch import STEPS

        if step not in STEPS:
            raise QueryError(f"{step!r} is not a step of the shard protocol")
        return getattr(self.searcher, step)(*args)


class ActorShards(Shards):
    """Shards reached through Dask actors; each step waits at most ``timeout`` seconds for all of them."""

    def __init__(self, actors: list, summaries: list[ShardSummary], names: list[str], timeout: float) -> None:
        self.actors = actors
        self.timeout = timeout
        super().__init__(summaries, names)

    def _call(self, step, args):
        got, failed = {}, {}
        futures = {}
        for i, a in args.items():
            try:
                futures[i] = self.actors[i].call(step.__name__, *a)
            except Exception as e:  # the actor's worker is gone
                failed[i] = f"{type(e).__name__}: {e}"
        deadline = time.monotonic() + self.timeout
        for i, f in futures.items():
            try:
                got[i] = f.result(timeout=max(0.01, deadline - time.monotonic()))
            except SketchSearchError:
                raise
            except TimeoutError:
                failed[i] = f"no answer within {self.timeout:g} s"
            except Exception as e:
                failed[i] = f"{type(e).__name__}: {e}"
        return got, failed


class ClusterIndex(Collection):
    """A sharded collection searched on a Dask cluster (the search API of ``ShardedIndex``)."""

    def __init__(self, manifest: str | os.PathLike, cluster: Cluster, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.manifest = Manifest.load(manifest)
        self.path = self.manifest.path
        self.settings = self.manifest.settings
        self.image_settings = self.manifest.image_settings
        self.cluster = cluster
        self.timeout = timeout
        client = cluster.client
        name = f"sketchsearch-shards-{self.manifest.id}"
        futures = client.get_dataset(name, default=None)
        summaries = None
        if futures is not None:
            with contextlib.suppress(Exception):
                actors = [f.result(timeout=timeout) for f in futures]
                summaries = [a.summary().result(timeout=timeout) for a in actors]
        if summaries is None:  # none yet, or some died: (re)load every shard
            with contextlib.suppress(Exception):
                client.unpublish_dataset(name)
            workers = cluster.workers()
            futures = [client.submit(ShardActor, str(self.path), i, actor=True, pure=False,
                                     workers=[workers[i % len(workers)]], allow_other_workers=True,
                                     key=f"sketchsearch-shard-{self.manifest.id}-{i}-{uuid.uuid4().hex[:8]}")
                       for i in range(self.manifest.n_shards)]
            actors = [f.result() for f in futures]  # a shard that cannot be opened raises here, with its reason
            summaries = [a.summary().result(timeout=timeout) for a in actors]
            client.publish_dataset(futures, name=name)
        self._futures = futures
        mark_stale(summaries, self.manifest)
        self.shards = ActorShards(actors, summaries, [s.path for s in summaries], timeout)
        self.n_skipped = sum(s.n_skipped for s in summaries)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return []

    @property
    def polar(self):
        raise SketchSearchError("image search at any rotation reads every photo's rotation descriptor: search the "
                                "manifest without --cluster for it")

    def worker_pids(self) -> list[int]:
        """Process id of each shard's worker (tests)."""
        return [s.pid for s in self.shards.summaries]
