"""Loading images from disk into one array layout: (H, W, 3) float32 RGB in [0, 1].

Every failure to read a file becomes an :class:`ImageError` that names the file and says why in one
line, so that callers (indexer, app) can report and skip it.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import SketchSearchError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageError",
    "LoadedImage",
    "load_image",
    "to_rgb",
]

#: File name extensions (lower case, with the dot) of the formats the engine reads.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

#: Images with more pixels than this are refused (decompression-bomb guard).
DEFAULT_MAX_PIXELS = 200_000_000

# Pillow keeps its decompression-bomb limit in a module global; it is swapped only while a file's
# header is parsed, under this lock, and always restored.
_PIL_LIMIT_LOCK = threading.Lock()

_ORIENTATION_TAG = 0x0112
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the image by 90 degrees


class ImageError(SketchSearchError):
    """An image file could not be read (an ``Exception``, via the engine's ``SketchSearchError``).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    reason : str
        Why, in a few words (one line).
    """

    def __init__(self, path, reason: str):
        self.path = os.fspath(path)
        self.reason = " ".join(str(reason).split())  # one line
        super().__init__(f"{self.path}: {self.reason}")


@dataclass(frozen=True)
class LoadedImage:
    """An image as loaded.

    Attributes
    ----------
    pixels : (H, W, 3) float32 ndarray
        RGB in [0, 1], the right way up (EXIF orientation applied).  May be a reduced-size decode
        when ``load_image`` was given ``max_side``.
    original_size : tuple of int
        (width, height) of the full-size image after EXIF orientation.
    """

    pixels: np.ndarray
    original_size: tuple[int, int]


def _scale_integers(a: np.ndarray) -> np.ndarray:
    """Integer samples -> float32 in [0, 1] (uint8: /255, uint16: /65535, wider ints: by their range)."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    # Wider integers (e.g. Pillow's 32-bit 'I' mode): 8-bit data if it fits in 0..255, else 16-bit.
    hi = int(a.max()) if a.size else 0
    scale = 255.0 if hi <= 255 else 65535.0
    return np.clip(a.astype(np.float32) / scale, 0.0, 1.0)


def to_rgb(array) -> np.ndarray:
    """Convert an image array of any usual layout to RGB float32 in [0, 1].

    Parameters
    ----------
    array : array_like
        (H, W) or (H, W, 1) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA.
        dtype bool, uint8 (/255), uint16 (/65535), other integers (0..255 if the maximum is at most
        255, else 0..65535, e.g. Pillow's 32-bit 'I' mode), or float (taken as [0, 1]; clipped, NaN -> 0).
        Alpha is composited on white: a transparent background becomes white.

    Returns
    -------
    (H, W, 3) float32 ndarray
        RGB in [0, 1], C-contiguous, a new array.

    Raises
    ------
    ValueError
        For an unsupported shape or dtype.
    """
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"unsupported image array shape {a.shape}; expected (H, W) or (H, W, 1..4)")
    if a.dtype == bool:
        f = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        f = _scale_integers(a)
    elif np.issubdtype(a.dtype, np.floating):
        f = np.clip(np.nan_to_num(a.astype(np.float32), nan=0.0), 0.0, 1.0)
    else:
        raise ValueError(f"unsupported image dtype {a.dtype}")
    channels = f.shape[2]
    if channels in (2, 4):
        alpha = f[:, :, -1:]
        f = f[:, :, :-1] * alpha + (1.0 - alpha)  # composite on white
    if f.shape[2] == 1:
        f = np.repeat(f, 3, axis=2)
    return np.ascontiguousarray(f, dtype=np.float32)


def _open(path: str, max_pixels: int | None) -> Image.Image:
    """Image.open with our own pixel limit in place of Pillow's global one (header parse only)."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own check below replaces Pillow's for this one call
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        im.close()
        raise ImageError(path, f"image too large: {width}x{height} = {width * height} pixels exceeds "
                               f"the limit of {max_pixels} (decompression bomb limit)")
    return im


def _draft(im: Image.Image, max_side: int) -> None:
    """Ask the JPEG decoder for a DCT-scaled decode whose longer side is still >= max_side."""
    width, height = im.size
    longer = max(width, height)
    if longer <= max_side:
        return
    im.draft(None, (max(1, -(-width * max_side // longer)), max(1, -(-height * max_side // longer))))


def _float_mode_to_unit(a: np.ndarray) -> np.ndarray:
    """Pillow 'F' samples -> [0, 1]: kept if already there, else read as 8- or 16-bit values."""
    a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    hi = float(a.max()) if a.size else 0.0
    if hi > 1.0:
        a = a / (255.0 if hi <= 255.0 else 65535.0)
    return a


def _to_array(im: Image.Image, factor: int) -> np.ndarray:
    """A Pillow image of any mode, box-reduced by ``factor`` -> an array ``to_rgb`` accepts."""
    mode = im.mode
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA", "La", "RGBa"):
        im = im.convert("RGBA")  # applies palette transparency
    elif mode.startswith("I;16"):
        im = im.convert("I")
    elif mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...
    if factor > 1:
        im = im.reduce(factor)
    a = np.asarray(im)
    if mode.startswith("I;16"):
        return np.clip(a, 0, 65535).astype(np.uint16)  # to_rgb scales by 65535
    if mode == "F":
        return _float_mode_to_unit(a)
    return a


def _reduce_factor(size: tuple[int, int], max_side: int | None) -> int:
    """Largest integer box-reduction factor that keeps the longer side >= max_side."""
    if max_side is None:
        return 1
    return max(1, max(size) // max(1, int(max_side)))


def load_image(path, *, max_side: int | None = None,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image file as RGB float32, the right way up.

    Parameters
    ----------
    path : str or os.PathLike
        An image file (JPEG, PNG, WebP, BMP, TIFF, GIF, ...; only the first frame of animations and
        multi-page files is read).
    max_side : int, optional
        If given, the image may be returned at a reduced size (JPEG DCT-scaled decode or an
        integer box reduction) whose longer side is still at least ``max_side``; callers resize
        precisely themselves.  None: full size.
    max_pixels : int or None
        Refuse images with more pixels than this (decompression-bomb guard); None: no limit.

    Returns
    -------
    LoadedImage
        ``pixels`` (H, W, 3) float32 RGB in [0, 1] (alpha composited on white) and ``original_size``
        (width, height) of the full image after EXIF orientation.

    Raises
    ------
    ImageError
        For any failure: missing file, directory, no permission, empty, truncated or corrupt data,
        not an image, too many pixels.
    """
    path = os.fspath(path)
    try:
        if os.path.isdir(path):
            raise ImageError(path, "is a directory, not an image file")
        if os.path.getsize(path) == 0:
            raise ImageError(path, "empty file (0 bytes)")
        with _open(path, max_pixels) as im:
            orientation = im.getexif().get(_ORIENTATION_TAG, 1)
            width, height = im.size
            if orientation in _SWAPPING_ORIENTATIONS:
                width, height = height, width
            if max_side is not None and im.format == "JPEG":
                _draft(im, max_side)
            im.load()
            im = ImageOps.exif_transpose(im) or im
            pixels = to_rgb(_to_array(im, _reduce_factor(im.size, max_side)))
    except ImageError:
        raise
    except FileNotFoundError as e:
        raise ImageError(path, "file not found") from e
    except PermissionError as e:
        raise ImageError(path, "permission denied") from e
    except UnidentifiedImageError as e:
        raise ImageError(path, "not a recognised image format (or the file is corrupt)") from e
    except Image.DecompressionBombError as e:
        raise ImageError(path, f"image too large (decompression bomb limit): {e}") from e
    except MemoryError as e:
        raise ImageError(path, "not enough memory to decode the image") from e
    except Exception as e:  # noqa: BLE001 -- decoders raise many types; every one means "unreadable"
        raise ImageError(path, f"cannot decode image (truncated or corrupt?): {type(e).__name__}: {e}") from e
    return LoadedImage(pixels=pixels, original_size=(int(width), int(height)))


def network_input(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """A CNN's input for an image: uint8 RGB resized so its longer side is ``max_side`` (area averaging
    when shrinking) -- the one resize that indexed photos and query images both go through."""
    import cv2

    h, w = pixels.shape[:2]
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    out = cv2.resize(np.ascontiguousarray(pixels, np.float32), size,
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
