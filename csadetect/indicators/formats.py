"""Hash lists in the formats other tools write, in and out (``indicators import|export``,
``match --hashes``; docs/indicators.md has an example of each).

In (:func:`read`), each format gives validated :class:`~csadetect.indicators.rows.Indicator` rows
and, instead of stopping at the first bad row, the refused rows with their line numbers and
reasons (:class:`Imported`); the caller decides whether any refusal fails the import:

* ``csadetect``: this project's CSV (``indicator_id,kind,value`` + optional columns of
  :data:`~csadetect.indicators.rows.FIELDS`); other columns are ignored and named.
* ``jsonl``: JSON Lines with the same keys.
* ``list``: one value per line; ``#`` comments; the kind from ``kind`` (``--kind``), a header line
  (``sha256`` or ``# kind: sha256``), a ``KIND VALUE`` line (python-threatexchange's file
  exchange and ``threatexchange dataset -P -S``) or values only one kind accepts (MD5: 32 hex
  digits, SHA-1: 40). 64 hex digits (PDQ or SHA-256) are never guessed: a one-line error.
* ``threatexchange``: ``threatexchange dataset -P --csv`` (python-threatexchange
  ``cli/dataset_cmd.py``): header ``signal_type,signal_str,collab,category,tags``. ``category``
  is the collaboration's opinion: NEGATIVE_CLASS rows (false positives, test data) are refused.
* ``hma``: Hasher-Matcher-Actioner 1.x's dataset files ``simple.<INDICATOR_TYPE>.te``
  (python-threatexchange ``cli/dataset/simple_serialization.py`` ``HMASerialization``): no header,
  ``indicator,indicator_id,first_descriptor_id,added_on,labels``; the kind from the file name.
* ``vpdq-frames``: one video per file as Meta's vPDQ hasher writes it (``vpdq/expected/*.txt``):
  ``frame,quality,pdq_hex[,timestamp]`` per line; the frames whose quality reaches the gate
  become one ``vpdq`` indicator, id the file's stem.
* ``columns``: any CSV with a header, mapped with ``columns`` (``hash=col,kind=col,id=col,
  note=col,category=col,quality=col``); a row whose ``quality`` is below ``min_quality`` is refused.

Kinds are read through the signal registry: a kind's name or one of its ``aliases``
(``video_md5``, ``HASH_PDQ``, ``sha-256``, ...); values another tool serialises differently go
through ``SignalType.import_value`` (python-threatexchange's vPDQ JSON).

Out (:func:`export`): ``csadetect`` (every column, so it imports back unchanged),
``threatexchange`` (the CSV above; kinds python-threatexchange has no signal type for are
skipped and counted) and ``list`` (one kind, with a ``# kind:`` header).
"""
from __future__ import annotations

import csv
import json
import os
import re
from typing import Callable, Iterable, Iterator, Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from csadetect.config.settings import MatchSettings
from csadetect.indicators.rows import (
    DEFAULT_CATEGORY,
    AmbiguousKind,
    FIELDS,
    Indicator,
    IndicatorError,
    atomic_text,
    hash_list_values,
    kind_named,
    open_text,
    value_kind,
)
from csadetect.indicators.imported import Collector, Imported
from csadetect.indicators.snapshot_tables import Spill, rows_to_table
from csadetect.signals import SIGNAL_TYPES, SignalError, get

IMPORT_FORMATS = ("csadetect", "jsonl", "list", "threatexchange", "hma", "vpdq-frames", "columns")
EXPORT_FORMATS = ("csadetect", "threatexchange", "list")
TX_COLUMNS = ("signal_type", "signal_str", "collab", "category", "tags")  # threatexchange dataset -P --csv
HMA_COLUMNS = ("indicator", "indicator_id", "first_descriptor_id", "added_on", "labels")
TX_REFUSED_OPINIONS = {"NEGATIVE_CLASS": "a known false positive or test data, not an indicator"}
TX_OPINIONS = ("NEGATIVE_CLASS", "INVESTIGATION_SEED", "POSITIVE_CLASS")
TX_EXPORT_OPINION = "POSITIVE_CLASS"
COLUMN_ROLES = ("hash", "kind", "id", "note", "category", "source", "quality")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".txt": "list",
               ".list": "list", ".te": "hma"}
_HMA_NAME = re.compile(r"simple\.([^.]+)\.te$")


def parse_columns(text: Optional[str]) -> dict[str, str]:
    """``hash=col_a,kind=col_b`` -> ``{"hash": "col_a", "kind": "col_b"}`` (roles: :data:`COLUMN_ROLES`)."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        role, sep, column = part.partition("=")
        role, column = role.strip().lower(), column.strip()
        if not sep or not column:
            raise IndicatorError(f"--columns wants ROLE=COLUMN pairs separated by commas, not {part!r}")
        if role not in COLUMN_ROLES:
            raise IndicatorError(f"--columns: unknown role {role!r} (expected {', '.join(COLUMN_ROLES)})")
        out[role] = column
    if "hash" not in out:
        raise IndicatorError("--columns must name the hash column (hash=COLUMN)")
    return out


class _Source:
    """An input file's text, read from disk each time it is walked, never held whole (a list of 100M
    hashes is ~10 GB of text): BOM removed; IndicatorError (one line) when it cannot be opened, or
    where it is not UTF-8."""

    def __init__(self, path: str):
        self.path = path
        with open_text(path):
            pass  # a missing or unreadable file fails here, before any work

    def physical_lines(self) -> Iterator[str]:
        """The lines with their ends (``\\n``, ``\\r``, ``\\r\\n``), as the ``csv`` module reads a file."""
        with open_text(self.path) as fh:
            try:
                for number, line in enumerate(fh):
                    yield line.removeprefix("\ufeff") if number == 0 else line
            except UnicodeDecodeError:
                raise IndicatorError(f"{self.path}: not UTF-8 text") from None

    def lines(self) -> Iterator[str]:
        """The lines as ``str.splitlines`` gives them of the whole text (which also ends a line at
        ``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``, ``\\u2028``, ``\\u2029``)."""
        for line in self.physical_lines():
            yield from line.splitlines()


def _csv_rows(path: str, text: _Source) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank CSV record."""
    reader = csv.reader(text.physical_lines())
    line = 1
    try:
        for record in reader:
            if any(field.strip() for field in record):
                yield line, record
            line = reader.line_num + 1
    except csv.Error as exc:
        raise IndicatorError(f"{path}:{reader.line_num}: bad CSV ({exc})") from None


def _header(path: str, text: _Source) -> list[str]:
    for _, record in _csv_rows(path, text):
        return [h.strip() for h in record]
    raise IndicatorError(f"{path}: empty file")


def detect_format(path: str, text: "_Source", columns: Optional[dict] = None) -> str:
    """The import format of a file from its extension and, for CSV, its header."""
    name = os.path.basename(path)
    if _HMA_NAME.search(name):
        return "hma"
    ext = _EXTENSIONS.get(os.path.splitext(name)[1].lower())
    if ext is None:
        raise IndicatorError(f"{path}: cannot tell the format from the name; pass --format ({', '.join(IMPORT_FORMATS)})")
    if ext != "csv":
        return ext
    if columns:
        return "columns"
    header = {h.lower() for h in _header(path, text)}
    if {"signal_type", "signal_str"} <= header:
        return "threatexchange"
    if {"indicator_id", "kind", "value"} <= header:
        return "csadetect"
    raise IndicatorError(f"{path}: a CSV header without indicator_id,kind,value or signal_type,signal_str; "
                         "pass --columns hash=COLUMN[,kind=COLUMN,...]")


def kind_of(text: str, what: str) -> str:
    """The kind ``text`` names (a kind or an alias); IndicatorError naming ``what`` otherwise."""
    kind = kind_named(text)
    if kind is None:
        raise IndicatorError(f"{what} {text.strip()!r} is not a kind csadetect matches ({', '.join(SIGNAL_TYPES)})")
    return kind


def _import_value(kind: str, value: str, settings: MatchSettings) -> str:
    try:
        return get(kind).import_value(value, settings)
    except SignalError as exc:
        raise IndicatorError(str(exc)) from None


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


# ------------------------------------------------------------------------------------- readers


def _full_rows(records, header: list, rows: "Collector"):
    """``(line, record)`` for each CSV record with as many fields as ``header``; any other is
    refused with its line number."""
    for line, record in records:
        if len(record) != len(header):
            rows.refuse(line, f"{len(record)} fields, the header has {len(header)}")
            continue
        yield line, record


def _first_row(path: str, records) -> list:
    """The first row of a CSV (stripped names); IndicatorError when the file is empty."""
    try:
        _, header = next(records)
    except StopIteration:
        raise IndicatorError(f"{path}: empty file") from None
    return [h.strip() for h in header]


def _read_csadetect(path, text, rows: Collector, defaults: dict, **_) -> None:
    records = _csv_rows(path, text)
    header = _first_row(path, records)
    missing = [c for c in ("indicator_id", "kind", "value") if c not in header]
    if missing:
        raise IndicatorError(f"{path}:1: missing column {missing[0]!r} (the header must include indicator_id,kind,value)")
    rows.out.ignored_columns = tuple(h for h in header if h not in FIELDS)
    for line, record in _full_rows(records, header, rows):
        fields = {h: v for h, v in zip(header, record) if h in FIELDS}
        rows.add(line, {**defaults, **{k: v for k, v in fields.items() if v != "" or k in ("indicator_id", "kind", "value")}})


def _read_jsonl(path, text, rows: Collector, defaults: dict, **_) -> None:
    for line, body in enumerate(text.lines(), 1):
        if not body.strip():
            continue
        try:
            record = json.loads(body)
        except json.JSONDecodeError as exc:
            rows.refuse(line, f"invalid JSON ({exc.msg})")
            continue
        if not isinstance(record, dict):
            rows.refuse(line, "expected a JSON object")
            continue
        unknown = [k for k in record if k not in FIELDS]
        bad = [k for k, v in record.items() if v is not None and not isinstance(v, str)]
        if unknown:
            rows.refuse(line, f"unknown key {unknown[0]!r} (allowed: {','.join(FIELDS)})")
        elif bad:
            rows.refuse(line, f"{bad[0]} must be a string")
        elif any(k not in record for k in ("indicator_id", "kind", "value")):
            rows.refuse(line, f"missing key {next(k for k in ('indicator_id', 'kind', 'value') if k not in record)!r}")
        else:
            rows.add(line, {**defaults, **record})


def _read_list(path, text, rows: Collector, defaults: dict, kind: Optional[str], settings: MatchSettings, **_) -> None:
    stem = _stem(path)
    for line, list_kind, body in hash_list_values(path, enumerate(text.lines(), 1), kind):
        first, _, rest = body.partition(" ")
        row_kind = kind_named(first) if rest.strip() else None
        value = rest.strip() if row_kind else body
        try:
            row_kind = row_kind or list_kind or value_kind(value, f"{path}:{line}")  # ambiguous: the import fails
            value = _import_value(row_kind, value, settings)
        except AmbiguousKind:
            raise
        except IndicatorError as exc:
            rows.refuse(line, str(exc).removeprefix(f"{path}:{line}: "))
            continue
        rows.add_imported(line, {**defaults, "indicator_id": f"{stem}-{line}", "kind": row_kind, "value": value})


def _read_threatexchange(path, text, rows: Collector, defaults: dict, settings: MatchSettings, **_) -> None:
    records = _csv_rows(path, text)
    try:
        _, header = next(records)
    except StopIteration:
        raise IndicatorError(f"{path}: empty file") from None
    header = [h.strip().lower() for h in header]
    missing = [c for c in ("signal_type", "signal_str") if c not in header]
    if missing:
        raise IndicatorError(f"{path}:1: missing column {missing[0]!r} (threatexchange dataset -P --csv writes "
                             f"{','.join(TX_COLUMNS)})")
    rows.out.ignored_columns = tuple(h for h in header if h not in TX_COLUMNS)
    stem = _stem(path)
    at = {name: i for i, name in enumerate(header)}  # a repeated column: its last field counts, as in a dict
    kinds: dict[str, str] = {}  # signal_type as written -> kind (a file names few)
    blank = len(header)  # the position of "" in each row's fields, for a column the header lacks
    for line, record in _full_rows(records, header, rows):
        field = [v.strip() for v in record] + [""]
        category = field[at.get("category", blank)]
        opinion = category.upper()
        if opinion in TX_REFUSED_OPINIONS:
            rows.refuse(line, f"category {opinion}: {TX_REFUSED_OPINIONS[opinion]}")
            continue
        if opinion and opinion not in TX_OPINIONS:
            rows.refuse(line, f"unknown category {category!r} (expected one of {', '.join(TX_OPINIONS)})")
            continue
        signal_type = field[at["signal_type"]]
        try:
            kind = kinds.get(signal_type) or kinds.setdefault(signal_type, kind_of(signal_type, "signal_type"))
            value = _import_value(kind, field[at["signal_str"]], settings)
        except IndicatorError as exc:
            rows.refuse(line, str(exc))
            continue
        collab, tags = field[at.get("collab", blank)], field[at.get("tags", blank)]
        note = "; ".join(p for p in (f"collab {collab}" if collab else "", opinion,
                                     f"tags {tags}" if tags else "") if p)
        rows.add_imported(line, {**defaults, "indicator_id": f"{stem}-{line}", "kind": kind, "value": value,
                                 "source": defaults.get("source") or collab or None, "note": note})


def _read_hma(path, text, rows: Collector, defaults: dict, kind: Optional[str], settings: MatchSettings, **_) -> None:
    found = _HMA_NAME.search(os.path.basename(path))
    if kind is None:
        if not found:
            raise IndicatorError(f"{path}: an HMA dataset file is named simple.<INDICATOR_TYPE>.te; pass --kind")
        kind = kind_of(found.group(1), f"{path}: indicator type")
    for line, record in _csv_rows(path, text):
        if len(record) != len(HMA_COLUMNS):
            rows.refuse(line, f"{len(record)} fields, expected {len(HMA_COLUMNS)} ({','.join(HMA_COLUMNS)})")
            continue
        field = dict(zip(HMA_COLUMNS, (v.strip() for v in record)))
        try:
            value = _import_value(kind, field["indicator"], settings)
        except IndicatorError as exc:
            rows.refuse(line, str(exc))
            continue
        note = "; ".join(p for p in (f"added_on {field['added_on']}" if field["added_on"] else "",
                                     f"labels {field['labels']}" if field["labels"] else "") if p)
        rows.add_imported(line, {**defaults, "indicator_id": field["indicator_id"], "kind": kind, "value": value,
                                 "note": note})


def _read_columns(path, text, rows: Collector, defaults: dict, kind: Optional[str], settings: MatchSettings,
                  columns: dict, min_quality: int, **_) -> None:
    records = _csv_rows(path, text)
    header = _first_row(path, records)
    absent = [c for c in columns.values() if c not in header]
    if absent:
        raise IndicatorError(f"{path}:1: no column {absent[0]!r} (the header has {','.join(header)})")
    rows.out.ignored_columns = tuple(h for h in header if h not in columns.values())
    stem = _stem(path)
    for line, record in _full_rows(records, header, rows):
        field = dict(zip(header, (v.strip() for v in record)))
        get_ = lambda role: field.get(columns[role], "") if role in columns else ""  # noqa: E731
        value = get_("hash")
        try:
            row_kind = kind_of(get_("kind"), "kind") if get_("kind") else kind or value_kind(value, f"{path}:{line}")
        except AmbiguousKind:
            raise  # ambiguous values: the whole import fails, nothing is guessed
        except IndicatorError as exc:
            rows.refuse(line, str(exc).removeprefix(f"{path}:{line}: "))
            continue
        quality = get_("quality")
        if quality:
            if not quality.isdigit() or int(quality) > 100:
                rows.refuse(line, f"quality {quality!r} is not a number from 0 to 100")
                continue
            if int(quality) < min_quality:
                rows.refuse(line, f"quality {quality} is below {min_quality} (--min-quality; the match quality gate)")
                continue
        try:
            value = _import_value(row_kind, value, settings)
        except IndicatorError as exc:
            rows.refuse(line, str(exc))
            continue
        record_ = {**defaults, "indicator_id": get_("id") or f"{stem}-{line}", "kind": row_kind, "value": value}
        for role in ("note", "category", "source"):
            if get_(role):
                record_[role] = get_(role)
        rows.add_imported(line, record_)


def _read_vpdq_frames(path, text, rows: Collector, defaults: dict, settings: MatchSettings, **_) -> None:
    kind = kind_of("vpdq", "kind")
    good, first = [], None
    for line, record in _csv_rows(path, text):
        first = first or line
        fields = [v.strip() for v in record]
        if len(fields) not in (3, 4) or not fields[0].isdigit() or not fields[1].isdigit():
            rows.refuse(line, "expected frame,quality,pdq_hex[,timestamp]")
            continue
        try:
            frame = get(kind).validate(fields[2])
        except SignalError as exc:
            rows.refuse(line, str(exc))
            continue
        if int(fields[1]) >= settings.quality_gate:
            good.append(frame)
    if first is None:
        raise IndicatorError(f"{path}: empty file")
    if not good:
        rows.refuse(first, f"no frame reaches quality {settings.quality_gate} (the match quality gate)")
        return
    rows.add(first, {**defaults, "indicator_id": _stem(path), "kind": kind, "value": " ".join(good),
                     "note": os.path.basename(path)})


_READERS = {"csadetect": _read_csadetect, "jsonl": _read_jsonl, "list": _read_list,
            "threatexchange": _read_threatexchange, "hma": _read_hma, "vpdq-frames": _read_vpdq_frames,
            "columns": _read_columns}
_ALIASES = {"csv": "csadetect", "hashes": "list", "tx": "threatexchange"}


def read(path: str, fmt: Optional[str] = None, kind: Optional[str] = None, columns: Optional[dict] = None,
         category: Optional[str] = None, source: Optional[str] = None, settings: Optional[MatchSettings] = None,
         min_quality: Optional[int] = None) -> Imported:
    """Read a hash list or indicator file in ``fmt`` (default: :func:`detect_format`). Bad rows
    are collected in ``Imported.refused``; a file that cannot be read at all, or values whose kind
    is ambiguous without ``kind``, raise IndicatorError (one line). ``category``/``source`` fill
    rows that name none; ``min_quality`` (default: the match quality gate) applies to a quality
    column."""
    settings = settings or MatchSettings()
    fmt = _ALIASES.get(fmt, fmt)
    if fmt is not None and fmt not in _READERS:
        raise IndicatorError(f"unknown format {fmt!r} (expected one of {', '.join(IMPORT_FORMATS)})")
    if kind is not None:
        kind = kind_of(kind, "--kind")
    if columns and fmt not in (None, "columns"):
        raise IndicatorError(f"--columns is for CSV files with their own header (format columns), not {fmt}")
    text = _Source(path)
    fmt = fmt or detect_format(path, text, columns)
    if fmt == "columns" and not columns:
        raise IndicatorError("format columns needs --columns hash=COLUMN[,kind=COLUMN,id=COLUMN,note=COLUMN,...]")
    if kind is not None and fmt in ("csadetect", "jsonl", "threatexchange"):
        raise IndicatorError(f"{path}: --kind is for hash lists ({fmt} rows name their own kind)")
    imported = Imported(path, fmt)
    defaults = {k: v for k, v in (("category", category), ("source", source)) if v}
    merge = fmt in ("list", "threatexchange")  # no ids of their own: a repeated value is one indicator
    with Spill() as spill:
        rows = Collector(imported, merge, spill)
        _READERS[fmt](path, text, rows, defaults, kind=kind, settings=settings, columns=columns or {},
                      min_quality=settings.quality_gate if min_quality is None else min_quality)
        rows.finish()
    return imported


def read_probes(path: str, fmt: Optional[str] = None, kind: Optional[str] = None, columns: Optional[dict] = None,
                settings: Optional[MatchSettings] = None) -> Imported:
    """A partner's hash list for ``match --hashes``: :func:`read` with nothing below the quality
    gate refused (matching applies the gate to media, not to values it is sent). A list without a
    value raises IndicatorError: matching nothing is not "no match"."""
    listed = read(path, fmt, kind, columns, settings=settings, min_quality=0)
    if not listed.table.num_rows and not listed.refused:
        raise IndicatorError(f"{path}: no hash values to match")
    return listed


# ------------------------------------------------------------------------------------- writers


def export(rows: Iterable[Indicator], fmt: str, out, kind: Optional[str] = None,
           include_disabled: bool = False) -> dict:
    """Write ``rows`` to the text stream ``out`` in ``fmt`` (:data:`EXPORT_FORMATS`); returns
    ``{"written": n, "skipped": {kind: n}}`` (rows the format cannot carry). Only active rows unless
    ``include_disabled`` (``csadetect`` format only: the others have no column for it)."""
    table = rows_to_table(list(rows))
    return export_batches(lambda: iter([table]), fmt, out, kind, include_disabled)


def _strings(column: pa.ChunkedArray) -> list:
    """A string column as a list of str (through numpy: ``to_pylist`` makes a scalar per value, 8x slower)."""
    return column.to_numpy(zero_copy_only=False).tolist()


def export_batches(batches: Callable[[], Iterator[pa.Table]], fmt: str, out, kind: Optional[str] = None,
                   include_disabled: bool = False) -> dict:
    """:func:`export` of the rows that ``batches()`` gives as Arrow tables (in SCHEMA), written a
    batch at a time from their columns: a snapshot of any size is never held whole, nor as an
    object per row. ``batches`` is called once, or twice for a list without ``kind`` (first to learn
    which kinds there are: a list holds one)."""
    fmt = _ALIASES.get(fmt, fmt)
    if fmt not in EXPORT_FORMATS:
        raise IndicatorError(f"unknown export format {fmt!r} (expected one of {', '.join(EXPORT_FORMATS)})")
    if include_disabled and fmt != "csadetect":
        raise IndicatorError(f"disabled rows can only be exported in the csadetect format ({fmt} has no column for them)")
    if kind is not None:
        kind = kind_of(kind, "--kind")

    def kept() -> Iterator[pa.Table]:
        for table in batches():
            if not include_disabled:
                table = table.filter(pc.is_null(table["disabled_at"]))
            if kind is not None:
                table = table.filter(pc.equal(table["kind"], kind))
            if table.num_rows:
                yield table

    skipped: dict[str, int] = {}
    written = 0
    if fmt == "csadetect":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FIELDS)
        for table in kept():
            writer.writerows(zip(*(_strings(pc.fill_null(table[f], "")) for f in FIELDS)))
            written += table.num_rows
    elif fmt == "threatexchange":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(TX_COLUMNS)
        for table in kept():
            for row_kind, value, source, category in zip(*(_strings(table[f]) for f in
                                                           ("kind", "value", "source", "category"))):
                signal = get(row_kind)
                value = signal.export_value(value)
                if value is None:
                    skipped[row_kind] = skipped.get(row_kind, 0) + 1
                    continue
                tags = "" if category == DEFAULT_CATEGORY else category
                writer.writerow([signal.threatexchange, value, source, TX_EXPORT_OPINION, tags])
                written += 1
    else:
        kinds = [kind] if kind is not None else sorted({k for t in kept() for k in pc.unique(t["kind"]).to_pylist()})
        if len(kinds) > 1:
            raise IndicatorError(f"a list holds one kind and this snapshot has {', '.join(kinds)}; pass --kind")
        if kinds:
            out.write(f"# kind: {kinds[0]}\n")
            for table in kept():
                values = _strings(table["value"])
                out.write("".join(v + "\n" for v in values))
                written += len(values)
    return {"written": written, "skipped": skipped}


def export_file(rows: "Sequence[Indicator] | Callable[[], Iterator[pa.Table]]", fmt: str, path: str,
                kind: Optional[str] = None, include_disabled: bool = False, overwrite: bool = False) -> dict:
    """:func:`export` (or, given a function giving Arrow batches, :func:`export_batches`) to the file
    ``path``, written whole and then renamed into place (:func:`~csadetect.indicators.rows.atomic_text`:
    an error part way, a snapshot file that fails its checksum say, leaves no file); an existing file
    is replaced only with ``overwrite`` (IndicatorError otherwise)."""
    with atomic_text(path, overwrite) as fh:
        if callable(rows):
            return export_batches(rows, fmt, fh, kind, include_disabled)
        return export(rows, fmt, fh, kind, include_disabled)
