"""Returning the heap's free memory to the system (``app.memory.trim_heap``)."""
from __future__ import annotations

import ctypes
import sys

import pytest

from app import memory


def test_trim_heap_returns_a_bool_and_never_raises():
    ran = memory.trim_heap()
    assert isinstance(ran, bool)
    assert memory.trim_heap() is ran  # the same answer every time
    if sys.platform.startswith("linux") and memory._malloc_trim():
        assert ran  # glibc: it ran


@pytest.mark.parametrize("error", [OSError("no libc.so.6"), AttributeError("malloc_trim")])
def test_trim_heap_is_a_no_op_without_glibc(monkeypatch, error):
    def cdll(_name):
        if isinstance(error, AttributeError):  # musl: a libc without malloc_trim
            return object()
        raise error

    monkeypatch.setattr(memory, "_trim", None)
    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setattr(sys, "platform", "linux")
    assert memory.trim_heap() is False


def test_trim_heap_is_a_no_op_on_other_systems(monkeypatch):
    monkeypatch.setattr(memory, "_trim", None)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert memory.trim_heap() is False
