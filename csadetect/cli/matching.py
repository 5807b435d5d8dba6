"""``csadetect match``: files, directories, ``-`` (paths or hash values on stdin) and ``--hashes FILE``
(a partner's list, read through :mod:`csadetect.indicators.formats`) against a signed indicator
database, one JSON line each. A file is hashed as the pipeline hashes an upload (views, sub-images,
video key frames; the embedding model's inputs when one is configured) and looked up in the index
as workers load it (:func:`csadetect.indicators.index.load_index`: mapped, nothing built); each
match says its distance, the threshold, the indicator's note and how it matched (the view and
dihedral transform of a picture, the frames of a video: ``SignalType.explain``), from the matched
row alone (:class:`csadetect.indicators.snapshot_rows.RowLookup`), so a database of 10M-100M
indicators is never loaded whole.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

from csadetect.cli.indicators import _embedder, _handled, _settings, add_config_argument, media_files, stdin_lines
from csadetect.cli.output import emit, say
from csadetect.indicators import formats
from csadetect.indicators.index import load_index
from csadetect.indicators.rows import IndicatorError, kinds_for, value_kind
from csadetect.indicators.snapshot import SnapshotError, head
from csadetect.indicators.snapshot_rows import RowLookup
from csadetect.media.hashing import MediaError, VideoHashes, hash_file, hash_video_upload, is_video_path, read_media
from csadetect.media.regions import preprocessor
from csadetect.signals import digests, get
from csadetect.signals.embedding import query_regions, region_gate_similarity


def _hash_media(path: str, settings):
    """``(hashes, pictures)`` of a file as the pipeline hashes an upload: a video as its hash stage
    does (:func:`hash_video_upload`: key frames, bars, static overlays, framed pictures, the video
    limits), an image with its views (no pictures for a video)."""
    if is_video_path(path):
        data = read_media(path, settings.limits.max_content_bytes)
        return hash_video_upload(data, settings.match, settings.limits, digests()), []
    return hash_file(path, max_pixels=settings.limits.max_pixels, preprocess=preprocessor(settings.match),
                     with_views=True, digests=digests(), frames=settings.match.image_frames,
                     value=settings.match.value_view, inverted=settings.match.inverted_view)


def _match_hashes(hashes, pictures, index, settings, embedder=None, spec=None):
    """(matches, embedding views or None: the names of the picture's embedding inputs and their
    vectors) of a hashed file, as the pipeline matches it: the query-side region views only where
    ``match.embedding_query_region_gate`` lets them (``IndicatorIndex.match_image_gated``)."""
    import numpy as np

    from csadetect.models.embedding import staged_model_inputs  # lazy: the model loader imports Beam

    if isinstance(hashes, VideoHashes):
        return index.match_video(hashes), None
    if embedder is None:
        return index.match_image(hashes), None
    names, batch, source = staged_model_inputs(pictures, embedder.input_size, flip=settings.embedding.flip,
                                               regions=query_regions(settings.match))
    own_names, vectors = names[:len(batch)], embedder.embed_arrays(batch)
    region_names = names[len(batch):]

    def regions(orientation: str):
        if not region_names:
            return (), None
        return embedder.embed_region_views(source, region_names, orientation)

    def turned():
        return embedder.embed_turned(source, own_names[0])

    gate = region_gate_similarity(spec.threshold, settings.match.embedding_query_region_gate)
    turns = turned if region_names and settings.match.embedding_query_turns else None
    matches, embedded = index.match_image_gated(hashes, vectors, own_names, spec.version, spec.threshold, gate, regions,
                                                turns, settings.match.embedding_query_turn_gate)
    if embedded is None:
        return matches, (own_names, vectors)
    return matches, (names, np.concatenate([vectors, embedded[1]]))


def _hash_and_match(path: str, index, settings, embedder=None, spec=None) -> list:
    hashes, pictures = _hash_media(path, settings)
    return _match_hashes(hashes, pictures, index, settings, embedder, spec)[0]


class _Matcher:
    """The loaded snapshot for ``match``: its index, and what a match line says beyond the index's
    answer (the threshold of the kind, the indicator's note, how the item matched)."""

    def __init__(self, rows: RowLookup, index, settings, embedder=None, spec=None):
        self.rows, self.index, self.settings = rows, index, settings  # rows: read on the first match only
        self.embedder, self.spec = embedder, spec
        self._found: dict = {}  # (kind, value) -> its matches or the IndicatorError, from prefetch

    def threshold(self, kind: str):
        threshold = get(kind).threshold(self.settings.match)
        if threshold is None and self.spec is not None:  # the embedding model's calibrated similarity
            threshold = round(1.0 - self.spec.threshold, 6)
        return threshold

    def describe(self, match, hashes=None, views=None) -> dict:
        row = self.rows.row(match.kind, match.indicator_id)
        if row is None:  # the index and the data file are one signed version: they cannot disagree
            raise SnapshotError(f"version {self.rows.version}: matched indicator {match.indicator_id!r} "
                                f"({match.kind}) is not in its data file")
        out = match.to_json() | {"threshold": self.threshold(match.kind), "note": row["note"]}
        if hashes is not None:
            out |= get(match.kind).explain(hashes, row["value"], self.settings.match, views)
        return out

    def file(self, path: str) -> dict:
        hashes, pictures = _hash_media(path, self.settings)
        matches, views = _match_hashes(hashes, pictures, self.index, self.settings, self.embedder, self.spec)
        return {"path": path, "matched": bool(matches), "matches": [self.describe(m, hashes, views) for m in matches]}

    def _matches(self, kind: str, value: str) -> list:
        probe = get(kind).value_probe(value, self.settings.match)
        if probe is None:
            raise IndicatorError(f"a bare {kind} value cannot be matched (match the file instead)")
        return self.index.match({kind: probe})

    def prefetch(self, values: Sequence[tuple[str, str]]) -> None:
        """Match many (kind, value) pairs, then read their matches' rows at once (RowLookup.prefetch)."""
        self._found = {}
        for pair in values:
            try:
                self._found[pair] = self._matches(*pair)
            except IndicatorError as exc:
                self._found[pair] = exc
        self.rows.prefetch((m.kind, m.indicator_id) for found in self._found.values() if isinstance(found, list)
                           for m in found)

    def value(self, kind: str, value: str) -> list[dict]:
        found = self._found[(kind, value)] if (kind, value) in self._found else self._matches(kind, value)
        if isinstance(found, IndicatorError):
            raise found
        return [self.describe(m) for m in found]


def _match_file(matcher: _Matcher, path: str) -> bool:
    """Emit the match line of one file; False when it could not be hashed."""
    try:
        emit(matcher.file(path))
        return True
    except (MediaError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        emit({"path": path, "error": reason})
        return False


def _match_tree(matcher: _Matcher, path: str) -> int:
    """Emit the match line of each file of ``path`` (a file or a directory); the number that failed
    (a directory without media files: one error line)."""
    failed = 0
    try:
        for media in media_files([path]):
            failed += not _match_file(matcher, media)
    except IndicatorError as exc:
        emit({"path": path, "error": str(exc).removeprefix(f"{path}: ")})
        failed += 1
    return failed


def _match_value(matcher: _Matcher, where: str, kind: str, value: str, ident: Optional[str] = None) -> bool:
    try:
        matches = matcher.value(kind, value)
    except IndicatorError as exc:
        emit({"input": where, "error": str(exc)})
        return False
    line = {"input": where} | ({"id": ident} if ident else {}) | {"kind": kind}
    emit(line | {"matched": bool(matches), "matches": matches})
    return True


def _stdin_item(matcher: _Matcher, number: int, text: str, kind: Optional[str]) -> bool:
    """One line of ``match -``: an existing path (file or directory), else a hash value (of
    ``--kind``, or of the one kind its form allows), else a missing file."""
    if os.path.exists(text) or (kind is None and not kinds_for(text)):
        return not _match_tree(matcher, text)
    where = f"-:{number}"
    try:
        row_kind = kind or value_kind(text, where)
    except IndicatorError as exc:
        emit({"input": where, "error": str(exc).removeprefix(f"{where}: ")})
        return False
    try:
        value = get(row_kind).validate(text)
    except ValueError as exc:
        emit({"input": where, "error": str(exc)})
        return False
    return _match_value(matcher, where, row_kind, value)


PREFETCH = 50_000  # rows of a --hashes list matched before their matches' rows are read, at once


@_handled
def cmd_match(args) -> int:
    settings = _settings(args)
    if not args.paths and not args.hashes:
        raise IndicatorError("match needs PATH..., - (paths or hash values on stdin) or --hashes FILE")
    if args.paths.count("-") > 1:
        raise IndicatorError("stdin (-) can be read once")
    columns = formats.parse_columns(args.columns)
    kind = formats.kind_of(args.kind, "--kind") if args.kind else None  # a kind or an alias (HASH_PDQ, ...)
    # every list read first: a missing, unreadable or empty one fails before the snapshot is loaded
    lists = [formats.read_probes(path, args.format, kind, columns, settings.match) for path in args.hashes or ()]
    db_dir = args.indicators or settings.indicators.path
    public_key = args.public_key or settings.indicators.public_key
    found = head(db_dir, public_key)
    # the index as workers load it (mapped, nothing built); a match's row is read when it is described
    index = load_index(db_dir, public_key, settings.match, found.latest, settings.indicators.min_version)
    say(f"indicator snapshot version {index.version} ({len(index)} active indicators)")
    if found.problem():
        say(f"warning: {found.problem()} (matching against version {found.latest})")
    embedder = _embedder(settings, bool(args.paths) and not args.no_embedding)  # files only: values need no model
    spec = None
    if embedder is not None:
        from csadetect.models.embedding import EmbeddingSpec  # lazy: the model loader imports Beam

        spec = EmbeddingSpec.resolve(settings.embedding)
        say(f"embedding model {spec.version}: near-duplicates at cosine similarity >= {spec.threshold:.4f}")
    with RowLookup(db_dir, public_key, index.version) as rows:  # the data file, open from the first match on
        return _match_all(_Matcher(rows, index, settings, embedder, spec), lists, args.paths, kind)


def _match_all(matcher: _Matcher, lists: Sequence, paths: Sequence[str], kind: Optional[str]) -> int:
    """Emit the lines of every ``--hashes`` list, then of every path; 1 when any item failed."""
    failed = 0
    for listed in lists:
        for line in listed.summary():
            say(line)
        items = [(line, None, reason) for line, reason in listed.refused]
        items += [(line, row, None) for row, line in zip(listed.rows, listed.lines)]
        items.sort(key=lambda item: item[0])  # in the file's order
        for first in range(0, len(items), PREFETCH):  # each piece's rows read at once
            matcher.prefetch([(row.kind, row.value) for _, row, _ in items[first:first + PREFETCH] if row])
            for line, row, reason in items[first:first + PREFETCH]:
                if row is None:
                    emit({"input": f"{listed.path}:{line}", "error": reason})
                    failed += 1
                else:
                    failed += not _match_value(matcher, f"{listed.path}:{line}", row.kind, row.value, row.indicator_id)
    for path in paths:
        if path == "-":
            failed += sum(not _stdin_item(matcher, number, text, kind) for number, text in stdin_lines())
        else:
            failed += _match_tree(matcher, path)
    return 1 if failed else 0


def register(subparsers) -> None:
    """Add ``match``."""
    p = subparsers.add_parser("match", help="match files, stdin (-) or a hash list against a signed indicator "
                                            "snapshot, one JSON line each")
    p.add_argument("--indicators", metavar="DBDIR", help="snapshot directory (default: indicators.path of the config)")
    p.add_argument("--public-key", metavar="PUBLIC.pem", help="default: indicators.public_key of the config")
    p.add_argument("--no-embedding", action="store_true", help="PDQ, vPDQ and digests only, no embedding near-duplicates")
    p.add_argument("--hashes", action="append", metavar="FILE",
                   help="a hash list to match (the formats of indicators import; repeatable)")
    p.add_argument("--format", choices=formats.IMPORT_FORMATS + ("csv", "hashes"), help="of --hashes (default: from the name)")
    p.add_argument("--kind", help="the kind of the hash values in --hashes or on stdin (64 hex digits: pdq or sha256)")
    p.add_argument("--columns", metavar="ROLE=COLUMN,...", help="of a --hashes CSV (as indicators import)")
    add_config_argument(p)
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="files or directories (recursive); - reads paths or hash values from stdin, one per line")
    p.set_defaults(func=cmd_match)
