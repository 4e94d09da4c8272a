"""Loading images from disk into one array layout: (H, W, 3) float32 RGB in [0, 1].

Every failure to read a file becomes an :class:`ImageError` that names the file and says why in one
line, so that callers (indexer, app) can report and skip it.
"""
from __future__ import annotations

import os
import stat
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
    "SKETCH_HEADROOM",
    "load_image",
    "load_sketch",
    "to_rgb",
]

#: File name extensions (lower case, with the dot) of the formats the engine reads.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

#: Images with more pixels than this are refused (decompression-bomb guard).
DEFAULT_MAX_PIXELS = 200_000_000

# Pillow keeps its decompression-bomb limit in a module global; it is swapped only while a file's
# header is parsed, under this lock, and always restored.
_PIL_LIMIT_LOCK = threading.Lock()

#: A large sketch is decoded with its longer side reduced to no less than this many times the working size.
SKETCH_HEADROOM = 4

_STRIP_BYTES = 16 << 20  # rows of a large sketch reduced at a time

_ORIENTATION_TAG = 0x0112
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the image by 90 degrees
_EXIF_IFD = 0x8769
_DATE_TIME_ORIGINAL = 0x9003


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
    taken : float or None
        When the photo was taken (EXIF DateTimeOriginal, local time, seconds since the epoch); None when the
        file does not say.
    """

    pixels: np.ndarray
    original_size: tuple[int, int]
    taken: float | None = None


def exif_taken(exif) -> float | None:
    """EXIF DateTimeOriginal (``YYYY:MM:DD HH:MM:SS``, local time) of a PIL ``Image.Exif`` -> seconds since the
    epoch; None where it is absent or not a date."""
    import datetime

    try:
        text = exif.get_ifd(_EXIF_IFD).get(_DATE_TIME_ORIGINAL)
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        return datetime.datetime.strptime(str(text).strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S").timestamp()
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError, OSError):
        return None


def image_size(path) -> tuple[int, int]:
    """(width, height) of an image file after EXIF orientation, from its header; ImageError where unreadable."""
    return _decode(path, None, lambda im, orientation: None).original_size


def read_taken(path) -> float | None:
    """When a photo was taken (EXIF DateTimeOriginal) read from its header only; None where it does not say
    or the file cannot be read."""
    try:
        with Image.open(os.fspath(path)) as im:
            return exif_taken(im.getexif())
    except Exception:  # noqa: BLE001 -- an unreadable file has no date; the caller falls back to its time
        return None


def _scale_integers(a: np.ndarray) -> np.ndarray:
    """Integer samples -> float32 in [0, 1] (uint8: /255, uint16: /65535, wider ints: by their range).  One
    division that converts as it goes: ``astype`` then ``/`` gives the same values 15 times slower."""
    if a.dtype == np.uint8:
        return np.divide(a, np.float32(255.0), dtype=np.float32)
    if a.dtype == np.uint16:
        return np.divide(a, np.float32(65535.0), dtype=np.float32)
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
        f = a.astype(np.float32)  # a new array
        # Samples already in [0, 1] (the pixels of a LoadedImage, which came from integers): nan_to_num and clip
        # would change nothing, and the two passes over the image cost 10 times the test (NaN fails it).
        if not (f.min() >= 0.0 and f.max() <= 1.0):
            f = np.clip(np.nan_to_num(f, nan=0.0), 0.0, 1.0)
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


def _convertible(im: Image.Image) -> Image.Image:
    """A Pillow image of any mode in one whose array ``to_rgb`` takes (after :func:`_finish`)."""
    mode = im.mode
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA", "La", "RGBa"):
        return im.convert("RGBA")  # applies palette transparency
    if mode.startswith("I;16"):
        return im.convert("I")
    if mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...
    return im


def _finish(a: np.ndarray, mode: str) -> np.ndarray:
    """The array of a converted image of the file's ``mode`` -> samples ``to_rgb`` scales right."""
    if mode.startswith("I;16"):
        return np.clip(a, 0, 65535).astype(np.uint16)  # to_rgb scales by 65535
    if mode == "F":
        return _float_mode_to_unit(a)
    return a


def _to_array(im: Image.Image, factor: int) -> np.ndarray:
    """A Pillow image of any mode, box-reduced by ``factor`` -> an array ``to_rgb`` accepts."""
    mode = im.mode
    im = _convertible(im)
    if factor > 1:
        im = im.reduce(factor)
    return _finish(np.asarray(im), mode)


def _ink_block(a: np.ndarray, factor: int) -> np.ndarray:
    """(rows, W[, C]) samples -> (ceil(rows / f), ceil(W / f)[, C]): per f x f block the darkest sample of
    each colour channel and the most opaque alpha (the last channel of 2 or 4)."""
    a = a if a.ndim == 3 else a[:, :, None]
    pad_r, pad_c = -a.shape[0] % factor, -a.shape[1] % factor
    if pad_r or pad_c:  # a partial block at the edge: repeat its last row / column (min and max unchanged)
        a = np.pad(a, ((0, pad_r), (0, pad_c), (0, 0)), mode="edge")
    blocks = a.reshape(a.shape[0] // factor, factor, a.shape[1] // factor, factor, a.shape[2])
    out = blocks.min(axis=(1, 3))
    if a.shape[2] in (2, 4):
        out[:, :, -1] = blocks[:, :, :, :, -1].max(axis=(1, 3))
    return out


def _ink_reduce(im: Image.Image, factor: int) -> np.ndarray:
    """A decoded Pillow image -> its array reduced by ``factor`` keeping every stroke (:func:`_ink_block`),
    converted a strip of rows at a time: no full-size copy is made besides Pillow's own decode."""
    width, height = im.size
    rows = max(1, _STRIP_BYTES // max(1, width * 4 * factor)) * factor
    strips = [_ink_block(np.asarray(_convertible(im.crop((0, r0, width, min(height, r0 + rows))))), factor)
              for r0 in range(0, height, rows)]
    out = np.concatenate(strips, axis=0)
    return _finish(out if out.shape[2] > 1 else out[:, :, 0], im.mode)


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """An array turned as ``ImageOps.exif_transpose`` turns an image of this EXIF orientation."""
    turned = {
        2: lambda x: x[:, ::-1],  # FLIP_LEFT_RIGHT
        3: lambda x: x[::-1, ::-1],  # ROTATE_180
        4: lambda x: x[::-1],  # FLIP_TOP_BOTTOM
        5: lambda x: x.swapaxes(0, 1),  # TRANSPOSE
        6: lambda x: np.rot90(x, -1),  # ROTATE_270 (counter-clockwise): a quarter turn clockwise
        7: lambda x: x.swapaxes(0, 1)[::-1, ::-1],  # TRANSVERSE
        8: lambda x: np.rot90(x, 1),  # ROTATE_90
    }.get(orientation)
    return a if turned is None else np.ascontiguousarray(turned(a))


def _reduce_factor(size: tuple[int, int], max_side: int | None) -> int:
    """Largest integer box-reduction factor that keeps the longer side >= max_side."""
    if max_side is None:
        return 1
    return max(1, max(size) // max(1, int(max_side)))


def _decode(path, max_pixels: int | None, body) -> LoadedImage:
    """``body(im, orientation)`` -> pixels, on the opened file, with every failure an ImageError."""
    path = os.fspath(path)
    try:
        if os.path.isdir(path):
            raise ImageError(path, "is a directory, not an image file")
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO or a device: its size says nothing (and it may never end)
            raise ImageError(path, "not a regular file")
        if st.st_size == 0:
            raise ImageError(path, "empty file (0 bytes)")
        with _open(path, max_pixels) as im:
            exif = im.getexif()
            orientation = exif.get(_ORIENTATION_TAG, 1)
            taken = exif_taken(exif)
            width, height = im.size
            if orientation in _SWAPPING_ORIENTATIONS:
                width, height = height, width
            pixels = body(im, orientation)
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
        detail = str(e) or type(e).__name__  # the decoder's words, without its exception's name
        raise ImageError(path, f"cannot decode the image, truncated or corrupt ({detail})") from e
    return LoadedImage(pixels=pixels, original_size=(int(width), int(height)), taken=taken)


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
    def body(im: Image.Image, orientation: int) -> np.ndarray:
        if max_side is not None and im.format == "JPEG":
            _draft(im, max_side)
        im.load()
        im = ImageOps.exif_transpose(im) or im
        return to_rgb(_to_array(im, _reduce_factor(im.size, max_side)))

    return _decode(path, max_pixels, body)


def load_sketch(path, *, max_side: int, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read a sketch file at a few times its working size, keeping every stroke.

    A sketch is searched at ``max_side`` px (the longer side of its strokes' box, ``edges.sketch_edges``);
    decoding a 12000 x 9000 drawing to full-size float arrays took 30 s and 5.7 GB.  Here a sketch whose
    longer side exceeds ``2 * SKETCH_HEADROOM * max_side`` is reduced by an integer factor (its longer
    side stays at least ``SKETCH_HEADROOM * max_side``, so a drawing that fills a quarter of the canvas
    keeps its working resolution) taking the darkest colour and the most opaque alpha of each block: a
    one-pixel stroke survives any factor (a box average would fade it into the paper).  The reduction
    runs a strip of rows at a time on Pillow's decoded image (1 to 4 bytes per pixel): no full-size copy.
    Smaller sketches are read exactly as :func:`load_image` reads them.

    Parameters
    ----------
    path : str or os.PathLike
        An image file, as for :func:`load_image`.
    max_side : int
        The sketch's working size (``SketchSettings.max_side``).
    max_pixels : int or None
        As for :func:`load_image`.

    Returns
    -------
    LoadedImage
        ``pixels`` (H, W, 3) float32 RGB in [0, 1], the right way up, possibly reduced; ``original_size``
        of the full image.

    Raises
    ------
    ImageError
        As :func:`load_image`.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")

    def body(im: Image.Image, orientation: int) -> np.ndarray:
        im.load()
        factor = _reduce_factor(im.size, SKETCH_HEADROOM * max_side)
        if factor == 1:
            return to_rgb(_to_array(ImageOps.exif_transpose(im) or im, 1))
        return to_rgb(_orient(_ink_reduce(im, factor), orientation))

    return _decode(path, max_pixels, body)


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
