"""``csadetect reports ...``: check provider signatures and open sealed evidence (DESIGN §6/§7, §11).

* ``reports verify --public-key PROVIDER_PUBLIC.pem PATH...`` checks each report's Ed25519
  signature; one JSON line per report ``{"report_id", "ok", "error"?}``; exit 1 if any fails.
  It never prints evidence.
* ``reports decrypt --key CENTRE_PRIVATE.pem --out DIR PATH...`` writes each report's evidence
  to ``DIR/<report_id>.<ext>`` (mode 0600); one JSON line per report. It verifies nothing by
  itself: run ``reports verify`` first.
* ``reports centre-keygen --out KEYDIR`` creates the EU Centre's X25519 key pair.
* ``reports export-ncmec --reporter-email EMAIL [--out -|FILE.xml|DIR] [--public-key PEM] PATH...``
  writes each report as NCMEC CyberTipline XML (:mod:`csadetect.reports.ncmec`, docs/ncmec.md): to stdout
  (default) or ``FILE.xml`` as one ``<cybertiplineExport>`` document, or to ``DIR/<report_id>.xml``,
  one ``<cybertiplineSubmission>`` each. Hashes and metadata only: evidence is never decrypted or
  included. All or nothing: a report that cannot be exported (or, with ``--public-key``, does not
  verify) is named on stderr and nothing is written. Rows repeated across files (the pipeline
  writes each report as JSON Lines and Parquet) are exported once.

PATH is a JSON Lines (``.jsonl``/``.json``/``.ndjson``) or Parquet (``.parquet``) report file, or a
directory of them (recursive: a report directory's every run, ``<report_dir>/<RUN_ID>/``). With
``--run RUN_ID`` a directory PATH stands for that run's directory only (one line naming the runs
there are when it has no such run; :mod:`csadetect.core.runs`). JSON goes to stdout, human messages to stderr; a bad input gives
one line ``error: ...`` on stderr and exit code 1.
"""
from __future__ import annotations

import mimetypes
import os
import sys
from typing import Iterator, Optional, Sequence

import yaml

from csadetect.cli.output import emit, handled, say
from csadetect.core import runs
from csadetect.core.ids import is_safe_id
from csadetect.core.keys import SigningError, load_public_key, write_private_file
from csadetect.reports import ncmec
from csadetect.reports.files import ReportFileError, read_reports, report_files
from csadetect.reports.crypto import (
    EvidenceError, ReportSignatureError, canonical_bytes, centre_key_id, generate_centre_keypair, key_id,
    load_centre_private_key, open_evidence, verify_report,
)
from csadetect.reports.ncmec import NcmecExportError

_EXT_OVERRIDES = {
    "image/jpeg": "jpg", "image/jpg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
    "image/bmp": "bmp", "image/tiff": "tif", "image/heic": "heic", "image/heif": "heif", "image/avif": "avif",
    "video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm", "video/x-matroska": "mkv",
    "video/x-msvideo": "avi", "text/plain": "txt", "application/json": "json",
}


def _report_errors() -> tuple:
    return (ReportFileError, ReportSignatureError, EvidenceError, SigningError, NcmecExportError, runs.RunError)


_handled = handled(_report_errors)


# ------------------------------------------------------------------------------- reading


def chosen_paths(paths: Sequence[str], run: Optional[str]) -> list:
    """``paths``, or with a chosen ``run`` each directory's run directory (:func:`csadetect.core.runs.choose`)."""
    if not run:
        return list(paths)
    chosen = []
    for path in paths:
        if not os.path.isdir(path):
            raise ReportFileError(f"{path}: --run chooses a run under a report directory; this is not a directory")
        chosen.append(runs.choose(path, run, "report directory"))
    return chosen


def _all_reports(paths: Sequence[str], run: Optional[str] = None,
                 repeats: Optional[list] = None) -> Iterator[tuple[Optional[dict], Optional[str]]]:
    """Every report row of ``paths`` once: a row repeated to the byte (the pipeline writes each
    report as JSON Lines and Parquet) is skipped and counted in ``repeats`` (a one-item list); the
    same report id with other content is a problem row."""
    seen = {}
    for path in report_files(chosen_paths(paths, run)):
        for report, problem in read_reports(path):
            rid = _rid(report)
            if problem is None and isinstance(rid, str):
                fingerprint = (canonical_bytes(report), report.get("signature"))
                if rid in seen:
                    if seen[rid] == fingerprint:
                        if repeats is not None:
                            repeats[0] += 1
                        continue
                    problem = f"report {rid}: appears more than once with different content"
                else:
                    seen[rid] = fingerprint
            yield report, problem


def _repeated(repeats: list) -> str:
    return f" ({repeats[0]} repeated rows skipped)" if repeats[0] else ""


def _rid(report: Optional[dict]):
    return None if report is None else report.get("report_id")


# ------------------------------------------------------------------------------- handlers


@_handled
def cmd_verify(args) -> int:
    public = load_public_key(args.public_key)  # fail fast on a bad key
    total = failed = 0
    repeats = [0]
    for report, problem in _all_reports(args.paths, args.run, repeats):
        total += 1
        if problem is None:
            try:
                verify_report(report, public)
            except ReportSignatureError as exc:
                problem = str(exc)
        if problem is None:
            emit({"report_id": _rid(report), "ok": True})
        else:
            failed += 1
            emit({"report_id": _rid(report), "ok": False, "error": problem})
    if not total:
        say("error: no reports found")
        return 1
    say(f"{total - failed} of {total} reports verify under provider key {key_id(public)}" + _repeated(repeats)
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
    key = load_centre_private_key(args.key)  # fail fast on a bad key
    os.makedirs(args.out, mode=0o700, exist_ok=True)
    total = failed = written = 0
    repeats = [0]
    for report, problem in _all_reports(args.paths, args.run, repeats):
        total += 1
        rid = _rid(report)
        if problem is None and not is_safe_id(rid):
            problem = f"report {rid!r}: report_id is not usable as a file name"
        if problem is None and not report.get("evidence_encrypted"):
            emit({"report_id": rid, "ok": True, "out": None, "note": "no evidence in this report"})
            continue
        if problem is None:
            try:
                mime, content = open_evidence(report, key)
            except EvidenceError as exc:
                problem = str(exc)
        if problem is not None:
            failed += 1
            emit({"report_id": rid, "ok": False, "error": problem})
            continue
        out = os.path.join(args.out, f"{rid}.{evidence_extension(mime)}")
        if os.path.exists(out) and not args.force:  # a rerun: the same evidence is left as it is
            with open(out, "rb") as fh:
                same = fh.read() == content
            if not same:
                failed += 1
                emit({"report_id": rid, "ok": False, "error": f"{out} exists with other content; pass --force to "
                                                                 "replace it"})
                continue
        else:
            write_private_file(out, content)
        written += 1
        emit({"report_id": rid, "ok": True, "out": out, "mime": mime, "bytes": len(content)})
    if not total:
        say("error: no reports found")
        return 1
    say(f"wrote evidence of {written} of {total} reports to {args.out} (mode 0600; signatures not checked here)"
         + _repeated(repeats) + (f"; {failed} FAILED" if failed else ""))
    return 1 if failed else 0


@_handled
def cmd_centre_keygen(args) -> int:
    private_path, public_path = generate_centre_keypair(args.out, overwrite=args.force)
    say(f"wrote {private_path} (keep it secret) and {public_path}")
    emit({"private_key": private_path, "public_key": public_path, "key_id": centre_key_id(public_path)})
    return 0


def _read_reporter_file(path: str) -> dict:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ReportFileError(f"{path}: not a YAML or JSON reporter file") from None
    if not isinstance(data, dict):
        raise ReportFileError(f"{path}: a reporter file is a mapping of {', '.join(ncmec.REPORTER_KEYS)}")
    return data


def _reporter_from_args(args) -> dict:
    """The reporting person: ``--reporter-file`` first, then the single options over it."""
    values = _read_reporter_file(args.reporter_file) if args.reporter_file else {}
    if args.reporter_name:
        values.pop("first_name", None)
        values.pop("last_name", None)
        values.update(ncmec.split_name(args.reporter_name))
    for key, value in (("email", args.reporter_email), ("contact_email", args.contact_email),
                       ("legal_url", args.legal_url)):
        if value:
            values[key] = value
    return ncmec.reporter_from(values)


def _public_services(args) -> dict:
    both = sorted(set(args.public_service) & set(args.private_service))
    if both:
        raise NcmecExportError(f"service(s) {', '.join(both)} given as both public and private")
    return {**{s: True for s in args.public_service}, **{s: False for s in args.private_service}}


def _out_mode(out: str) -> str:
    if out == "-":
        return "stdout"
    if os.path.isdir(out) or out.endswith(("/", os.sep)) or not out.lower().endswith(".xml"):
        return "dir"
    return "file"


def _export_one(report: dict, public, reporter: dict, services: dict):
    """``(submission element, document bytes)`` of one report; raises the one-line errors."""
    if public is not None:
        verify_report(report, public)
    element = ncmec.submission(report, reporter, public_services=services)
    xml = ncmec.serialise(element)
    ncmec.validate_xml(xml, ncmec.report_label(report))
    return element, xml


def _export_all(paths, public, reporter: dict, services: dict, run: Optional[str] = None):
    """Every distinct report exported: ``(exports, failures, total rows, duplicate rows)``;
    ``exports`` is a list of ``(report_id, element, xml)``."""
    exports, failures, repeats = [], [], [0]
    total = 0
    for report, problem in _all_reports(paths, run, repeats):
        total += 1
        if problem is not None:
            failures.append(problem)
            continue
        rid = _rid(report)
        try:
            element, xml = _export_one(report, public, reporter, services)
        except (ReportSignatureError, NcmecExportError) as exc:
            failures.append(str(exc))
            continue
        exports.append((rid, element, xml))
    return exports, failures, total + repeats[0], repeats[0]  # rows read, rows repeated


def _existing_exports(out: str, exports: list) -> list:
    """The files :func:`_write_exports` would replace (none for stdout)."""
    mode = _out_mode(out)
    if mode == "dir":
        return [p for p in (os.path.join(out, f"{rid}.xml") for rid, _, _ in exports) if os.path.exists(p)]
    return [out] if mode == "file" and os.path.exists(out) else []


def _write_exports(out: str, exports: list) -> str:
    """Write the documents; returns a description of where they went."""
    mode = _out_mode(out)
    if mode == "dir":
        os.makedirs(out, mode=0o700, exist_ok=True)
        for rid, _, xml in exports:
            write_private_file(os.path.join(out, f"{rid}.xml"), xml)
        return f"{out}/<report_id>.xml"
    batch = ncmec.batch_document([element for _, element, _ in exports])
    if mode == "file":
        write_private_file(out, batch)
        return out
    sys.stdout.buffer.write(batch)
    sys.stdout.flush()
    return "stdout"


@_handled
def cmd_export_ncmec(args) -> int:
    reporter = _reporter_from_args(args)  # fail fast on a bad reporter, services or key
    services = _public_services(args)
    public = load_public_key(args.public_key) if args.public_key else None
    exports, failures, total, duplicates = _export_all(args.paths, public, reporter, services, args.run)
    if not total:
        say("error: no reports found")
        return 1
    if failures:
        for failure in failures:
            say("error: " + " ".join(str(failure).split()))  # one line, whatever a report id holds
        say(f"nothing written: {len(failures)} of {total} report rows refused")
        return 1
    existing = [] if args.force else _existing_exports(args.out, exports)
    if existing:  # all or nothing: an earlier export is not replaced file by file
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise NcmecExportError(f"{existing[0]} exists{more}; pass --force to replace, or choose another --out")
    where = _write_exports(args.out, exports)
    checked = f"signatures verified under provider key {key_id(public)}" if public is not None \
        else "signatures NOT checked (use --public-key)"
    say(f"exported {len(exports)} reports as CyberTipline XML to {where}"
         + (f" ({duplicates} repeated rows skipped)" if duplicates else "")
         + f"; {checked}; no evidence included: upload the files through the CyberTipline API")
    return 0


# ------------------------------------------------------------------------------- parser


def register(subparsers) -> None:
    """Add ``reports {verify,decrypt,centre-keygen,export-ncmec}``."""
    rep = subparsers.add_parser("reports", help="verify report signatures, decrypt evidence (EU Centre side)")
    sub = rep.add_subparsers(dest="reports_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("verify", help="check the provider signature of each report, one JSON line each")
    p.add_argument("--public-key", required=True, metavar="PROVIDER_PUBLIC.pem")
    p.add_argument("paths", nargs="+", metavar="PATH", help="JSON Lines or Parquet report files, or directories")
    p.add_argument("--run", default=None, metavar="RUN_ID",
                   help="only this run of each report directory (default: every run)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("decrypt", help="write each report's evidence to DIR/<report_id>.<ext> (does not verify)")
    p.add_argument("--key", required=True, metavar="CENTRE_PRIVATE.pem")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--force", action="store_true",
                   help="replace a DIR/<report_id>.<ext> that holds other content (the same evidence is left as it is)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="JSON Lines or Parquet report files, or directories")
    p.add_argument("--run", default=None, metavar="RUN_ID",
                   help="only this run of each report directory (default: every run)")
    p.set_defaults(func=cmd_decrypt)

    p = sub.add_parser("centre-keygen", help="create the EU Centre's X25519 key pair (centre_private.pem, centre_public.pem)")
    p.add_argument("--out", required=True, metavar="KEYDIR")
    p.add_argument("--force", action="store_true", help="replace an existing private key")
    p.set_defaults(func=cmd_centre_keygen)

    p = sub.add_parser("export-ncmec",
                       help="write reports as NCMEC CyberTipline XML (hashes and metadata, no evidence)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="JSON Lines or Parquet report files, or directories")
    p.add_argument("--run", default=None, metavar="RUN_ID",
                   help="only this run of each report directory (default: every run)")
    p.add_argument("--out", default="-", metavar="-|FILE.xml|DIR",
                   help="- (default): one <cybertiplineExport> document on stdout; FILE.xml: the same in a file; "
                        "DIR: DIR/<report_id>.xml, one <cybertiplineSubmission> per report (files mode 0600)")
    p.add_argument("--force", action="store_true", help="replace an existing FILE.xml or DIR/<report_id>.xml")
    p.add_argument("--reporter-email", metavar="EMAIL", help="the reporting person NCMEC contacts (required, "
                   "here or in --reporter-file)")
    p.add_argument("--reporter-name", metavar="NAME", help="the reporting person's name (first word = first name)")
    p.add_argument("--contact-email", metavar="EMAIL", help="a contact person's email, if not the reporting person")
    p.add_argument("--legal-url", metavar="URL", help="the provider's page for law enforcement requests")
    p.add_argument("--reporter-file", metavar="FILE",
                   help="YAML/JSON with email, first_name, last_name, contact_email, legal_url (options override it)")
    p.add_argument("--public-key", metavar="PROVIDER_PUBLIC.pem",
                   help="verify every report's signature first; one that does not verify stops the export")
    p.add_argument("--public-service", action="append", default=[], metavar="SERVICE",
                   help="files from this service are publicly available (repeatable)")
    p.add_argument("--private-service", action="append", default=[], metavar="SERVICE",
                   help="files from this service are not publicly available (repeatable); other services: not stated")
    p.set_defaults(func=cmd_export_ncmec)
