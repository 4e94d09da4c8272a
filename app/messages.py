"""What the app says about the engine's errors: the message, and its hint in words (the command line says the same
hint as a command: ``app.cli.hint_command``)."""
from __future__ import annotations

from engine.errors import Hint

_WORDS = {
    "build": "index a folder of photos into it (File → Index a Photo Folder)",
    "build-sharded": "a sharded collection is made with the command line; or index the folder into a collection "
                     "here (File → Index a Photo Folder)",
    "repair": "index its photo folder again (File → Index a Photo Folder): only what is missing is described again",
    "rebuild": "index its photos again into a new collection (File → Index a Photo Folder)",
    "other-folder": "choose another folder for the collection",
    "image-descriptors": "index its photos again into a new collection to search by image",
    "other-settings": "its photos were described another way: index this folder into a collection of its own",
}


def hint_words(hint: Hint) -> str:
    """What a person can do, in the app's words."""
    return _WORDS[hint.action]


def damage_words(collection) -> str | None:
    """What the app says when parts of a collection it opened are damaged and left out of searches (the engine's
    ``DamagedIndexWarning``, which reaches no person in a window), or None."""
    views = getattr(collection, "indexes", None) or [collection]
    damaged = [v for v in views if getattr(v, "damaged", None)]
    if not damaged:
        return None
    n = sum(v.n_damaged for v in damaged)
    where = ", ".join(str(v.path) for v in damaged[:2]) + (" …" if len(damaged) > 2 else "")
    return (f"{where}: {n} photos are left out of searches (damaged descriptor files); "
            f"{hint_words(Hint('repair', str(damaged[0].path)))}")


def error_words(e: BaseException) -> str:
    """An error as the app shows it: its message and, where the engine gives one, its hint in words."""
    hint = getattr(e, "hint", None)
    return f"{e}; {hint_words(hint)}" if hint is not None else str(e)
