"""Typed errors of the engine; the command line and the app decide how to show them.

An error's message says what is wrong and names the thing; what a person can do about it is its ``hint``, as data
(:class:`Hint`): the command line says it as a command with its flags (``app.cli.hint_command``), the app in words
(``app.messages.hint_words``).  The engine knows neither.
"""
from __future__ import annotations

from dataclasses import dataclass

#: what a hint can ask of a person
HINT_ACTIONS = frozenset({
    "build",  # no index here yet: index a folder of photos into it
    "build-sharded",  # no manifest here yet: index a folder of photos into a sharded collection
    "repair",  # part of the index is missing or damaged: index its folder again (only that part is redone)
    "rebuild",  # the index cannot be read or is of another format: index the photos again from scratch
    "other-folder",  # the folder is not the index's own: choose another folder for the index
    "image-descriptors",  # the index has no image descriptors: index again with them to search by image
    "other-settings",  # the index was built with other settings (``option`` = ``value``): use those, or another
})


@dataclass(frozen=True)
class Hint:
    """What a person can do about an error: one of :data:`HINT_ACTIONS` on the index ``db``."""

    action: str
    db: str = ""
    option: str = ""  # "other-settings": the setting that differs ("edges", "backbone", "" for several)
    value: str = ""  # ... and the index's value of it

    def __post_init__(self) -> None:
        if self.action not in HINT_ACTIONS:
            raise ValueError(f"unknown hint {self.action!r}")


class SketchSearchError(Exception):
    """Base class of every error the engine raises on purpose (one-line message, no traceback needed).

    ``hint``: what a person can do about it (:class:`Hint`), or None.
    """

    def __init__(self, *args, hint: Hint | None = None) -> None:
        super().__init__(*args)
        self.hint = hint

    def __reduce__(self):  # the hint crosses processes too (a cluster's workers)
        return _rebuild_error, (type(self), self.args, self.hint)


def _rebuild_error(cls, args, hint):
    return cls(*args, hint=hint)


class IndexNotFound(SketchSearchError):
    """The index path does not exist or holds no sketchsearch index."""


class IndexFormatError(SketchSearchError):
    """The index was written by another format version or with other settings."""


class ImageIndexDamaged(IndexFormatError):
    """A file of the image index (the image and global sketch descriptors) is missing or damaged: the next index
    run rebuilds it (``hint``: repair); a sketch search meanwhile ranks by the shape alone."""


class IndexLocked(SketchSearchError):
    """Another process is writing the index."""


class QueryError(SketchSearchError):
    """The query (sketch or image) cannot be used."""


class DeviceError(SketchSearchError, ValueError):
    """A compute device that is unknown or not available here (``cuda`` without CUDA...)."""


class Cancelled(SketchSearchError):
    """A long task was cancelled by its caller."""


class IndexWriteError(SketchSearchError):
    """The index could not be written (disk full, read-only folder, I/O error); what was committed before is
    kept and the next run goes on from there."""


class WorkerError(SketchSearchError):
    """A worker process could not get ready to describe photos (its describer failed to load)."""


class DamagedIndexWarning(UserWarning):
    """Part of an index is missing or damaged: it is left out (searches answer from the rest) until the next
    index run describes it again (``hint``: repair)."""

    def __init__(self, *args, hint: Hint | None = None) -> None:
        super().__init__(*args)
        self.hint = hint
