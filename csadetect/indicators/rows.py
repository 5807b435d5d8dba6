"""Indicator records: the rows of the EU Centre indicator database (DESIGN.md §4).

An :class:`Indicator` is one known-material signal (its ``kind`` names a signal type of
:mod:`csadetect.signals`) with its metadata. Readers turn CSV, JSON Lines and plain hash lists
(Meta's ``needles.txt`` / ``haystack.txt`` format) into validated rows; every bad row raises
:class:`IndicatorError` with a one-line message naming the file and line. A hash list names its
kind (``kind``, a header line: :func:`header_kind`, or values only one kind accepts:
:func:`value_kind`); 64 hex digits (PDQ or SHA-256) are never guessed. Other tools' formats, with
per-row errors collected instead of raised, are :mod:`csadetect.indicators.formats`.
:func:`from_media` hashes image and video files into rows (PDQ or vPDQ + MD5 + SHA-256, + embeddings with a model).

Values are normalised on construction by their signal type (``SignalType.validate``): hex is
lowercased, vPDQ frame lists are de-duplicated and single-space separated, embeddings are
re-encoded as ``model_version:`` + canonical base64 of little-endian float32.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import re
from typing import Iterable, Iterator, Optional, Sequence, TextIO

from csadetect.config.settings import MatchSettings
from csadetect.core.timeutil import parse_time, utc_iso
from csadetect.media.hashing import MediaError, hash_file
from csadetect.signals import SIGNAL_TYPES, Media, SignalError, digests, for_content, get

FIELDS = ("indicator_id", "kind", "value", "category", "source", "note", "added_at", "disabled_at")
CSV_COLUMNS = ("indicator_id", "kind", "value", "category", "note")  # what from-media writes
FORMATS = ("csv", "jsonl", "hashes")
DEFAULT_CATEGORY = "unspecified"
DEFAULT_SOURCE = "eu-centre"
MAX_ID_BYTES = 128

_ID_RE = re.compile(r"[^\s\x00-\x1f\x7f]+")  # no whitespace or control characters


class IndicatorError(ValueError):
    """A bad indicator row or input file; the message is one line, e.g. ``file.csv:12: ...``."""


class AmbiguousKind(IndicatorError):
    """A bare value several kinds accept (64 hex digits: PDQ or SHA-256) and nothing names its kind."""


def _time_field(value: str, field: str) -> str:
    """An RFC 3339 time with a zone, normalised to UTC ``...Z``; IndicatorError otherwise."""
    try:
        return utc_iso(parse_time(value, field=field), timespec="auto")
    except ValueError as exc:
        raise IndicatorError(f"{exc}: {value!r}") from None


def normalise_value(kind: str, value: str) -> str:
    """Validate ``value`` for ``kind`` and return its canonical form (raises IndicatorError)."""
    try:
        return get(kind).validate(value)
    except SignalError as exc:
        raise IndicatorError(str(exc)) from None


@dataclasses.dataclass(frozen=True)
class Indicator:
    """One indicator. Construction validates and normalises every field.

    ``value``: in the canonical form of its kind's signal type (e.g. pdq 64 hex, vpdq the video's
    unique frame PDQ hashes as space-separated 64-hex strings; see :mod:`csadetect.signals`).
    ``added_at`` None means "set when the snapshot is built"; ``disabled_at`` set = tombstone.
    """

    indicator_id: str
    kind: str
    value: str
    category: str = DEFAULT_CATEGORY
    source: str = DEFAULT_SOURCE
    note: str = ""
    added_at: Optional[str] = None
    disabled_at: Optional[str] = None

    def __post_init__(self) -> None:
        ident = self.indicator_id.strip() if isinstance(self.indicator_id, str) else ""
        if not ident:
            raise IndicatorError("indicator_id is empty")
        if not _ID_RE.fullmatch(ident) or len(ident.encode("utf-8")) > MAX_ID_BYTES:
            raise IndicatorError(
                f"indicator_id {ident[:40]!r} must be 1-{MAX_ID_BYTES} bytes without spaces or control characters"
            )
        kind = self.kind.strip().lower() if isinstance(self.kind, str) else ""
        if kind not in SIGNAL_TYPES:
            raise IndicatorError(f"unknown kind {self.kind!r} (expected one of {', '.join(SIGNAL_TYPES)})")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        set_("indicator_id", ident)
        set_("kind", kind)
        set_("value", normalise_value(kind, self.value))
        set_("category", (self.category or "").strip() or DEFAULT_CATEGORY)
        set_("source", (self.source or "").strip() or DEFAULT_SOURCE)
        set_("note", self.note or "")
        for field in ("added_at", "disabled_at"):
            raw = getattr(self, field)
            set_(field, _time_field(raw, field) if raw not in (None, "") else None)

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "Indicator":
        return dataclasses.replace(self, **changes)


def make_row(record: dict, where: str) -> Indicator:
    """``Indicator(**record)``; its IndicatorError prefixed with ``where`` (``file:line``)."""
    try:
        return Indicator(**record)
    except IndicatorError as exc:
        raise IndicatorError(f"{where}: {exc}") from None
    except TypeError:
        raise IndicatorError(f"{where}: malformed row") from None


def _check_unique(rows: Iterable[tuple[str, Indicator]]) -> list[Indicator]:
    return list(_unique(rows))


def _unique(rows: Iterable[tuple[str, Indicator]]) -> Iterator[Indicator]:
    seen: dict[str, str] = {}
    for where, row in rows:
        first = seen.get(row.indicator_id)
        if first is not None:
            raise IndicatorError(f"{where}: duplicate indicator_id {row.indicator_id!r} (first on line {first})")
        seen[row.indicator_id] = where.rsplit(":", 1)[-1]
        yield row


def open_text(path: str):
    """``path`` opened for reading UTF-8 text (CSV-ready: ``newline=""``); IndicatorError (one line) when it cannot be."""
    try:
        return open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise IndicatorError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise IndicatorError(f"{path}: is a directory") from None
    except OSError as exc:
        raise IndicatorError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None


def _lines(path: str) -> Iterator[tuple[int, str]]:
    with open_text(path) as fh:
        try:
            for number, line in enumerate(fh, 1):
                yield number, line
        except UnicodeDecodeError:
            raise IndicatorError(f"{path}: not UTF-8 text") from None


def read_csv(path: str) -> list[Indicator]:
    """CSV with a header: ``indicator_id,kind,value`` required; ``category,note,source,added_at,
    disabled_at`` optional. Unknown columns are an error (they are usually typos)."""
    return _check_unique(_csv_rows(path))


def csv_header(path: str, header: Optional[Sequence[str]]) -> list[str]:
    """The column names of an indicator CSV's first row, stripped; IndicatorError (one line) when
    it is missing, lacks a required column or names an unknown one."""
    if not header:
        raise IndicatorError(f"{path}: empty file (expected a header {','.join(CSV_COLUMNS)})")
    header = [h.strip() for h in header]
    missing = [c for c in ("indicator_id", "kind", "value") if c not in header]
    if missing:
        raise IndicatorError(f"{path}:1: missing column {missing[0]!r} (header must include indicator_id,kind,value)")
    unknown = [c for c in header if c not in FIELDS]
    if unknown:
        raise IndicatorError(f"{path}:1: unknown column {unknown[0]!r} (allowed: {','.join(FIELDS)})")
    return header


def _csv_rows(path: str) -> Iterator[tuple[str, Indicator]]:
    with open_text(path) as fh:
        try:
            reader = csv.DictReader(fh)
            reader.fieldnames = csv_header(path, reader.fieldnames)
            for record in reader:
                where = f"{path}:{reader.line_num}"
                if None in record:
                    raise IndicatorError(f"{where}: more fields than the header has")
                if all(not (v or "").strip() for v in record.values()):
                    continue  # blank line
                if any(v is None for v in record.values()):
                    raise IndicatorError(f"{where}: fewer fields than the header has")
                yield where, make_row(dict(record), where)
        except csv.Error as exc:
            raise IndicatorError(f"{path}:{reader.line_num}: bad CSV ({exc})") from None
        except UnicodeDecodeError:
            raise IndicatorError(f"{path}: not UTF-8 text") from None


def read_jsonl(path: str) -> list[Indicator]:
    """JSON Lines, one object per line with the keys of :class:`Indicator`."""
    return _check_unique(_jsonl_rows(path))


def _jsonl_rows(path: str) -> Iterator[tuple[str, Indicator]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IndicatorError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise IndicatorError(f"{where}: expected a JSON object")
        unknown = [k for k in record if k not in FIELDS]
        if unknown:
            raise IndicatorError(f"{where}: unknown key {unknown[0]!r} (allowed: {','.join(FIELDS)})")
        for key in ("indicator_id", "kind", "value"):
            if key not in record:
                raise IndicatorError(f"{where}: missing key {key!r}")
        bad = [k for k, v in record.items() if v is not None and not isinstance(v, str)]
        if bad:
            raise IndicatorError(f"{where}: {bad[0]} must be a string")
        yield where, make_row(record, where)


def kind_named(text: str) -> Optional[str]:
    """The kind ``text`` names: a kind or one of its signal type's ``aliases`` (any case), else None."""
    key = (text or "").strip().lower()
    for name, signal in SIGNAL_TYPES.items():
        if key == name or key in signal.aliases:
            return name
    return None


def kinds_for(value: str) -> list[str]:
    """Every kind whose signal type accepts ``value`` as it is (what a bare value could be), among
    the recognisable ones (``SignalType.recognisable``)."""
    out = []
    for name, signal in SIGNAL_TYPES.items():
        if not signal.recognisable:
            continue
        try:
            signal.validate(value)
        except SignalError:
            continue
        out.append(name)
    return out


def header_kind(text: str) -> Optional[str]:
    """The kind a hash list's header line names: ``sha256`` (a kind or alias alone on the line) or a
    comment ``# kind: sha256``; None for any other line."""
    body = text.strip()
    if body.startswith("#"):
        key, sep, rest = body.lstrip("#").partition(":")
        return kind_named(rest) if sep and key.strip().lower() == "kind" else None
    return kind_named(body)


def value_kind(value: str, where: str) -> str:
    """The one kind a bare value can be; AmbiguousKind when it could be several (64 hex digits:
    PDQ or SHA-256), IndicatorError when none."""
    found = kinds_for(value)
    if len(found) == 1:
        return found[0]
    if not found:
        recognisable = [name for name, signal in SIGNAL_TYPES.items() if signal.recognisable]
        raise IndicatorError(f"{where}: not a value of any kind ({', '.join(recognisable)})")
    raise AmbiguousKind(f"{where}: {len(value.strip())} hex digits could be {' or '.join(found)}; "
                         f"pass --kind or start the list with a header line naming the kind (e.g. '# kind: {found[0]}')")


def hash_list_values(path: str, lines: Iterable[tuple[int, str]],
                     kind: Optional[str]) -> Iterator[tuple[int, Optional[str], str]]:
    """The value lines of a hash list (``needles.txt``), as ``(line number, kind, stripped text)``:
    blank lines and ``#`` comments skipped; a header line before the first value
    (:func:`header_kind`) names the kind, and one naming another kind than ``kind`` (``--kind``)
    raises IndicatorError. The kind is None where neither names one. :func:`read_hashes` and
    ``indicators import``'s list reader (:mod:`csadetect.indicators.formats`) both read lists through it."""
    seen_value = False
    for number, line in lines:
        text = line.strip()
        if not text:
            continue
        named = None if seen_value else header_kind(text)
        if named is not None:
            if kind is not None and named != kind:
                raise IndicatorError(f"{path}:{number}: the header names {named}, --kind says {kind}")
            kind = named
            continue
        if text.startswith("#"):
            continue
        seen_value = True
        yield number, kind, text


def read_hashes(path: str, kind: Optional[str] = None, category: str = DEFAULT_CATEGORY) -> list[Indicator]:
    """One value per line (``needles.txt`` format). Blank lines and ``#`` comments are skipped. The
    kind: ``kind``, else a header line (:func:`header_kind`), else each value's only possible
    kind (MD5: 32 hex digits, SHA-1: 40); values several kinds accept (64 hex digits: PDQ or
    SHA-256) raise IndicatorError rather than being guessed. Ids are ``<file stem>-<line
    number>``, so they are stable as long as the file is."""
    return _check_unique(_hash_rows(path, kind, category))


def _hash_rows(path: str, kind: Optional[str], category: str) -> Iterator[tuple[str, Indicator]]:
    stem = os.path.splitext(os.path.basename(path))[0]
    for number, list_kind, text in hash_list_values(path, _lines(path), kind):
        where = f"{path}:{number}"
        row_kind = list_kind or value_kind(text, where)
        yield where, make_row({"indicator_id": f"{stem}-{number}", "kind": row_kind, "value": text,
                               "category": category}, where)


def format_for(path: str, override: Optional[str] = None) -> str:
    """Input format from ``override`` or the file extension (.csv, .jsonl/.json, .txt)."""
    if override:
        if override not in FORMATS:
            raise IndicatorError(f"unknown format {override!r} (expected one of {', '.join(FORMATS)})")
        return override
    ext = os.path.splitext(path)[1].lower()
    fmt = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".txt": "hashes"}.get(ext)
    if fmt is None:
        raise IndicatorError(f"{path}: cannot tell the format from the extension {ext or '(none)'!r}; pass a format ({', '.join(FORMATS)})")
    return fmt


def read_indicators(path: str, fmt: Optional[str] = None, kind: Optional[str] = None) -> list[Indicator]:
    """Read and validate an indicator file; raises IndicatorError naming file and line. ``kind``:
    of the values of a hash list (see :func:`read_hashes`); CSV and JSON Lines rows name their own."""
    return _check_unique(_located(path, fmt, kind))


def iter_indicators(path: str, fmt: Optional[str] = None, kind: Optional[str] = None) -> Iterator[Indicator]:
    """:func:`read_indicators` one row at a time, for inputs too large for an object per row
    (``csadetect.indicators.snapshot_tables.indicator_table``). Ids are not checked unique here (a
    dict of them held ~150 bytes a row): ``build_snapshot`` refuses a repeated id, and
    :func:`duplicate_error` finds its lines again."""
    return (row for _, row in _located(path, fmt, kind))


def duplicate_error(path: str, fmt: Optional[str], kind: Optional[str], indicator_id: str) -> IndicatorError:
    """The error :func:`read_indicators` gives for ``indicator_id`` repeated in ``path`` (its two
    first lines), found by one more pass over the file."""
    try:
        for _ in _unique(found for found in _located(path, fmt, kind) if found[1].indicator_id == indicator_id):
            pass
    except IndicatorError as exc:
        return exc
    return IndicatorError(f"{path}: duplicate indicator_id {indicator_id!r}")


def _located(path: str, fmt: Optional[str], kind: Optional[str]) -> Iterator[tuple[str, Indicator]]:
    """``(file:line, row)`` of each row of an indicator file (format and kind checked at once)."""
    fmt = format_for(path, fmt)
    if kind is not None and fmt != "hashes":
        raise IndicatorError(f"{path}: a kind is given for hash lists only ({fmt} rows name their own)")
    if fmt == "csv":
        return _csv_rows(path)
    if fmt == "jsonl":
        return _jsonl_rows(path)
    return _hash_rows(path, kind, DEFAULT_CATEGORY)


def check_output(path: str, overwrite: bool = False) -> None:
    """Refuse, before any work, an output file that cannot be written: a directory, one whose
    directory does not exist, or an existing file without ``overwrite`` (IndicatorError, one line)."""
    if os.path.isdir(path):
        raise IndicatorError(f"{path}: is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise IndicatorError(f"{path}: directory {os.path.dirname(path) or parent} does not exist")
    if os.path.lexists(path) and not overwrite:
        raise IndicatorError(f"{path} exists; pass --force to replace it")


@contextlib.contextmanager
def atomic_text(path: str, overwrite: bool = False) -> Iterator[TextIO]:
    """A UTF-8 text stream (``newline=""``) for the file ``path``, written to ``path.partial-PID``,
    flushed to disk and renamed into place only when the block ends without an error: a failure
    leaves the earlier file as it was and no half-written one. Without ``overwrite`` an existing
    file is refused (:func:`check_output`), also one made while the block ran."""
    check_output(path, overwrite)
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # unlike a rename, never replaces a file that appeared meanwhile
            except FileExistsError:
                raise IndicatorError(f"{path} exists; pass --force to replace it") from None
            except OSError:  # a filesystem without hard links
                check_output(path, overwrite)
                os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_csv(rows: Sequence[Indicator], path: str, columns: Sequence[str] = CSV_COLUMNS,
              overwrite: bool = False) -> None:
    """Write rows as CSV with ``columns`` (default exactly ``indicator_id,kind,value,category,note``),
    whole or not at all (:func:`atomic_text`); an existing file is replaced only with ``overwrite``."""
    with atomic_text(path, overwrite) as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if getattr(row, c) is None else getattr(row, c) for c in columns])


def media_rows(path: str, settings, category: str = DEFAULT_CATEGORY, embedder=None) -> tuple[list[Indicator], Optional[str]]:
    """Rows for one media file and an optional warning. Raises MediaError if it cannot be read.
    Each signal type computed from the file's content (and written by from-media) gives its rows,
    ids ``{sha256[:16]}-{kind}{suffix}``: e.g. with an ``embedder``
    (:class:`csadetect.models.embedding.EmbeddingModel`) an image also gets ``embedding`` rows
    (``model_version:base64``), one for the image and one per index-side view
    (:func:`csadetect.signals.embedding.embedding_views`). A video is hashed every
    ``match.video_indicator_seconds_per_hash`` (0, the default: every frame)."""
    hashes, pictures = hash_file(path, seconds_per_hash=settings.video_indicator_seconds_per_hash, dihedral=False,
                                 with_views=True, digests=digests(), video_bars=settings.video_bars,
                                 value=settings.value_view)
    media = Media(hashes, pictures[0][1] if pictures else None, embedder)
    name = os.path.basename(path)
    base = hashes.sha256[:16]
    rows: list[Indicator] = []
    warnings = []
    for signal in for_content(hashes.content):
        if not signal.from_media:
            continue
        rows += [Indicator(f"{base}-{signal.name}{suffix}", signal.name, value, category, note=name)
                 for suffix, value in signal.indicator_values(media, settings)]
        warning = signal.warning(hashes, settings)
        if warning:
            warnings.append(warning)
    return rows, "; ".join(warnings) or None


def from_media(
    paths: Iterable[str],
    settings=None,
    category: str = DEFAULT_CATEGORY,
    errors: Optional[list] = None,
    warnings: Optional[list] = None,
    embedder=None,
    progress=None,
) -> list[Indicator]:
    """Indicator rows from media files (:func:`media_rows`): an image gives ``pdq`` + ``md5`` +
    ``sha256`` rows (and a colour picture a second ``pdq`` row, its value channel's, ``-pdq-value``, with
    ``match.value_view``), a video (by extension) ``vpdq`` + ``md5`` + ``sha256``. Ids are
    ``sha256[:16]-<kind>[suffix]``, the note is the file name. The same file given twice yields its rows once.

    ``settings`` is a :class:`csadetect.config.settings.MatchSettings` (quality gate, vPDQ sampling).
    Failures are appended to ``errors`` as one-line ``"path: reason"`` strings and the file is
    skipped; without an ``errors`` list the first failure raises MediaError. Warnings (low PDQ
    quality; a video without a frame above the gate, which then gets md5/sha256 rows only) go
    to ``warnings`` when given; the rows are kept. With an ``embedder`` images also get
    ``embedding`` rows, the image and its index-side views (videos do not; see :func:`media_rows`). ``progress`` is called once per file.
    """
    settings = settings or MatchSettings()
    out: dict[str, Indicator] = {}
    for path in paths:
        if progress is not None:
            progress()
        try:
            rows, warning = media_rows(path, settings, category, embedder)
        except MediaError as exc:
            if errors is None:
                raise MediaError(f"{path}: {exc}") from None
            errors.append(f"{path}: {exc}")
            continue
        if warning and warnings is not None:
            warnings.append(f"{path}: {warning}")
        for row in rows:
            out.setdefault(row.indicator_id, row)
    return list(out.values())
