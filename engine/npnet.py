"""EfficientNet-Lite feature maps in numpy, from weights cached by the torch network (METHOD.md section 7).

A query's global descriptor needs one forward pass of the backbone (one 224 px drawing for a sketch);
running it in numpy spares the query path the import of torch, which alone takes seconds.  The network
is the one of :mod:`engine.torchnet` with its batch norms folded, computed the same way in float32,
channels last: 1x1 convolutions are matrix products, depthwise ``k x k`` convolutions a sum of ``k^2``
shifted slices, every convolution padded as TensorFlow's ``"SAME"`` (``efficientnet_lite_pytorch``'s
``Conv2dDynamicSamePadding``: ``pad = max((ceil(i / s) - 1) s + k - i, 0)``, the smaller half first),
ReLU6 after every convolution but the projections, identity skips where the blocks have them.

Weights are never downloaded: the torch side writes them (``engine.cnn.get_backbone``, the first time it
builds the network: at indexing or at the first query) into the user's cache folder,
``$XDG_CACHE_HOME/sketchsearch`` or ``~/.cache/sketchsearch``, under a name keyed by the weights
package's version and a hash of the weights file; where that file is absent the torch network is used.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import logging
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .atomic import atomic_write

log = logging.getLogger(__name__)

__all__ = ["FORMAT", "EfficientNetLite", "blas_threads", "cache_dir", "cached_weights_path", "gem", "load", "save"]

#: version of the layout of the cached arrays (part of the file name: a new layout never reads an old file)
FORMAT = 1


def cache_dir() -> Path:
    """The user's cache folder of sketchsearch: ``$XDG_CACHE_HOME/sketchsearch`` or ``~/.cache/sketchsearch``."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "sketchsearch"


def cached_weights_path(name: str, source: str | os.PathLike, version: str) -> Path:
    """The cache file of the numpy weights of backbone ``name`` built from the weights file ``source`` of
    a package at ``version``: ``<cache_dir>/<name>-<version>-<hash>.npz``, the hash covering the format,
    the version, and the source file's path, size and modification time (a reinstall makes a new file)."""
    st = os.stat(source)
    key = f"{FORMAT}|{name}|{version}|{os.fspath(source)}|{st.st_size}|{st.st_mtime_ns}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return cache_dir() / f"{name}-{version}-{digest}.npz"


def save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` (``.npz``) atomically (``engine.atomic``), creating its folder."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def load(path: Path) -> EfficientNetLite | None:
    """The network of a weights file written by :func:`save`; None when it is absent, unreadable or damaged
    (logged, and a damaged file is removed: the caller falls back on torch, which writes it again)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return EfficientNetLite(arrays)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        log.warning("cannot use the cached network weights %s (%s); using torch", path, e)
        with contextlib.suppress(OSError):
            Path(path).unlink()
        return None


@functools.cache
def _openblas_local_threads():
    """OpenBLAS's ``openblas_set_num_threads_local`` (a per-thread limit; OpenBLAS >= 0.3.27) of the library
    numpy multiplies with, found among the process's mapped libraries (Linux); None where there is none."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            libs = sorted({line.split()[-1] for line in f if "openblas" in line.rsplit("/", 1)[-1].lower()})
    except OSError:
        return None
    for lib in libs:
        try:
            setter = ctypes.CDLL(lib).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
        return setter
    return None


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """numpy's matrix products in the calling thread use at most ``n`` threads (restored after); a no-op
    where the BLAS offers no per-thread limit.

    The network's products are small (a few MFLOP each): on two cores OpenBLAS's threads cost more than
    they give, and where other work competes for the cores (the app's other threads, other programs) its
    waiting threads make a forward pass 5 to 30 times slower.
    """
    setter = _openblas_local_threads()
    if setter is None:
        yield
        return
    old = setter(int(n))
    try:
        yield
    finally:
        setter(old)


def gem(x: np.ndarray, p: float = 3.0, eps: float = 1e-6) -> np.ndarray:
    """Generalised-mean pooling over the spatial dimensions of channels-last maps.

    Parameters
    ----------
    x : (h, w, K) float32 ndarray
        Non-negative activations (values below ``eps`` are clamped to ``eps``).
    p : float
        The exponent.
    eps : float
        Lower clamp.

    Returns
    -------
    (K,) float32 ndarray
        ``(mean over (h, w) of x ** p) ** (1 / p)``, as ``engine.torchnet.gem``.
    """
    if x.ndim != 3:
        raise ValueError(f"gem expects (h, w, K), got shape {x.shape}")
    powered = np.power(np.maximum(x, np.float32(eps)), np.float32(p))
    mean = powered.reshape(-1, x.shape[2]).mean(axis=0, dtype=np.float32)
    return np.power(mean, np.float32(1.0 / p)).astype(np.float32)


def _same_pad(size: int, k: int, stride: int) -> tuple[int, int, int]:
    """(output size, padding before, padding after) of TensorFlow's "SAME" padding along one axis."""
    out = -(-size // stride)
    pad = max((out - 1) * stride + k - size, 0)
    return out, pad // 2, pad - pad // 2


def _padded(x: np.ndarray, k: int, stride: int) -> tuple[np.ndarray, int, int]:
    """``x`` (H, W, C) zero-padded for a "SAME" k x k convolution of this stride, and the output (h, w)."""
    h, w, c = x.shape
    oh, top, bottom = _same_pad(h, k, stride)
    ow, left, right = _same_pad(w, k, stride)
    if top == bottom == left == right == 0:
        return x, oh, ow
    xp = np.zeros((h + top + bottom, w + left + right, c), np.float32)
    xp[top:top + h, left:left + w] = x
    return xp, oh, ow


def _taps(xp: np.ndarray, k: int, stride: int, oh: int, ow: int):
    """The ``k * k`` shifted, strided (oh, ow, C) views of a padded map, in (row, column) order."""
    for i in range(k):
        for j in range(k):
            yield i, j, xp[i:i + (oh - 1) * stride + 1:stride, j:j + (ow - 1) * stride + 1:stride]


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0, out=x)


def _pointwise(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1x1 convolution of (h, w, C_in) by (C_in, C_out) plus bias: one matrix product."""
    h, wd, c = x.shape
    y = x.reshape(h * wd, c) @ w
    y += b
    return y.reshape(h, wd, w.shape[1])


def _depthwise(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """Depthwise k x k convolution ("SAME") of (H, W, C) by (k, k, C) plus bias."""
    k = w.shape[0]
    xp, oh, ow = _padded(x, k, stride)
    out = np.empty((oh, ow, x.shape[2]), np.float32)
    tmp = np.empty_like(out)
    for i, j, view in _taps(xp, k, stride, oh, ow):
        if i == 0 and j == 0:
            np.multiply(view, w[0, 0], out=out)
        else:
            np.multiply(view, w[i, j], out=tmp)
            out += tmp
    out += b
    return out


class EfficientNetLite:
    """EfficientNet-Lite feature maps in numpy (channels last), from the arrays of
    ``engine.torchnet.numpy_weights``.

    Parameters
    ----------
    arrays : dict of str to ndarray
        ``input.mean``, ``input.scale``, ``stem.w`` / ``stem.b`` / ``stem.stride``, per block ``b<i>.``
        (``expand.w``, ``expand.b`` where it expands, ``dw.w``, ``dw.b``, ``stride``, ``project.w``,
        ``project.b``, ``skip``), ``head.w``, ``head.b``.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        def f32(key: str) -> np.ndarray:
            return np.ascontiguousarray(arrays[key], dtype=np.float32)

        self.mean = float(arrays["input.mean"])
        self.scale = float(arrays["input.scale"])
        self.stem_w, self.stem_b = f32("stem.w"), f32("stem.b")
        self.stem_stride = int(arrays["stem.stride"])
        self.stem_k = int(round((self.stem_w.shape[0] / 3) ** 0.5))
        if self.stem_k ** 2 * 3 != self.stem_w.shape[0]:
            raise ValueError(f"stem weights {self.stem_w.shape} are not (k * k * 3, C)")
        self.blocks = []
        i = 0
        while f"b{i}.dw.w" in arrays:
            expand = (f32(f"b{i}.expand.w"), f32(f"b{i}.expand.b")) if f"b{i}.expand.w" in arrays else None
            self.blocks.append((expand, f32(f"b{i}.dw.w"), f32(f"b{i}.dw.b"), int(arrays[f"b{i}.stride"]),
                                f32(f"b{i}.project.w"), f32(f"b{i}.project.b"), bool(arrays[f"b{i}.skip"])))
            i += 1
        if not self.blocks:
            raise ValueError("no blocks in the network weights")
        self.head_w, self.head_b = f32("head.w"), f32("head.b")
        self.channels = self.head_w.shape[1]

    def features(self, image: np.ndarray) -> np.ndarray:
        """Feature maps of one image.

        Parameters
        ----------
        image : (H, W, 3) float32 ndarray
            RGB in [0, 1].

        Returns
        -------
        (h, w, K) float32 ndarray
            The last activations (after the head's ReLU6), ``h = ceil(H / 32)``.
        """
        x = np.asarray(image, np.float32)
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) image, got shape {x.shape}")
        with blas_threads(1):
            return self._features(x)

    def _features(self, x: np.ndarray) -> np.ndarray:
        x = (x - np.float32(self.mean)) * np.float32(self.scale)
        k, s = self.stem_k, self.stem_stride
        xp, oh, ow = _padded(x, k, s)
        patches = np.concatenate([v for _, _, v in _taps(xp, k, s, oh, ow)], axis=2)  # (oh, ow, k * k * 3)
        x = _relu6(_pointwise(patches, self.stem_w, self.stem_b))
        for expand, dw_w, dw_b, stride, proj_w, proj_b, skip in self.blocks:
            inputs = x
            if expand is not None:
                x = _relu6(_pointwise(x, *expand))
            x = _relu6(_depthwise(x, dw_w, dw_b, stride))
            x = _pointwise(x, proj_w, proj_b)
            if skip:
                x += inputs
        return _relu6(_pointwise(x, self.head_w, self.head_b))
