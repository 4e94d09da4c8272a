"""The ``sketchsearch`` command line.

``index``, ``search`` (with ``--json``: one object per line with rank, path, score, box, scale,
mirrored) and ``info`` are a contract that scripts rely on: extend them, never break them.  ``--db`` is an
index folder or the manifest (``.json``) of a sharded collection; ``--cluster`` runs it on Dask.

Failures: every expected one (bad input, a damaged or unwritable index, a full disk, not enough memory)
is one line ``sketchsearch: error: ...`` naming the thing, exit 2; bad options are argparse's error line,
exit 2.  Anything else is a bug: one line ``sketchsearch: error: internal error: ...``, exit 1; with
``SKETCHSEARCH_DEBUG=1`` it (and any error that is not the engine's own) shows its traceback.  Text output
escapes control characters in file names (:func:`printable`); JSON output keeps them exact.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import math
import os
import sqlite3
import stat
import sys
import time
import traceback
from pathlib import Path

from engine.errors import SketchSearchError

log = logging.getLogger("sketchsearch")


def _default_db() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "sketchsearch" / "index"


#: A sketch list larger than this is refused (it is a list of paths, not data).
SKETCH_LIST_MAX_BYTES = 16 << 20

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text) -> str:
    """``text`` (a str or path) with every non-printable character escaped, for text output.

    Control characters become ``\\n``, ``\\t``, ``\\x1b`` ...; other invisible ones (bidi overrides,
    zero-width marks) ``\\u202e`` ...; a byte of a file name that is not UTF-8 (a surrogate escape) its
    ``\\xff``.  A terminal escape in a file name cannot reach the terminal and a row stays one line.
    """
    text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # os.fsdecode's escape of an undecodable byte
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


#: the largest count or size an option takes (a 64-bit number reached SQLite as an OverflowError)
MAX_COUNT = 2**31 - 1


def _whole(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {'at least 1' if least else '0 or more'}, got {value}")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_COUNT:,}, got {value}")
    return value


def _path(text: str) -> Path:
    """A file or folder argument; an empty one is refused (``Path("")`` would be the working folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty one")
    return Path(text)


def _positive(text: str) -> int:
    return _whole(text, 1)


def _count(text: str) -> int:
    return _whole(text, 0)


class _Parser(argparse.ArgumentParser):
    """Bad options in one line, naming the command and its --help (argparse printed its usage block first)."""

    def error(self, message: str):
        self.exit(2, f"sketchsearch: error: {message} (see {self.prog} --help)\n")


def _seconds(text: str) -> float:
    """A finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def _similarity(text: str) -> float:
    """A similarity threshold in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in (0, 1] (a similarity), got {text!r}")
    return value


def _device(text: str) -> str:
    """A torch device this machine has (``cpu``, ``cuda``, ``cuda:1``, ``mps``, ``auto``), checked up front."""
    from engine.search import pick_device

    try:
        pick_device(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(printable(e)) from None
    return text


def _add_search_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=("fast", "exhaustive"), default="fast",
                   help="fast: 1-D projection shortlist then 2-D re-rank (default); exhaustive: 2-D on all")
    p.add_argument("--order", choices=("auto", "coarse", "sum", "discriminative"), default="auto",
                   help="shortlist of the fast mode: coarse 2-D grid, 1-D projections S_x + S_y, or the "
                        "discriminative projection first; auto (default): coarse up to 50,000 photos, sum above")
    p.add_argument("--shortlist", type=_positive, default=None, metavar="S",
                   help="images re-ranked in 2-D (default: max(1000, 2%% of the index))")
    p.add_argument("--binary", action="store_true", help="binarised polynomial to find each shift")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                   help="also try the mirrored sketch (default: as the benchmark chose, see README)")
    p.add_argument("--device", type=_device, default=None,
                   help="torch device (default: cuda when available, else cpu)")


def _search_options(args):
    from engine.fusion import load_params
    from engine.search import SearchOptions

    mirror = load_params().mirror if args.mirror is None else args.mirror
    return SearchOptions(mode=args.mode, order=args.order, shortlist=args.shortlist, binary=args.binary,
                         mirror=mirror, device=args.device)


def cmd_index(args) -> int:
    from tqdm import tqdm

    from engine.indexer import index_folders
    from engine.settings import SketchSettings

    settings = SketchSettings.preset(args.preset) if args.preset else None
    bar = tqdm(total=0, unit="img", desc="indexing", disable=args.quiet or None, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    t0 = time.perf_counter()
    cluster = None
    try:
        from engine.shards import index_sharded, is_manifest

        if args.cluster or args.shards or is_manifest(args.db):
            runner = None
            if args.cluster:
                from engine.cluster import DaskRunner, connect

                cluster = connect(args.cluster)
                runner = DaskRunner(cluster)
            summary = index_sharded(args.folders, args.db, runner=runner, n_shards=args.shards, settings=settings,
                                    backbone=args.backbone, edges=args.edges, device=args.device,
                                    workers=args.workers, prune=args.prune, progress=progress,
                                    rebuild=args.rebuild, follow_links=args.follow_links)
        else:
            summary = index_folders(args.folders, args.db, settings=settings, backbone=args.backbone,
                                    device=args.device, workers=args.workers, prune=args.prune, progress=progress,
                                    edges=args.edges, rebuild=args.rebuild, follow_links=args.follow_links)
    finally:
        bar.close()
        if cluster is not None:
            cluster.close()
    dt = time.perf_counter() - t0
    rate = summary.described / dt if dt > 0 else 0.0
    print(f"{summary.indexed} photos in {printable(args.db)}: {summary.described} described ({rate:.1f}/s), "
          f"{summary.reused} kept ({summary.moved} moved), {summary.removed} removed, "
          f"{len(summary.skipped)} skipped", file=sys.stderr)
    if summary.upgraded:
        print(f"  {summary.upgraded} of them indexed by an earlier version were described again (once), so that "
              f"their sketch hits' boxes follow their own edges", file=sys.stderr)
    if summary.missing:
        print(f"  {summary.missing} indexed photos under these folders no longer exist; they stay in the index "
              f"until you run again with --prune", file=sys.stderr)
    for path, reason in summary.skipped:
        print(f"  skipped {printable(path)}: {printable(reason)}", file=sys.stderr)
    return 0


def _query(index, args, *, sketch=None, image=None):
    """One query's hits and, with ``--rotation any``, the angles; a query error names the query's file."""
    from engine.errors import QueryError

    try:
        return _query_hits(index, args, sketch=sketch, image=image)
    except QueryError as e:
        name = os.fspath(sketch if image is None else image)
        if name not in str(e):
            raise QueryError(f"{name}: {e}", hint=e.hint) from None
        raise


def _photo_filter(args):
    """The ``--under/--after/--before/--min-side`` options as an ``engine.filters.PhotoFilter`` (None: none)."""
    from engine.errors import QueryError
    from engine.filters import PhotoFilter, parse_date

    under = getattr(args, "under", None)
    if under is not None and not Path(under).expanduser().is_dir():
        raise QueryError(f"--under {under}: no such folder")
    after = parse_date(args.after, what="--after") if getattr(args, "after", None) else None
    before = parse_date(args.before, what="--before") if getattr(args, "before", None) else None
    filt = PhotoFilter(under=under, after=after, before=before, min_side=getattr(args, "min_side", None))
    return filt if filt.active else None


def _check_query_options(args) -> None:
    """The options that narrow or reshape a query, checked once before any query runs (``args.filt`` set)."""
    from engine.errors import QueryError

    args.filt = _photo_filter(args)
    if getattr(args, "region_mode", None) is not None and getattr(args, "region", None) is None:
        raise QueryError("--as needs --region (how a region of the --image photo is searched)")
    if getattr(args, "region", None) is not None:
        if args.image is None:
            raise QueryError("--region needs --image (the photo the region is of)")
        from engine.region import parse_region

        parse_region(args.region)
    if args.rotation == "any" and getattr(args, "region", None) is not None:
        raise QueryError("--rotation any does not take --region")
    # options this query does not use are said to be ignored (they were, silently)
    region, image = getattr(args, "region", None) is not None, getattr(args, "image", None) is not None
    if args.expand is not None and (image or args.rotation == "any" or not args.fusion):
        _ignored("--expand", "it expands a fused sketch search (--sketch, without --no-fusion or --rotation any)")
    if args.qe is not None and (not image or region or args.rotation == "any"):
        _ignored("--qe", "it expands an image search (--image, without --region or --rotation any)")
    if getattr(args, "timeout", None) is not None and not getattr(args, "cluster", None):
        _ignored("--timeout", "it bounds the wait for the shards of a search on a cluster (--cluster)")


def _ignored(option: str, why: str) -> None:
    print(f"sketchsearch: warning: {option} is ignored here: {why}", file=sys.stderr)


def _query_hits(index, args, *, sketch=None, image=None):
    angles = None
    filt = getattr(args, "filt", None)
    region = getattr(args, "region", None)
    if region is not None:
        from engine.region import parse_region

        notes: list = []
        hits = index.search_region(image, parse_region(region), mode=args.region_mode or "both", top_k=args.top,
                                   filt=filt, options=_search_options(args), device=args.device, notes=notes)
        for note in notes:
            print(f"sketchsearch: warning: {printable(str(note))}", file=sys.stderr)
    elif args.rotation == "any":
        from engine import rotsearch

        if image is not None:
            hits, angles, flags = rotsearch.search_image_any_rotation(index, image, top_k=args.top, filt=filt)
            hits = [dataclasses.replace(h, mirrored=f) for h, f in zip(hits, flags, strict=True)]
        else:
            hits, angles = rotsearch.search_sketch_any_rotation(index, sketch, top_k=args.top,
                                                                options=_search_options(args), filt=filt)
    elif image is not None:
        hits = index.search_image(image, top_k=args.top, qe=args.qe, device=args.device, filt=filt)
    else:
        hits = index.search(sketch, top_k=args.top, options=_search_options(args), expand=args.expand,
                            fusion=args.fusion, filt=filt)
    return hits, angles


def _print_hits(args, hits, angles, seconds: float, n: int, query: str | None = None) -> None:
    if args.json:
        for i, h in enumerate(hits):
            row = h.to_json()
            if angles is not None:  # --rotation any: how far the query was turned (counter-clockwise)
                row["rotation"] = round(angles[i], 1) % 360.0  # 359.96 reads 0.0, not 360.0
            if query is not None:
                row = {"query": query, **row}
            print(json.dumps(row))
        return
    if query is not None:
        print(f"query {printable(query)}")
    print(f"{len(hits)} of {n} photos, {seconds * 1000:.0f} ms")
    print(f"{'rank':>4}  {'score':>6}  {'scale':>5}  {'mir':>3}  {'box (x0 y0 x1 y1) ':>23}  path")
    for h in hits:
        box = " ".join(f"{v:.0f}" for v in h.box) + ("?" if h.box_sure is False else " ")  # ?: the box is uncertain
        print(f"{h.rank:>4}  {h.score:6.3f}  {h.scale:5.2f}  {'yes' if h.mirrored else 'no':>3}  {box:>23}  "
              f"{printable(h.path)}")
    if any(h.box_sure is False for h in hits):
        print("(box?: the drawn outline was not clearly found in that photo: its box is uncertain)")
    if any(h.likely is not None for h in hits):  # sketch queries
        print(_likely_line(hits))


def _likely_line(hits) -> str:
    """Which ranks are likely matches (``engine.fusion``), or why none is."""
    ranks = [h.rank for h in hits if h.likely]
    if not ranks:
        from engine.fusion import load_params

        cut = load_params().likely
        if any(h.score >= cut for h in hits):
            return "no likely matches: none stands out from the look-alikes a collection this size holds"
        return f"no likely matches: no photo scores >= {cut:.2f}"
    spans: list[list[int]] = []
    for r in ranks:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return f"likely matches: rank{'s' if len(ranks) > 1 else ''} {text}"


def read_sketch_list(path: Path) -> list[tuple[str, Path]]:
    """(line as written, path) of a sketch list: one path per line, blank lines and ``#`` comments skipped;
    relative paths are relative to the list's folder.  UTF-8, with or without a byte-order mark; only a
    regular file of at most ``SKETCH_LIST_MAX_BYTES`` is read (never a device, a pipe or a folder)."""
    try:
        # O_NONBLOCK: opening a named pipe does not wait for a writer; it is refused just below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise SketchSearchError(f"{path}: cannot read the sketch list (not a regular file)")
            if st.st_size > SKETCH_LIST_MAX_BYTES:
                raise SketchSearchError(f"{path}: cannot read the sketch list (too large: {st.st_size} bytes, at "
                                        f"most {SKETCH_LIST_MAX_BYTES} for a list of sketch paths)")
            data = f.read(SKETCH_LIST_MAX_BYTES + 1)
        if len(data) > SKETCH_LIST_MAX_BYTES:  # grew while read
            raise SketchSearchError(f"{path}: cannot read the sketch list (too large)")
        text = data.decode("utf-8-sig")
    except IsADirectoryError:
        raise SketchSearchError(f"{path}: cannot read the sketch list (not a regular file: a folder)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SketchSearchError(f"{path}: cannot read the sketch list ({e})") from None
    out = []
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            p = Path(entry).expanduser()
            out.append((entry, p if p.is_absolute() else Path(path).parent / p))
    if not out:  # a run that printed nothing and succeeded read as if the sketches had no results
        raise SketchSearchError(f"{path}: the sketch list names no sketch (one path per line; # starts a comment)")
    return out


def _open(args):
    """The collection of ``--db``: an index, a manifest opened here, or a manifest on ``--cluster``."""
    from engine.shards import is_manifest, open_collection

    if getattr(args, "cluster", None):
        if not is_manifest(args.db):
            raise SketchSearchError(f"{args.db}: --cluster searches a sharded collection (a manifest .json made by "
                                    f"sketchsearch index --shards N or --cluster); search an index without it")
        from engine.cluster import ClusterIndex, connect

        cluster = connect(args.cluster)
        try:
            return ClusterIndex(args.db, cluster, timeout=60.0 if args.timeout is None else args.timeout), cluster
        except BaseException:
            cluster.close()
            raise
    return open_collection(args.db), None


def _warned(fn, *a, **kw):
    """fn(...), printing its partial-result warnings (shards that did not answer) on stderr."""
    import warnings

    from engine.collection import PartialResultWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PartialResultWarning)
        out = fn(*a, **kw)
    for w in caught:
        if issubclass(w.category, PartialResultWarning):
            print(f"sketchsearch: warning: {printable(w.message)}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def cmd_search(args) -> int:
    index, cluster = _open(args)
    try:
        return _search(args, index)
    finally:
        if cluster is not None:
            cluster.close()


def _search(args, index) -> int:
    _check_query_options(args)
    if len(index) == 0:
        raise SketchSearchError(f"{args.db}: the index is empty; add photos with: "
                                f"sketchsearch index FOLDER --db {args.db}")
    if args.sketch_list is None:
        t0 = time.perf_counter()
        hits, angles = _warned(_query, index, args, sketch=args.sketch, image=args.image)
        _print_hits(args, hits, angles, time.perf_counter() - t0, len(index))
        return 0
    # many sketches, one process: the index is opened once; a query that fails is reported and skipped
    queries = read_sketch_list(args.sketch_list)
    failed = 0
    for entry, path in queries:
        t0 = time.perf_counter()
        try:
            hits, angles = _warned(_query, index, args, sketch=path)
        except SketchSearchError as e:
            failed += 1
            if args.json:
                print(json.dumps({"query": entry, "error": error_text(e)}))
            else:
                print(f"query {printable(entry)}\n  error: {printable(error_text(e))}")
            continue
        _print_hits(args, hits, angles, time.perf_counter() - t0, len(index), query=entry)
        sys.stdout.flush()
    if failed:
        raise SketchSearchError(f"{failed} of {len(queries)} sketches in {args.sketch_list} failed (see their "
                                f"lines in the output)")
    return 0


def cmd_duplicates(args) -> int:
    from engine.rotsearch import find_duplicates
    from engine.shards import open_collection

    index = open_collection(args.db)
    groups = find_duplicates(index, threshold=args.threshold)
    paths = index.lookup(sorted({m[0] for g in groups for m in g}))
    path_of = dict(zip(sorted({m[0] for g in groups for m in g}), paths, strict=True))
    missing = 0
    for gi, g in enumerate(groups, 1):
        # a member whose file is gone (kept in the index until `index --prune`) says so: deleting the "other
        # copies" of a group could otherwise delete the only one left
        members = [{"path": path_of[r][0] if path_of[r] else None, "similarity": round(s, 4),
                    "rotation": round(a, 1), "mirrored": f,
                    "missing": bool(path_of[r]) and not os.path.exists(path_of[r][0])} for r, s, a, f in g]
        missing += sum(m["missing"] for m in members)
        if args.json:
            print(json.dumps({"group": gi, "photos": members}))
        else:
            print(f"group {gi} ({len(g)} photos)")
            for m in members:
                print(f"  {m['similarity']:.3f}  {m['rotation']:5.1f} deg{'  mirrored' if m['mirrored'] else ''}  "
                      f"{printable(m['path'])}{'  (missing: the file no longer exists)' if m['missing'] else ''}")
    if not args.json:
        print(f"{len(groups)} group{'' if len(groups) == 1 else 's'} of near-duplicates among {len(index)} photos"
              + (f"; {missing} of their files no longer exist (`sketchsearch index FOLDER --db DB --prune` drops "
                 f"them)" if missing else ""))
    return 0


def cmd_info(args) -> int:
    from engine.shards import open_collection

    index = open_collection(args.db)
    info = index.info()
    info["skipped_files"] = [{"path": p, "reason": r} for p, r in index.skipped]
    from engine.collection import SketchIndex

    if info.get("image_index") and isinstance(index, SketchIndex):  # its files opened and checked, as a search does
        from engine.errors import ImageIndexDamaged

        try:
            index.images()
        except ImageIndexDamaged as e:
            info["image_index_damaged"] = str(e)
            print(f"sketchsearch: warning: {printable(str(e))}; searches rank by the shape alone until "
                  f"`sketchsearch index` rebuilds it", file=sys.stderr)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"index      {printable(info['path'])}")
    print(f"photos     {info['images']}   skipped {info['skipped']}")
    print(f"descriptor {info['descriptor_dim']}-D, {info['bytes_per_image']} bytes per photo"
          f" (+ {info['rotation_bytes_per_image']} for rotation"
          + (f", + {info['image_bytes_per_image']} for image search)" if info["image_bytes_per_image"] else ")")
          + (f"; {info['image_fixed_bytes'] / 1e6:.2f} MB once per collection (bases, whitening)"
             if info.get("image_fixed_bytes") else ""))
    if info["image_settings"]:
        img = info["image_index"]
        print(f"image      {info['image_settings']['backbone']} GeM, "
              + (f"{img['n']} photos searchable by image: {printable(img['note'])}" if img else "not built yet"))
    else:
        print("image      no image descriptors (indexed with --backbone none)")
    print("on disk")
    for name, size in sorted(info["bytes_on_disk"].items()):
        print(f"  {printable(name):<20} {size / 1e6:9.2f} MB")
    print("settings   " + ", ".join(f"{k}={v}" for k, v in info["settings"].items()))
    if "shards" in info:
        print(f"shards     {len(info['shards'])} (by path hash), manifest {printable(info['manifest']['id'])}")
        for sh in info["shards"]:
            print(f"  {sh['images']:>9} photos  {sh['skipped']:>5} skipped  {printable(sh['path'])}")
    for item in info["skipped_files"]:
        print(f"  skipped {printable(item['path'])}: {printable(item['reason'])}")
    return 0


def cmd_bench(args) -> int:
    from engine.bench.run import main

    try:
        from .bench import app_part
    except ImportError:  # the app's extra (PySide6) is not installed
        app_part = None
    return main(args, app=app_part)


def cmd_demo(args) -> int:
    from engine.demo import DEMO, default_demo_db, run_demo

    rc = run_demo(db=args.db, top=args.top)
    if rc != 0 or args.no_gui:
        return rc
    try:  # the app is optional (the engine works without Qt)
        from .main import has_screen, run_gui
    except ImportError as e:
        print(f"(no window: the app is not installed: {e})")
        return rc
    if not has_screen():
        print("(no screen: the window opens with `sketchsearch gui` where there is one)")
        return rc
    sketch = sorted((DEMO / "sketches").glob("*.png"))
    return run_gui(args.db or default_demo_db(), sketch=sketch[0] if sketch else None)


def cmd_gui(args) -> int:
    try:
        from .main import run_gui
    except ImportError as e:
        raise SketchSearchError(f"the app needs PySide6: pip install 'sketchsearch[app]' ({e})") from None
    if args.index is not None and not args.index.expanduser().is_dir():  # before a window offers to index it
        what = "is not a folder" if args.index.expanduser().exists() else "no such folder"
        raise SketchSearchError(f"--index {printable(args.index)}: {what} (it takes the photo folder to index)")
    return run_gui(args.db, folder=args.index, qt_args=getattr(args, "qt_args", []))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sketchsearch", description="Find the photos that contain a drawn shape.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="index every image under the folders")
    p.add_argument("folders", nargs="+", metavar="DIR", type=_path)
    p.add_argument("--db", required=True, type=_path, help="index folder (created if needed)")
    p.add_argument("--workers", type=_positive, default=None,
                   help="worker processes (default and most: one per core, or 2)")
    p.add_argument("--preset", choices=("compact", "quality"), default=None,
                   help="descriptor size for a new index: compact 243-D (default), quality 605-D")
    p.add_argument("--backbone", default="auto",
                   help="CNN of the image descriptors: efficientnet-lite0, or none (sketch search only, faster "
                        "indexing); default: the index's, else efficientnet-lite0")
    p.add_argument("--edges", choices=("classical", "hed"), default=None,
                   help="photo edge detector for a new index: classical (default, fast) or hed (learned, needs "
                        "the [hed] extra; best with a GPU); default: the index's")
    p.add_argument("--device", type=_device, default=None,
                   help="torch device of the CNN and of HED edges (default: cuda when available)")
    p.add_argument("--prune", action="store_true",
                   help="drop indexed photos under the folders whose files no longer exist (default: keep them, "
                        "e.g. for a drive that is not plugged in)")
    p.add_argument("--rebuild", action="store_true",
                   help="rebuild an index that cannot be used as it is (another format version, a damaged catalog, "
                        "other settings) from scratch, describing every photo again; without it such an index is "
                        "refused, never wiped; only files the index wrote are deleted")
    p.add_argument("--follow-links", action="store_true",
                   help="also follow links to folders outside the folders given (default: only links that stay "
                        "inside them, so a link to / cannot make the scan walk the whole disk)")
    p.add_argument("--shards", type=_positive, default=None, metavar="N",
                   help="make --db a sharded collection of N shards (a manifest .json; shards beside it); default "
                        "for a new manifest: the cluster's workers, else 2")
    p.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="index a sharded collection on a Dask cluster: a scheduler address (tcp://host:8786) or "
                        "local:N (N worker processes here); needs the [cluster] extra")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search the index with a sketch or an image")
    p.add_argument("--db", required=True, type=_path)
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--sketch", type=_path, help="image of dark strokes on a light or transparent background")
    query.add_argument("--image", type=_path, help="a photo: find similar photos (box = whole photo)")
    query.add_argument("--sketch-list", type=_path, metavar="FILE",
                       help="many sketch queries in one run: a text file with one sketch path per line (relative "
                            "to the file's folder); results as for --sketch, JSON lines gain 'query'")
    p.add_argument("--qe", type=_count, default=None, metavar="N",
                   help="image search: alpha-weighted query expansion (alpha 3) over the top N results "
                        "(default: 5; 0 for none)")
    p.add_argument("--expand", type=_count, default=None, metavar="N",
                   help="sketch search: expand the query with the image descriptors of the top N hits (default: "
                        "the fitted one, 20; 0: none); each hit keeps the box where the sketch matches it")
    p.add_argument("--no-fusion", dest="fusion", action="store_false",
                   help="sketch search: rank by the shape alignment alone (no global sketch descriptor, no "
                        "expansion); scores stay calibrated")
    p.add_argument("--rotation", choices=("upright", "any"), default="upright",
                   help="any: also find the shape or photo turned by any angle (and mirrored); JSON lines gain "
                        "'rotation' (degrees counter-clockwise that turn the query onto the photo)")
    p.add_argument("--region", default=None, metavar="X0,Y0,X1,Y1",
                   help="with --image: search with this region of the photo (its original pixels)")
    p.add_argument("--as", dest="region_mode", choices=("both", "shape", "image"), default=None,
                   help="a region as an image query, as a shape (its edges as a sketch; boxes), or both fused "
                        "(default)")
    p.add_argument("--under", type=_path, default=None, metavar="DIR", help="only photos inside this folder")
    p.add_argument("--after", default=None, metavar="DATE",
                   help="only photos taken on or after this date (YYYY-MM-DD, or YYYY-MM-DD HH:MM; EXIF date, "
                        "else the file's time)")
    p.add_argument("--before", default=None, metavar="DATE",
                   help="only photos taken before this date (YYYY-MM-DD, or YYYY-MM-DD HH:MM)")
    p.add_argument("--min-side", type=_positive, default=None, metavar="PX",
                   help="only photos whose shorter side has at least this many pixels")
    p.add_argument("--top", type=_positive, default=20, help="number of results (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object per result and line")
    p.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="search a sharded collection on a Dask cluster (scheduler address or local:N); its "
                        "workers keep the shards open between searches")
    p.add_argument("--timeout", type=_seconds, default=None, metavar="S",
                   help="--cluster: seconds to wait for the shards at each step; shards that do not answer are "
                        "left out with a warning (default 60)")
    _add_search_options(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("info", help="describe an index")
    p.add_argument("--db", required=True, type=_path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="quality and speed benchmarks (prints a table, writes JSON)")
    p.add_argument("--out", type=_path, default=Path("bench-results") / "bench.json")
    p.add_argument("--only", choices=("kernels", "edges", "quality", "fusion", "speed", "store", "image", "compact",
                                        "rotation", "region", "app", "cluster", "scaling"), action="append",
                   help="run only these parts (repeatable)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    p.add_argument("--data", type=_path, default=None, help="evaluation data folder (default ../shared/data)")
    p.add_argument("--device", type=_device, default=None,
                   help="torch device for the speed benchmark (default: auto)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("duplicates", help="groups of near-duplicate photos: rotated, mirrored, rescaled or "
                                          "recompressed copies")
    p.add_argument("--db", required=True, type=_path)
    p.add_argument("--threshold", type=_similarity, default=0.95,
                   help="rotation-invariant similarity in (0, 1] from which two photos are copies (default 0.95); "
                        "photos without edges (blank) are never grouped")
    p.add_argument("--json", action="store_true", help="one JSON object per group and line")
    p.set_defaults(func=cmd_duplicates)

    p = sub.add_parser("demo", help="index the bundled demo photos and search them with the demo sketches")
    p.add_argument("--db", type=_path, default=None, help="where to keep the demo index")
    p.add_argument("--top", type=_positive, default=5)
    p.add_argument("--no-gui", action="store_true", help="print the results only, even where there is a screen")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("gui", help="open the app (draw a sketch or drop a photo; index folders)",
                       epilog="Qt's own options (-style fusion, -platform xcb, -reverse...) are passed to Qt.")
    p.add_argument("--db", type=_path, default=None, help="index to open (default: the last one)")
    p.add_argument("--index", type=_path, default=None, metavar="FOLDER", help="index this photo folder")
    p.set_defaults(func=cmd_gui)
    return parser


#: Where an exception that means "this file's bytes are not what they should be" is raised.
_DATA_READERS = ("numpy", "faiss", "json", "zipfile", "pickle", "safetensors")
_DATA_ERRORS = (EOFError, json.JSONDecodeError, UnicodeDecodeError)


def _raised_in(e: BaseException, packages: tuple[str, ...]) -> bool:
    """Whether the innermost frame of ``e``'s traceback is in one of ``packages`` (top-level names)."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return False
    parts = Path(frames[-1].filename).parts
    return any(p in parts for p in packages) or Path(frames[-1].filename).stem in packages


def hint_command(hint) -> str:
    """What a person can do about an engine error (its ``engine.errors.Hint``), as a command with its flags."""
    db = hint.db
    if hint.action == "build":
        return f"build one with: sketchsearch index FOLDER --db {db}"
    if hint.action == "build-sharded":
        return f"make one with: sketchsearch index FOLDER --db {db} --shards N (or --cluster ADDRESS)"
    if hint.action == "repair":
        return f"run: sketchsearch index FOLDER --db {db}"
    if hint.action == "rebuild":
        return f"rebuild with: sketchsearch index FOLDER --db {db} --rebuild"
    if hint.action == "other-folder":
        return "choose another --db"
    if hint.action == "other-settings":
        if hint.option:
            return (f"index with --{hint.option} {hint.value} (or leave --{hint.option} out), use another --db, or "
                    f"rebuild it with these (--rebuild)")
        return "use another --db, or rebuild it with these (--rebuild)"
    if hint.action == "image-descriptors":
        from engine.describe import DEFAULT_BACKBONE

        return f"rebuild it with --backbone {DEFAULT_BACKBONE} to search by image"
    raise ValueError(f"unknown hint {hint.action!r}")


def error_text(e: BaseException) -> str:
    """An engine error as the command line says it: its message, then its hint as a command."""
    hint = getattr(e, "hint", None)
    return f"{e}; {hint_command(hint)}" if hint is not None else str(e)


def describe_failure(e: BaseException, db=None) -> tuple[str, int]:
    """(one-line message, exit status) for an exception that ended a command (``db``: its ``--db``).

    2 for every expected failure: the engine's own errors, a full disk (naming the file, else the index),
    another OS error (it names its file), the catalog's SQLite errors, not enough memory, and a damaged
    file read by numpy, faiss or json (an ``EOFError``, or an error raised inside those readers); 1 for
    anything else (a bug).
    """
    where = printable(db) if db is not None else None
    if isinstance(e, SketchSearchError):
        return printable(error_text(e)), 2
    if isinstance(e, MemoryError):
        return "not enough memory" + (f" ({printable(e)})" if str(e) else "") + (f" for {where}" if where else ""), 2
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        target = printable(e.filename) if e.filename else where
        return f"disk full while writing {target or 'a file'} ({e.strerror or e}); what was written before is " \
               f"kept: free some space and run the command again", 2
    if isinstance(e, OSError):
        text = printable(e.strerror or e)
        if e.filename is not None:
            names = printable(e.filename) + (f" -> {printable(e.filename2)}" if e.filename2 is not None else "")
            return f"{names}: {text}", 2
        if e.errno is None or not where:  # a message of its own ("FOLDER: no such folder")
            return text, 2
        return f"{where}: {text}", 2
    if isinstance(e, sqlite3.Error):
        text = printable(e)
        if "full" in text:
            return f"disk full while writing {where or 'the index catalog'} ({text}); what was committed before " \
                   f"is kept: free some space and run the command again", 2
        return f"{where + ': ' if where else ''}the index catalog cannot be used ({type(e).__name__}: {text})", 2
    if isinstance(e, _DATA_ERRORS) or (isinstance(e, ValueError | RuntimeError | TypeError | KeyError |
                                                   IndexError | OSError) and _raised_in(e, _DATA_READERS)):
        what = f"{where}: a file of the index" if where else "a file"
        hint = f"; run sketchsearch index on its folders with --db {where} to describe them again" if where else ""
        return f"{what} is damaged or truncated ({type(e).__name__}: {printable(e)}){hint}", 2
    return (f"internal error: {type(e).__name__}: {printable(e)} (set SKETCHSEARCH_DEBUG=1 for the traceback)",
            1)


class _LogFormat(logging.Formatter):
    """Warnings and errors as ``sketchsearch: warning: ...`` (one line); ``-v``'s details as they come."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING and not record.exc_info:
            return f"sketchsearch: {record.levelname.lower()}: {printable(record.getMessage())}"
        return super().format(record)


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=None) -> None:
    """The engine's warnings (a damaged part of an index, shards that did not answer) as one line."""
    if category.__module__.split(".")[0] == "engine":
        print(f"sketchsearch: warning: {printable(error_text(message))}", file=file or sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (poll's POLLERR on its end; False where that
    cannot be told)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor (a test's capture)
        return False


def _joined_region(argv: list[str]) -> list[str]:
    """``--region -5,-5,100,100`` as ``--region=-5,-5,100,100``: argparse takes a value that starts with a dash
    for an option ("expected one argument"), and a region partly left of or above the photo starts with one."""
    out = []
    i = 0
    while i < len(argv):
        if argv[i] == "--region" and i + 1 < len(argv) and argv[i + 1][:1] == "-" and argv[i + 1][1:2].isdigit():
            out.append(f"--region={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    import functools
    import warnings

    parser = build_parser()
    argv = _joined_region(sys.argv[1:] if argv is None else list(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:  # Qt's own options, for the app only (single dash: a mistyped --option of ours is an error)
        if args.command != "gui" or not extra[0].startswith("-") or any(a.startswith("--") for a in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.qt_args = extra
    handler = logging.StreamHandler()
    handler.setFormatter(_LogFormat("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    try:
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_show_warning, _default=warnings.showwarning)
            return args.func(args)
    except KeyboardInterrupt:
        print("sketchsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError as e:
        if not _stdout_closed():  # another pipe (a cluster's connection, say): a failure like any other
            message, status = describe_failure(e, getattr(args, "db", None))
            print(f"sketchsearch: error: {message}", file=sys.stderr)
            return status
        # the reader of the output went away (`| head`): quiet, as a command killed by SIGPIPE; what is left in
        # the buffer goes nowhere instead of failing again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:
        if os.environ.get("SKETCHSEARCH_DEBUG") and not isinstance(e, SketchSearchError):
            raise
        message, status = describe_failure(e, getattr(args, "db", None))
        print(f"sketchsearch: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
