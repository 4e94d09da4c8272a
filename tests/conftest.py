"""Fixtures of the whole suite."""
import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one worker per core (pytest -n auto): each computes on one thread (torch, faiss, OpenBLAS; inherited by
    # the processes tests start), so the workers do not fight over the cores with spinning thread pools
    for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")


@pytest.fixture(scope="session", autouse=True)
def _user_cache_in_tmp(tmp_path_factory):
    """Point ``XDG_CACHE_HOME`` (the cached network weights of ``engine.npnet``) and ``XDG_DATA_HOME`` (the app's
    search history and collections) at temporary folders, so that no test writes in the user's home (subprocesses
    inherit them); and the benchmarks' cache
    (``$SKETCHSEARCH_BENCH_CACHE``) at one of this session, so that the slow tests index Sketchy and SYSU-Shapes
    once between them."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        mp.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))  # the app's history and collections
        mp.setenv("SKETCHSEARCH_BENCH_CACHE", str(tmp_path_factory.mktemp("bench-cache")))
        yield
