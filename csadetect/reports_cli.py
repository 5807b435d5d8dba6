"""``csadetect reports ...``: check provider signatures and open sealed evidence (DESIGN §6/§7, §11).

* ``reports verify --public-key PROVIDER_PUBLIC.pem PATH...`` checks each report's Ed25519
  signature; one JSON line per report ``{"report_id", "ok", "error"?}``; exit 1 if any fails.
  It never prints evidence.
* ``reports decrypt --key CENTRE_PRIVATE.pem --out DIR PATH...`` writes each report's evidence
  to ``DIR/<report_id>.<ext>`` (mode 0600); one JSON line per report. It verifies nothing by
  itself: run ``reports verify`` first.
* ``reports centre-keygen --out KEYDIR`` creates the EU Centre's X25519 key pair.

PATH is a JSON Lines (``.jsonl``/``.json``/``.ndjson``) or Parquet (``.parquet``) report file, or a
directory of them (recursive). JSON goes to stdout, human messages to stderr; a bad input gives
one line ``error: ...`` on stderr and exit code 1.
"""
from __future__ import annotations

import json
import mimetypes
import os
import re
from typing import Iterator, Optional, Sequence

from indicators.cli import _emit, _say, handled
from indicators.signing import write_private_file

JSONL_EXTENSIONS = {".jsonl", ".json", ".ndjson"}
PARQUET_EXTENSIONS = {".parquet", ".pq"}
REPORT_EXTENSIONS = JSONL_EXTENSIONS | PARQUET_EXTENSIONS

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_EXT_OVERRIDES = {
    "image/jpeg": "jpg", "image/jpg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
    "image/bmp": "bmp", "image/tiff": "tif", "video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm",
    "video/x-matroska": "mkv", "video/x-msvideo": "avi", "text/plain": "txt", "application/json": "json",
}


class ReportFileError(ValueError):
    """A report file that cannot be read; the message is one line."""


def _report_errors() -> tuple:
    from csadetect.crypto import EvidenceError, ReportSignatureError
    from indicators.signing import SigningError

    return (ReportFileError, ReportSignatureError, EvidenceError, SigningError)


_handled = handled(_report_errors)


# ------------------------------------------------------------------------------- reading


def report_files(paths: Sequence[str]) -> Iterator[str]:
    """Files given, with directories expanded (sorted, recursive, report extensions only)."""
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            found = False
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and os.path.splitext(name)[1].lower() in REPORT_EXTENSIONS:
                        found = True
                        yield os.path.join(root, name)
            if not found:
                raise ReportFileError(f"{path}: no report files (.jsonl, .json, .ndjson, .parquet) in this directory")
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


def read_reports(path: str) -> Iterator[tuple[Optional[dict], Optional[str]]]:
    """``(report, None)`` for each report in ``path``, or ``(None, reason)`` for a line that is not
    a report (the rest of the file is still read). Raises :class:`ReportFileError` when the file
    as a whole cannot be read."""
    if _is_parquet(path):
        import pyarrow.parquet as pq

        try:
            pfile = pq.ParquetFile(path)
            for batch in pfile.iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    yield row, None
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReportFileError(f"{path}: cannot read Parquet: {first}") from None
        return
    try:
        fh = open(path, "r", encoding="utf-8")
    except OSError as exc:
        raise ReportFileError(f"{path}: {exc.strerror or type(exc).__name__}") from None
    with fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    yield None, f"{path}:{lineno}: not valid JSON"
                    continue
                if not isinstance(obj, dict):
                    yield None, f"{path}:{lineno}: not a JSON object"
                    continue
                yield obj, None
        except UnicodeDecodeError:
            raise ReportFileError(f"{path}: not UTF-8 text (JSON Lines) or Parquet") from None


def _all_reports(paths: Sequence[str]) -> Iterator[tuple[Optional[dict], Optional[str]]]:
    for path in report_files(paths):
        yield from read_reports(path)


def _rid(report: Optional[dict]):
    return None if report is None else report.get("report_id")


# ------------------------------------------------------------------------------- handlers


@_handled
def cmd_verify(args) -> int:
    from csadetect.crypto import ReportSignatureError, key_id, verify_report
    from indicators.signing import load_public_key

    public = load_public_key(args.public_key)  # fail fast on a bad key
    total = failed = 0
    for report, problem in _all_reports(args.paths):
        total += 1
        if problem is None:
            try:
                verify_report(report, public)
            except ReportSignatureError as exc:
                problem = str(exc)
        if problem is None:
            _emit({"report_id": _rid(report), "ok": True})
        else:
            failed += 1
            _emit({"report_id": _rid(report), "ok": False, "error": problem})
    if not total:
        _say("error: no reports found")
        return 1
    _say(f"{total - failed} of {total} reports verify under provider key {key_id(public)}"
         + (f"; {failed} FAILED" if failed else ""))
    return 1 if failed else 0


def evidence_extension(mime: Optional[str]) -> str:
    mime = (mime or "").split(";")[0].strip().lower()
    if mime in _EXT_OVERRIDES:
        return _EXT_OVERRIDES[mime]
    guessed = mimetypes.guess_extension(mime) if mime else None
    return guessed.lstrip(".") if guessed else "bin"


@_handled
def cmd_decrypt(args) -> int:
    from csadetect.crypto import EvidenceError, load_centre_private_key, open_evidence

    key = load_centre_private_key(args.key)  # fail fast on a bad key
    os.makedirs(args.out, mode=0o700, exist_ok=True)
    total = failed = written = 0
    for report, problem in _all_reports(args.paths):
        total += 1
        rid = _rid(report)
        if problem is None and not (isinstance(rid, str) and _SAFE_ID.match(rid)):
            problem = f"report {rid!r}: report_id is not usable as a file name"
        if problem is None and not report.get("evidence_encrypted"):
            _emit({"report_id": rid, "ok": True, "out": None, "note": "no evidence in this report"})
            continue
        if problem is None:
            try:
                mime, content = open_evidence(report, key)
            except EvidenceError as exc:
                problem = str(exc)
        if problem is not None:
            failed += 1
            _emit({"report_id": rid, "ok": False, "error": problem})
            continue
        out = os.path.join(args.out, f"{rid}.{evidence_extension(mime)}")
        write_private_file(out, content)
        written += 1
        _emit({"report_id": rid, "ok": True, "out": out, "mime": mime, "bytes": len(content)})
    if not total:
        _say("error: no reports found")
        return 1
    _say(f"wrote evidence of {written} of {total} reports to {args.out} (mode 0600; signatures not checked here)"
         + (f"; {failed} FAILED" if failed else ""))
    return 1 if failed else 0


@_handled
def cmd_centre_keygen(args) -> int:
    from csadetect.crypto import centre_key_id, generate_centre_keypair

    private_path, public_path = generate_centre_keypair(args.out, overwrite=args.force)
    _say(f"wrote {private_path} (keep it secret) and {public_path}")
    _emit({"private_key": private_path, "public_key": public_path, "key_id": centre_key_id(public_path)})
    return 0


# ------------------------------------------------------------------------------- parser


def register(subparsers) -> None:
    """Add ``reports {verify,decrypt,centre-keygen}``."""
    rep = subparsers.add_parser("reports", help="verify report signatures, decrypt evidence (EU Centre side)")
    sub = rep.add_subparsers(dest="reports_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("verify", help="check the provider signature of each report, one JSON line each")
    p.add_argument("--public-key", required=True, metavar="PROVIDER_PUBLIC.pem")
    p.add_argument("paths", nargs="+", metavar="PATH", help="JSON Lines or Parquet report files, or directories")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("decrypt", help="write each report's evidence to DIR/<report_id>.<ext> (does not verify)")
    p.add_argument("--key", required=True, metavar="CENTRE_PRIVATE.pem")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("paths", nargs="+", metavar="PATH", help="JSON Lines or Parquet report files, or directories")
    p.set_defaults(func=cmd_decrypt)

    p = sub.add_parser("centre-keygen", help="create the EU Centre's X25519 key pair (centre_private.pem, centre_public.pem)")
    p.add_argument("--out", required=True, metavar="KEYDIR")
    p.add_argument("--force", action="store_true", help="replace an existing private key")
    p.set_defaults(func=cmd_centre_keygen)
