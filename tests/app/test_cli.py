"""The command line contract: index, search --json fields, info, and one-line errors."""
import json
import shutil

import cv2
import numpy as np
import pytest

from app.cli import main
from tests.engine.synth import photo_with_shape, sketch_of


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-photos")
    cv2.imwrite(str(root / "house.jpg"), photo_with_shape("house", (40, 60, 380, 460), seed=1)[..., ::-1])
    cv2.imwrite(str(root / "star.png"), photo_with_shape("star", (100, 30, 500, 430), seed=2)[..., ::-1])
    (root / "sub").mkdir()
    cv2.imwrite(str(root / "sub" / "ell.webp"), photo_with_shape("ell", (200, 40, 580, 440), seed=3)[..., ::-1])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def db(photos, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-db") / "index"
    assert main(["index", str(photos), "--db", str(path), "--workers", "1", "-q"]) == 0
    return path


def test_search_json_contract(db, tmp_path, capsys):
    sketch = tmp_path / "s.png"
    cv2.imwrite(str(sketch), sketch_of("star"))
    capsys.readouterr()
    assert main(["search", "--db", str(db), "--sketch", str(sketch), "--top", "2", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    hits = [json.loads(line) for line in lines]
    assert set(hits[0]) >= {"rank", "path", "score", "box", "scale", "mirrored"}
    assert hits[0]["rank"] == 1 and hits[0]["path"].endswith("star.png")
    assert len(hits[0]["box"]) == 4 and 0.6 <= hits[0]["scale"] <= 1.0  # the soft placement's scale
    assert isinstance(hits[0]["mirrored"], bool) and hits[0]["score"] >= hits[1]["score"]


def test_search_table_and_modes(db, tmp_path, capsys):
    sketch = tmp_path / "s.png"
    cv2.imwrite(str(sketch), sketch_of("ell"))
    for extra in ([], ["--mode", "exhaustive"], ["--order", "sum", "--binary", "--no-mirror"]):
        assert main(["search", "--db", str(db), "--sketch", str(sketch), *extra]) == 0
        out = capsys.readouterr().out
        assert "ell.webp" in out.splitlines()[2]


def test_info_lists_skipped_files(db, capsys):
    assert main(["info", "--db", str(db), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 3 and info["descriptor_dim"] == 243 and info["bytes_per_image"] <= 300
    assert [s["path"].rsplit("/", 1)[-1] for s in info["skipped_files"]] == ["empty.jpg"]
    assert main(["info", "--db", str(db)]) == 0
    assert "skipped" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["search", "--db", "{tmp}/missing", "--sketch", "{tmp}/s.png"], "no such index"),
    (["search", "--db", "{db}", "--sketch", "{tmp}/nothing.png"], "nothing.png"),
    (["search", "--db", "{db}", "--sketch", "{tmp}/blank.png"], "empty"),
    (["search", "--db", "{empty}", "--sketch", "{tmp}/s.png"], "index is empty"),
    (["index", "{tmp}/no-folder", "--db", "{tmp}/x", "-q"], "no-folder"),
    (["info", "--db", "{tmp}"], "not a sketchsearch index"),
    (["index", "{tmp}", "--db", "{tmp}/s.png", "-q"], "is not a folder"),
    (["search", "--db", "{damaged}", "--sketch", "{tmp}/s.png"], "damaged"),
    (["gui", "--index", "{tmp}/no-folder"], "--index"),  # before a window offers to index what is not there
    (["gui", "--index", "{tmp}/s.png"], "is not a folder"),
])
def test_errors_are_one_line(db, tmp_path, capsys, argv, message):
    cv2.imwrite(str(tmp_path / "s.png"), sketch_of("house"))
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((40, 40), 255, np.uint8))
    (tmp_path / "nophotos").mkdir()
    main(["index", str(tmp_path / "nophotos"), "--db", str(tmp_path / "emptydb"), "-q"])
    capsys.readouterr()
    damaged = tmp_path / "damaged"
    shutil.copytree(db, damaged)
    for f in damaged.glob("chunk-*.codes.npy"):  # every chunk (a run may commit its photos in several)
        f.write_bytes(b"\x93NUMPY truncated")
    fill = {"tmp": str(tmp_path), "db": str(db), "empty": str(tmp_path / "emptydb"), "damaged": str(damaged)}
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()  # the error, after any warnings (a damaged part left out), each one line
    assert lines[-1].startswith("sketchsearch: error:") and message in err, err
    assert all(line.startswith(("sketchsearch: warning:", "sketchsearch: error:")) for line in lines), err


@pytest.mark.parametrize("argv, name", [
    (["index", "", "--db", "{tmp}/x", "-q"], "DIR"),  # an unset shell variable: not the working folder
    (["index", "{tmp}", "--db", "", "-q"], "--db"),
    (["search", "--db", " ", "--sketch", "{tmp}/s.png"], "--db"),
    (["search", "--db", "{tmp}/x", "--sketch", ""], "--sketch"),
    (["info", "--db", ""], "--db"),
])
def test_an_empty_path_is_a_one_line_error_naming_the_option(tmp_path, capsys, monkeypatch, argv, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.jpg").write_bytes(b"")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as e:
        main([a.format(tmp=tmp_path) for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sketchsearch: error:") and f"argument {name}: expected a path" in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written in the working folder


def test_sketch_list_gives_the_results_of_separate_queries(db, tmp_path, capsys):
    (tmp_path / "sk").mkdir()
    names = []
    for shape in ("star", "house", "ell"):
        cv2.imwrite(str(tmp_path / "sk" / f"{shape}.png"), sketch_of(shape, seed=3))
        names.append(f"sk/{shape}.png")
    lst = tmp_path / "queries.txt"
    lst.write_text("# three sketches\n" + "\n".join(names) + "\n\n")
    capsys.readouterr()
    assert main(["search", "--db", str(db), "--sketch-list", str(lst), "--top", "3", "--json"]) == 0
    batch = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    separate = []
    for name in names:
        assert main(["search", "--db", str(db), "--sketch", str(tmp_path / name), "--top", "3", "--json"]) == 0
        separate += [{"query": name, **json.loads(line)} for line in capsys.readouterr().out.splitlines()]
    assert batch == separate and len(batch) == 9
    assert main(["search", "--db", str(db), "--sketch-list", str(lst), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("query sk/") == 3 and "star.png" in out


def test_sketch_list_reports_a_bad_line_and_goes_on(db, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "star.png"), sketch_of("star"))
    lst = tmp_path / "q.txt"
    lst.write_text(f"missing.png\n{tmp_path / 'star.png'}\n")
    capsys.readouterr()
    assert main(["search", "--db", str(db), "--sketch-list", str(lst), "--top", "1", "--json"]) == 2
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert lines[0]["query"] == "missing.png" and "missing.png" in lines[0]["error"]
    assert lines[1]["query"].endswith("star.png") and lines[1]["path"].endswith("star.png")
    assert "1 of 2 sketches" in captured.err
    assert main(["search", "--db", str(db), "--sketch-list", str(tmp_path / "nope.txt")]) == 2
    assert "nope.txt" in capsys.readouterr().err


def _one_photo_index(tmp_path, sql: str):
    """An index of one photo (``--backbone none``: quick), then ``sql`` run on its catalog: (db, the index argv)."""
    import sqlite3

    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "star.jpg"), photo_with_shape("star", (100, 30, 500, 430), seed=2))
    db = tmp_path / "db"
    argv = ["index", str(tmp_path / "photos"), "--db", str(db), "--workers", "1", "-q", "--backbone", "none"]
    assert main(argv) == 0
    con = sqlite3.connect(db / "catalog.sqlite3")
    with con:
        con.execute(sql)
    con.close()
    return db, argv


def test_index_of_another_format_version_is_refused_then_rebuilt_with_rebuild(tmp_path, capsys):
    db, argv = _one_photo_index(tmp_path, "UPDATE meta SET value = '999' WHERE key = 'format_version'")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sketchsearch: error:") and "--rebuild" in err and "\n" not in err
    assert main([*argv, "--rebuild"]) == 0
    assert "1 photos" in capsys.readouterr().err
    assert main(["info", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 1


def test_index_of_an_older_index_describes_its_photos_again_once_and_says_so(tmp_path, capsys):
    """Photos indexed before the edge cells were kept (NULL) are described again by the next index run, which
    says why in one line; the run after keeps them."""
    _, argv = _one_photo_index(tmp_path, "UPDATE files SET cells = NULL")
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "1 photos in" in err and "1 described" in err
    assert "1 of them indexed by an earlier version were described again (once)" in err
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "0 described" in err and "1 kept" in err and "earlier version" not in err


def test_index_follows_links_out_of_the_folders_only_when_asked(tmp_path, capsys):
    photos, outside = tmp_path / "photos", tmp_path / "outside"
    photos.mkdir()
    outside.mkdir()
    cv2.imwrite(str(photos / "star.jpg"), photo_with_shape("star", (100, 30, 500, 430), seed=2))
    cv2.imwrite(str(outside / "house.jpg"), photo_with_shape("house", (40, 60, 380, 460), seed=1))
    (photos / "elsewhere").symlink_to(outside, target_is_directory=True)
    base = ["index", str(photos), "--workers", "1", "-q", "--backbone", "none"]
    for flag, n in (([], 1), (["--follow-links"], 2)):
        assert main([*base, "--db", str(tmp_path / f"db{n}"), *flag]) == 0
        assert main(["info", "--db", str(tmp_path / f"db{n}"), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["images"] == n


def test_a_region_searched_by_one_of_both_says_so_in_a_warning(db, tmp_path, capsys):
    """'both' on a region without edges ranks by its image alone: said on stderr, the JSON lines as usual."""
    flat = tmp_path / "flat.png"
    cv2.imwrite(str(flat), np.full((300, 400, 3), 128, np.uint8))
    capsys.readouterr()
    assert main(["search", "--db", str(db), "--image", str(flat), "--region", "10,10,200,200", "--top", "2",
                 "--json"]) == 0
    out = capsys.readouterr()
    assert len(out.out.strip().splitlines()) == 2
    assert out.err.startswith("sketchsearch: warning: the region has no edges") and \
        out.err.strip().endswith("searched by the region's image alone") and out.err.count("\n") == 1



def test_a_region_left_of_the_photo_can_be_typed_and_timeout_without_a_cluster_is_said_to_be_ignored(db, photos,
                                                                                                       capsys):
    """``--region -5,-5,200,200`` was "expected one argument" (argparse took the value for an option); ``--timeout``
    without ``--cluster`` did nothing, silently."""
    house = str(photos / "house.jpg")
    capsys.readouterr()
    assert main(["search", "--db", str(db), "--image", house, "--region", "-5,-5,200,200", "--as", "image",
                 "--top", "1", "--json"]) == 0
    typed = capsys.readouterr()
    assert main(["search", "--db", str(db), "--image", house, "--region=-5,-5,200,200", "--as", "image",
                 "--top", "1", "--json"]) == 0
    assert capsys.readouterr().out == typed.out and len(typed.out.splitlines()) == 1
    assert main(["search", "--db", str(db), "--image", house, "--top", "1", "--timeout", "5"]) == 0
    err = capsys.readouterr().err
    assert err.strip() == "sketchsearch: warning: --timeout is ignored here: it bounds the wait for the shards of " \
                          "a search on a cluster (--cluster)"


def test_search_region_json_contract(db, photos, capsys):
    """--image with --region: the contract's fields; a shape region's hits have boxes inside the photos."""
    house = photos / "house.jpg"
    for mode in ("both", "shape", "image"):
        capsys.readouterr()
        assert main(["search", "--db", str(db), "--image", str(house), "--region", "40,60,380,460", "--as", mode,
                     "--top", "3", "--json"]) == 0
        hits = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
        assert 1 <= len(hits) <= 3 and [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
        assert set(hits[0]) >= {"rank", "path", "score", "box", "scale", "mirrored"}
        assert any(h["path"].endswith("house.jpg") for h in hits)
        # the shape's hits say whether their box is sure; an image ranking has no box of its own to be sure of
        assert all(("box_sure" in h) == ("raw_score" in h) for h in hits)
        assert mode == "image" or any("box_sure" in h for h in hits)


@pytest.mark.parametrize("args, words", [
    (["--region", "1,2,3"], "not four numbers"),
    (["--region", "10,10,10,50"], "no area"),
    (["--region", "5000,5000,6000,6000"], "outside the photo"),
    (["--region", "1,2,3,4", "--rotation", "any"], "--rotation any"),
    (["--after", "2020-13-01"], "--after '2020-13-01' is not a date"),
    (["--after", "2021-01-01", "--before", "2020-01-01"], "date range is empty"),
    (["--under", "/no/such/folder"], "no such folder"),
    (["--as", "shape"], "--as needs --region"),
])
def test_bad_region_and_filter_options_are_one_line_errors(db, photos, args, words, capsys):
    capsys.readouterr()
    assert main(["search", "--db", str(db), "--image", str(photos / "house.jpg"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_region_needs_an_image(db, tmp_path, capsys):
    sketch = tmp_path / "s.png"
    cv2.imwrite(str(sketch), sketch_of("star"))
    assert main(["search", "--db", str(db), "--sketch", str(sketch), "--region", "1,2,3,4"]) == 2
    assert "--region needs --image" in capsys.readouterr().err


def test_search_filters_narrow_before_the_cut(db, photos, tmp_path, capsys):
    sketch = tmp_path / "s.png"
    cv2.imwrite(str(sketch), sketch_of("star"))
    capsys.readouterr()
    assert main(["search", "--db", str(db), "--sketch", str(sketch), "--under", str(photos / "sub"), "--top", "1",
                 "--json"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [h["path"].rsplit("/", 1)[1] for h in hits] == ["ell.webp"]  # the one photo there, though not a star
    assert main(["search", "--db", str(db), "--image", str(photos / "star.png"), "--min-side", "100000",
                 "--json"]) == 0
    assert capsys.readouterr().out.strip() == ""
    assert main(["search", "--db", str(db), "--sketch", str(sketch), "--after", "2000-01-01", "--before",
                 "2100-01-01", "--json"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_the_table_says_which_ranks_are_likely_matches_or_why_none_is():
    from app.cli import _likely_line
    from engine.fusion import load_params
    from engine.hits import Hit

    cut = load_params().likely

    def hits(*said):
        return [Hit(i + 1, f"p{i}.jpg", score, (0, 0, 1, 1), 1.0, False, i, 0.5, likely=likely)
                for i, (score, likely) in enumerate(said)]

    assert _likely_line(hits((0.6, True), (0.6, True), (0.1, False), (0.5, True))) == "likely matches: ranks 1-2, 4"
    assert _likely_line(hits((0.1, False), (0.6, True))) == "likely matches: rank 2"
    assert "look-alikes" in _likely_line(hits((0.6, False), (0.1, False)))  # the stand-out test said no
    assert _likely_line(hits((cut / 2, False))) == f"no likely matches: no photo scores >= {cut:.2f}"


def test_gui_passes_qt_options_to_qt_and_other_commands_refuse_unknown_ones(monkeypatch, tmp_path, capsys):
    import app.main

    seen = {}
    monkeypatch.setattr(app.main, "display_problem", lambda: None)
    monkeypatch.setattr(app.main, "make_app", lambda argv=None: seen.setdefault("argv", argv) and None)

    class Stop(Exception):
        pass

    def window(db=None, **_):
        seen["db"] = db
        raise Stop  # the window itself is not what this checks (main reports it as an error)

    import app.mainwindow

    monkeypatch.setattr(app.mainwindow, "MainWindow", window)
    main(["gui", "--db", str(tmp_path / "c"), "-style", "fusion", "-reverse"])  # stops at the window
    assert seen["argv"][1:] == ["-style", "fusion", "-reverse"] and seen["db"] == tmp_path / "c"
    seen.clear()
    main(["gui"])
    assert seen["argv"] is None  # no options: Qt gets the program name alone
    for argv in (["gui", "--dbb", "x"], ["gui", "-style", "fusion", "--typo"], ["info", "--db", "x", "-style", "y"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
