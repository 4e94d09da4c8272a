"""Fixtures of the whole suite."""
import pytest


@pytest.fixture(scope="session", autouse=True)
def _user_cache_in_tmp(tmp_path_factory):
    """Point ``XDG_CACHE_HOME`` (the cached network weights of ``engine.npnet``) at a temporary folder, so
    that no test writes in the user's home (subprocesses inherit it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield
