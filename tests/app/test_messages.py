"""Engine errors carry their hint as data: the command line says it as a command with flags, the app in words."""
import pickle
import sqlite3

import pytest

from app.cli import error_text, hint_command
from app.messages import error_words, hint_words
from engine.errors import HINT_ACTIONS, Hint, IndexFormatError, IndexNotFound, QueryError
from engine.settings import FORMAT_VERSION


@pytest.mark.parametrize("action", sorted(HINT_ACTIONS))
def test_every_hint_has_a_command_and_words(action):
    hint = Hint(action, "/photos/db")
    assert "--" in hint_command(hint) or action == "other-folder" and "--db" in hint_command(hint)
    assert "--" not in hint_words(hint) and "sketchsearch " not in hint_words(hint)


def test_an_unknown_hint_is_refused():
    with pytest.raises(ValueError, match="unknown hint"):
        Hint("delete-everything")


def test_the_hint_crosses_processes():
    e = pickle.loads(pickle.dumps(QueryError("x: no image descriptors", hint=Hint("image-descriptors", "x"))))
    assert type(e) is QueryError and str(e) == "x: no image descriptors" and e.hint == Hint("image-descriptors", "x")


def test_an_old_index_says_rebuild_as_a_command_and_in_words(tmp_path):
    import cv2

    from engine.collection import SketchIndex
    from engine.indexer import index_folders
    from tests.engine.synth import photo_with_shape

    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), photo_with_shape("star", (100, 100, 300, 300)))
    db = tmp_path / "db"
    index_folders([folder], db, workers=1, backbone="none")
    with sqlite3.connect(db / "catalog.sqlite3") as con:
        con.execute("UPDATE meta SET value = '0' WHERE key = 'format_version'")
    with pytest.raises(IndexFormatError) as e:
        SketchIndex(db)
    assert error_text(e.value) == f"{db}: index format 0 but this sketchsearch reads format {FORMAT_VERSION}; " \
                                  f"rebuild with: " \
                                  f"sketchsearch index FOLDER --db {db} --rebuild"
    words = error_words(e.value)
    assert words.startswith(f"{db}: index format 0") and "--" not in words and "File → Index a Photo Folder" in words


def test_a_missing_index_says_how_to_build_one(tmp_path):
    from engine.collection import SketchIndex

    with pytest.raises(IndexNotFound) as e:
        SketchIndex(tmp_path / "none")
    assert error_text(e.value).endswith(f"build one with: sketchsearch index FOLDER --db {tmp_path / 'none'}")
    assert "--db" not in error_words(e.value)


def test_a_missing_manifest_and_an_index_among_the_photos_say_what_to_do(tmp_path):
    from engine.indexer import index_folders
    from engine.shards import Manifest

    with pytest.raises(IndexNotFound) as e:
        Manifest.load(tmp_path / "c.json")
    assert e.value.hint == Hint("build-sharded", str(tmp_path / "c.json"))
    assert error_text(e.value).endswith("--shards N (or --cluster ADDRESS)") and "--" not in error_words(e.value)
    (tmp_path / "photos").mkdir()
    with pytest.raises(IndexNotFound, match="folder of its own") as e:
        index_folders([tmp_path / "photos"], tmp_path / "photos" / "db")
    assert e.value.hint == Hint("other-folder", str(tmp_path / "photos" / "db"))
    assert error_text(e.value).endswith("; choose another --db")
