"""Indicator records: the rows of the EU Centre indicator database (DESIGN.md §4).

An :class:`Indicator` is one known-material hash with its metadata. Readers turn CSV, JSON Lines
and plain hash lists (Meta's ``needles.txt`` / ``haystack.txt`` format) into validated rows; every
bad row raises :class:`IndicatorError` with a one-line message naming the file and line.
:func:`from_media` hashes image and video files into rows (PDQ or vPDQ + MD5 + SHA-256).

Values are normalised on construction: hex is lowercased, vPDQ frame lists are de-duplicated and
single-space separated, embeddings are re-encoded as ``model_version:`` + canonical base64 of
little-endian float32 (the version prefix is optional; see :func:`split_embedding`).
"""
from __future__ import annotations

import base64
import binascii
import csv
import dataclasses
import datetime as dt
import json
import os
import re
from typing import Iterable, Iterator, Optional, Sequence

KINDS = ("pdq", "md5", "sha256", "vpdq", "embedding")
HEX_LENGTH = {"pdq": 64, "md5": 32, "sha256": 64}
FIELDS = ("indicator_id", "kind", "value", "category", "source", "note", "added_at", "disabled_at")
CSV_COLUMNS = ("indicator_id", "kind", "value", "category", "note")  # what from-media writes
FORMATS = ("csv", "jsonl", "hashes")
DEFAULT_CATEGORY = "unspecified"
DEFAULT_SOURCE = "eu-centre"
MAX_ID_BYTES = 128

_HEX_RE = re.compile(r"[0-9a-f]+")
_ID_RE = re.compile(r"[^\s\x00-\x1f\x7f]+")  # no whitespace or control characters


class IndicatorError(ValueError):
    """A bad indicator row or input file; the message is one line, e.g. ``file.csv:12: ...``."""


def format_time(t: dt.datetime) -> str:
    t = t.astimezone(dt.timezone.utc)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str, field: str = "time") -> str:
    """Validate an RFC 3339 timestamp with a zone and normalise it to UTC ``...Z``."""
    try:
        t = dt.datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise IndicatorError(f"{field} is not an RFC 3339 timestamp: {value!r}") from None
    if t.tzinfo is None:
        raise IndicatorError(f"{field} has no time zone (use e.g. 2024-05-01T12:00:00Z): {value!r}")
    return format_time(t)


def _norm_hex(value: str, length: int, kind: str) -> str:
    v = value.strip().lower()
    if len(v) != length:
        raise IndicatorError(f"{kind} value must be {length} hex characters, got {len(v)}")
    if not _HEX_RE.fullmatch(v):
        raise IndicatorError(f"{kind} value is not hexadecimal")
    return v


def normalise_value(kind: str, value: str) -> str:
    """Validate ``value`` for ``kind`` and return its canonical form (raises IndicatorError)."""
    if not isinstance(value, str) or not value.strip():
        raise IndicatorError("value is empty")
    if kind in HEX_LENGTH:
        return _norm_hex(value, HEX_LENGTH[kind], kind)
    if kind == "vpdq":
        frames = [_norm_hex(v, 64, "vpdq frame") for v in value.split()]
        return " ".join(dict.fromkeys(frames))  # unique, first-seen order
    if kind == "embedding":
        version, vector = split_embedding(value)
        return embedding_value(vector, version)
    raise IndicatorError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")


_VERSION_RE = re.compile(r"[A-Za-z0-9._+-]{1,64}")


def split_embedding(value: str):
    """``"[model_version:]base64"`` -> (model_version or None, float32 vector). Embeddings are
    only comparable under the model that made them, so ``from-media`` always writes the version;
    rows without one match any model of the same dimension. Raises IndicatorError."""
    import numpy as np

    text = value.strip()
    version = None
    if ":" in text:
        version, text = text.split(":", 1)
        if not _VERSION_RE.fullmatch(version):
            raise IndicatorError("embedding model version must be 1-64 characters of [A-Za-z0-9._+-]")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise IndicatorError("embedding value is not base64") from None
    if not raw or len(raw) % 4:
        raise IndicatorError("embedding value must be base64 of float32 values (length a multiple of 4 bytes)")
    vec = np.frombuffer(raw, dtype="<f4")
    if not np.all(np.isfinite(vec)):
        raise IndicatorError("embedding value holds NaN or infinite numbers")
    return version, vec


def embedding_value(vector, version: Optional[str]) -> str:
    """Canonical indicator value for an embedding made by model ``version``."""
    import numpy as np

    encoded = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return f"{version}:{encoded}" if version else encoded


@dataclasses.dataclass(frozen=True)
class Indicator:
    """One indicator. Construction validates and normalises every field.

    ``value``: pdq 64 hex; md5 32 hex; sha256 64 hex; vpdq the video's unique frame PDQ hashes
    (quality >= gate) as space-separated 64-hex strings; embedding ``[model_version:]`` + base64 little-endian float32, L2-normalised by the index.
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
        if kind not in KINDS:
            raise IndicatorError(f"unknown kind {self.kind!r} (expected one of {', '.join(KINDS)})")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        set_("indicator_id", ident)
        set_("kind", kind)
        set_("value", normalise_value(kind, self.value))
        set_("category", (self.category or "").strip() or DEFAULT_CATEGORY)
        set_("source", (self.source or "").strip() or DEFAULT_SOURCE)
        set_("note", self.note or "")
        for field in ("added_at", "disabled_at"):
            raw = getattr(self, field)
            set_(field, parse_time(raw, field) if raw not in (None, "") else None)

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "Indicator":
        return dataclasses.replace(self, **changes)


def _make(record: dict, where: str) -> Indicator:
    try:
        return Indicator(**record)
    except IndicatorError as exc:
        raise IndicatorError(f"{where}: {exc}") from None
    except TypeError:
        raise IndicatorError(f"{where}: malformed row") from None


def _check_unique(rows: Iterable[tuple[str, Indicator]]) -> list[Indicator]:
    seen: dict[str, str] = {}
    out = []
    for where, row in rows:
        first = seen.get(row.indicator_id)
        if first is not None:
            raise IndicatorError(f"{where}: duplicate indicator_id {row.indicator_id!r} (first on line {first})")
        seen[row.indicator_id] = where.rsplit(":", 1)[-1]
        out.append(row)
    return out


def _open_text(path: str):
    try:
        return open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise IndicatorError(f"{path}: file not found") from None
    except OSError as exc:
        raise IndicatorError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None


def _lines(path: str) -> Iterator[tuple[int, str]]:
    with _open_text(path) as fh:
        try:
            for number, line in enumerate(fh, 1):
                yield number, line
        except UnicodeDecodeError:
            raise IndicatorError(f"{path}: not UTF-8 text") from None


def read_csv(path: str) -> list[Indicator]:
    """CSV with a header: ``indicator_id,kind,value`` required; ``category,note,source,added_at,
    disabled_at`` optional. Unknown columns are an error (they are usually typos)."""
    with _open_text(path) as fh:
        try:
            reader = csv.DictReader(fh)
            header = reader.fieldnames
            if not header:
                raise IndicatorError(f"{path}: empty file (expected a header {','.join(CSV_COLUMNS)})")
            header = [h.strip() for h in header]
            reader.fieldnames = header
            missing = [c for c in ("indicator_id", "kind", "value") if c not in header]
            if missing:
                raise IndicatorError(f"{path}:1: missing column {missing[0]!r} (header must include indicator_id,kind,value)")
            unknown = [c for c in header if c not in FIELDS]
            if unknown:
                raise IndicatorError(f"{path}:1: unknown column {unknown[0]!r} (allowed: {','.join(FIELDS)})")
            rows = []
            for record in reader:
                where = f"{path}:{reader.line_num}"
                if None in record:
                    raise IndicatorError(f"{where}: more fields than the header has")
                if all(not (v or "").strip() for v in record.values()):
                    continue  # blank line
                if any(v is None for v in record.values()):
                    raise IndicatorError(f"{where}: fewer fields than the header has")
                rows.append((where, _make(dict(record), where)))
        except csv.Error as exc:
            raise IndicatorError(f"{path}:{reader.line_num}: bad CSV ({exc})") from None
        except UnicodeDecodeError:
            raise IndicatorError(f"{path}: not UTF-8 text") from None
    return _check_unique(rows)


def read_jsonl(path: str) -> list[Indicator]:
    """JSON Lines, one object per line with the keys of :class:`Indicator`."""
    rows = []
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
        rows.append((where, _make(record, where)))
    return _check_unique(rows)


def read_hashes(path: str, kind: str = "pdq", category: str = DEFAULT_CATEGORY) -> list[Indicator]:
    """One hash per line (``needles.txt`` format). Blank lines and ``#`` comments are skipped.
    Ids are ``<file stem>-<line number>``, so they are stable as long as the file is."""
    stem = os.path.splitext(os.path.basename(path))[0]
    rows = []
    for number, line in _lines(path):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}:{number}"
        rows.append((where, _make({"indicator_id": f"{stem}-{number}", "kind": kind, "value": text, "category": category}, where)))
    return _check_unique(rows)


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


def read_indicators(path: str, fmt: Optional[str] = None) -> list[Indicator]:
    """Read and validate an indicator file; raises IndicatorError naming file and line."""
    fmt = format_for(path, fmt)
    if fmt == "csv":
        return read_csv(path)
    if fmt == "jsonl":
        return read_jsonl(path)
    return read_hashes(path)


def write_csv(rows: Sequence[Indicator], path: str, columns: Sequence[str] = CSV_COLUMNS) -> None:
    """Write rows as CSV with ``columns`` (default exactly ``indicator_id,kind,value,category,note``)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if getattr(row, c) is None else getattr(row, c) for c in columns])


# Index-side views of a known image, each stored as one more ``embedding`` row of the image
# (ids ``{sha256[:16]}-embedding`` for the image itself, then ``-embedding-c05``, ``-embedding-r+3``,
# ``-embedding-r-3``): a cropped or slightly rotated copy then meets a row that looks like it.
# EMBEDDING_CROPS: fraction cut from EACH side (centre crop; 0.05 keeps the middle 90%).
# EMBEDDING_ROTATIONS: degrees (counter-clockwise), expanded canvas, black fill.
# Chosen on the held-out evaluation (csadetect/models/cards/embedding.md, "Index-side rows"); the threshold
# is calibrated with these rows (training/calibrate_embedding.py). Each row costs one 128-float vector.
EMBEDDING_CROPS = (0.05,)
EMBEDDING_ROTATIONS = (3, -3)


def embedding_views(img, crops=EMBEDDING_CROPS, rotations=EMBEDDING_ROTATIONS) -> list:
    """(id suffix, PIL image) for each embedding row of a known image: ``""`` (the image), then
    ``"-c05"``-style centre crops and ``"-r+3"``-style rotations."""
    from PIL import Image

    out = [("", img)]
    w, h = img.size
    for f in crops:
        dx, dy = round(w * f), round(h * f)
        if w - 2 * dx >= 1 and h - 2 * dy >= 1:
            out.append((f"-c{round(f * 100):02d}", img.crop((dx, dy, w - dx, h - dy))))
    for deg in rotations:
        out.append((f"-r{deg:+g}", img.rotate(deg, resample=Image.Resampling.BILINEAR, expand=True)))
    return out


def media_rows(path: str, settings, category: str = DEFAULT_CATEGORY, embedder=None) -> tuple[list[Indicator], Optional[str]]:
    """Rows for one media file and an optional warning. Raises MediaError if it cannot be read.
    With an ``embedder`` (:class:`csadetect.models.embedding.EmbeddingModel`) an image also gets
    ``embedding`` rows (``model_version:base64``): one for the image (``{base}-embedding``) and one
    per view of :func:`embedding_views` (``EMBEDDING_CROPS``, ``EMBEDDING_ROTATIONS``)."""
    from csadetect.media.hashing import VideoHashes, hash_file

    hashes, pictures = hash_file(path, seconds_per_hash=settings.video_seconds_per_hash, dihedral=False, with_views=True)
    md5, sha256 = hashes.md5, hashes.sha256
    name = os.path.basename(path)
    base = sha256[:16]
    warning = None
    perceptual: list[Indicator] = []
    if isinstance(hashes, VideoHashes):
        good = [f.pdq.hex() for f in hashes.frames if f.quality >= settings.quality_gate]
        if good:
            perceptual.append(Indicator(f"{base}-vpdq", "vpdq", " ".join(good), category, note=name))
        else:
            warning = f"no vPDQ frame reaches quality {settings.quality_gate}; only md5/sha256 rows added"
    else:
        perceptual.append(Indicator(f"{base}-pdq", "pdq", hashes.pdq.hex(), category, note=name))
        if embedder is not None:
            views = embedding_views(pictures[0][1])
            vectors = embedder.embed([img for _, img in views])
            for (suffix, _), vector in zip(views, vectors):
                value = embedding_value(vector, embedder.version)
                perceptual.append(Indicator(f"{base}-embedding{suffix}", "embedding", value, category, note=name))
        if hashes.quality < settings.quality_gate:
            warning = f"PDQ quality {hashes.quality} is below the gate {settings.quality_gate}"
    exact = [
        Indicator(f"{base}-md5", "md5", md5, category, note=name),
        Indicator(f"{base}-sha256", "sha256", sha256, category, note=name),
    ]
    return perceptual + exact, warning


def from_media(
    paths: Iterable[str],
    settings=None,
    category: str = DEFAULT_CATEGORY,
    errors: Optional[list] = None,
    warnings: Optional[list] = None,
    embedder=None,
    progress=None,
) -> list[Indicator]:
    """Indicator rows from media files: an image gives ``pdq`` + ``md5`` + ``sha256`` rows, a
    video (by extension) ``vpdq`` + ``md5`` + ``sha256``. Ids are ``sha256[:16]-<kind>``, the note is
    the file name. The same file given twice yields its rows once.

    ``settings`` is a :class:`csadetect.config.settings.MatchSettings` (quality gate, vPDQ sampling).
    Failures are appended to ``errors`` as one-line ``"path: reason"`` strings and the file is
    skipped; without an ``errors`` list the first failure raises MediaError. Warnings (low PDQ
    quality; a video without a frame above the gate, which then gets md5/sha256 rows only) go
    to ``warnings`` when given; the rows are kept. With an ``embedder`` images also get
    ``embedding`` rows, the image and its index-side views (videos do not; see :func:`media_rows`). ``progress`` is called once per file.
    """
    from csadetect.media.hashing import MediaError
    from csadetect.config.settings import MatchSettings

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
