"""Report files as the pipeline writes them: JSON Lines (``.jsonl``, ``.json``, ``.ndjson``) or
Parquet (``.parquet``, ``.pq``), directories of them, or ``-`` (JSON Lines on standard input). Read by ``csadetect reports`` and the
review console's ingest; a file that cannot be read raises :class:`ReportFileError` (one line).

Lines are parsed by :func:`csadetect.reports.crypto.loads_strict`: a line whose JSON repeats a key
(at any depth) is not a report (its reason says so, without the key or value), because a signature
checked over one of its values would vouch for a field that another reader shows differently.
A Parquet file whose schema repeats a column or struct field name is refused as a whole."""
from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Iterator, Optional, Sequence

import pyarrow as pa

from csadetect.core import fs, parquet
from csadetect.reports.crypto import DuplicateKeyError, loads_strict

JSONL_EXTENSIONS = {".jsonl", ".json", ".ndjson"}
PARQUET_EXTENSIONS = {".parquet", ".pq"}
REPORT_EXTENSIONS = JSONL_EXTENSIONS | PARQUET_EXTENSIONS
STDIN = "-"  # a path that means standard input (JSON Lines)


class ReportFileError(ValueError):
    """A report file that cannot be read; the message is one line."""


def report_files(paths: Sequence[str]) -> Iterator[str]:
    """Files given, with directories expanded (sorted, recursive, report extensions only); ``-``
    (standard input, JSON Lines) passes as it is."""
    for path in paths:
        path = os.fspath(path)
        if path == STDIN:
            yield path
        elif os.path.isdir(path):
            files = fs.files_under(path, REPORT_EXTENSIONS)
            first = next(files, None)
            if first is None:
                raise ReportFileError(f"{path}: no report files (.jsonl, .json, .ndjson, .parquet) in this directory")
            yield first
            yield from files
        elif not os.path.exists(path):
            raise ReportFileError(f"{path}: no such file or directory")
        else:
            yield path


def _is_parquet(path: str) -> bool:
    if os.path.splitext(path)[1].lower() in PARQUET_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


def _repeated_name(fields) -> bool:
    """Whether any struct level of an Arrow schema (or list of fields) repeats a field name."""
    fields = list(fields)
    if len({f.name for f in fields}) != len(fields):
        return True
    for field in fields:
        kind = field.type
        while pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            kind = kind.value_type
        if pa.types.is_map(kind):
            kind = kind.item_type
        if pa.types.is_struct(kind) and _repeated_name(kind[i] for i in range(kind.num_fields)):
            return True
    return False


def read_reports(path: str) -> Iterator[tuple[Optional[dict], Optional[str]]]:
    """``(report, None)`` for each report in ``path``, or ``(None, reason)`` for a line that is not
    a report (the rest of the file is still read). Raises :class:`ReportFileError` when the file
    as a whole cannot be read."""
    if path != STDIN and _is_parquet(path):
        try:
            pfile = parquet.open_file(path)
            if _repeated_name(pfile.schema_arrow):
                raise ReportFileError(f"{path}: a column or field name is repeated (refused: ambiguous signed data)")
            for batch in pfile.iter_batches(1024):
                for row in batch.to_pylist():
                    yield row, None
        except ReportFileError:
            raise
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReportFileError(f"{path}: cannot read Parquet: {first}") from None
        return
    try:
        fh = (contextlib.nullcontext(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")) if path == STDIN
              else open(path, "r", encoding="utf-8"))
    except OSError as exc:
        raise ReportFileError(f"{path}: {exc.strerror or type(exc).__name__}") from None
    with fh as lines:
        try:
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    obj = loads_strict(line)
                except DuplicateKeyError:
                    yield None, f"{path}:{lineno}: duplicate key in a JSON object (refused: a signed report has one value per field)"
                    continue
                except ValueError:
                    yield None, f"{path}:{lineno}: not valid JSON"
                    continue
                if not isinstance(obj, dict):
                    yield None, f"{path}:{lineno}: not a JSON object"
                    continue
                yield obj, None
        except UnicodeDecodeError:
            raise ReportFileError(f"{path}: not UTF-8 text (JSON Lines) or Parquet") from None
