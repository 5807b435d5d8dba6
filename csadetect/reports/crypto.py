"""Provider signatures and encrypted evidence for reports (DESIGN §6/§7).

* The provider signs each report with its Ed25519 key (the PEM keys of
  :mod:`csadetect.core.keys`). The signature covers :func:`canonical_bytes`: the canonical JSON of
  every field but ``signature`` itself, so changing any other field (the evidence ciphertext
  included) breaks it. ``signature`` is ``"ed25519:<key_id>:<base64 signature>"``.
* Evidence is sealed for the EU Centre's X25519 public key: an ephemeral X25519 key agreement,
  HKDF-SHA256 and AES-256-GCM with a random 96-bit nonce, with the report id as associated data
  so that evidence cannot be moved from one report to another. The token is
  ``"x25519-aesgcm-v1:<centre key_id>:<base64(ephemeral public key || nonce || ciphertext)>"``;
  what is encrypted is the evidence envelope (content and MIME type, see "sealing" below).

Reading signed JSON: :func:`loads_strict` refuses an object with a repeated key (and ``NaN`` /
``Infinity``, which canonical JSON cannot hold). A parser keeps one of the duplicates (Python the
last, others the first), so a report line with ``"verdict"`` twice could verify here and show a
forged value elsewhere; every reader of signed reports (:mod:`csadetect.reports.files`, the
console's ingest, the feedback pipeline) parses through it, and :func:`verify_report` can only
check the dict it is given.

Order: :func:`seal_evidence` first, then :func:`sign_report`, so the signature covers the
ciphertext. Errors are :class:`ReportSignatureError`, :class:`EvidenceError` and
:class:`ReportKeyError`, one line each. :class:`ReportKeys` holds the provider's keys as configured
(``reports.signing_key``, ``evidence_key``, ``centre_public_key``).
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import struct
from typing import Any, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
import pybase64

from csadetect.core import keys as signing
from csadetect.reports.schema import REPORT_FIELDS

SIGNATURE_SCHEME = "ed25519"
SEAL_VERSION = "x25519-aesgcm-v1"
CENTRE_PRIVATE_NAME = "centre_private.pem"
CENTRE_PUBLIC_NAME = "centre_public.pem"
EVIDENCE_ENVELOPE_VERSION = 2  # the binary envelope every new token holds
JSON_ENVELOPE_VERSION = 1  # the JSON envelope of earlier releases: read, never written

_NONCE_BYTES = 12
_KEY_BYTES = 32
_EPK_BYTES = 32
_TAG_BYTES = 16
_ENVELOPE_PREFIX = struct.Struct(">BI")  # envelope version, header length
_HKDF_INFO = b"csadetect evidence " + SEAL_VERSION.encode()

CentrePrivateLike = Union[X25519PrivateKey, str, os.PathLike]
CentrePublicLike = Union[X25519PublicKey, X25519PrivateKey, str, os.PathLike]


class ReportSignatureError(ValueError):
    """A report that is not signed, or whose signature does not verify; the message is one line."""


class EvidenceError(ValueError):
    """Evidence that cannot be sealed or opened, or an unusable centre key; the message is one line."""


class ReportKeyError(ValueError):
    """A configured report key that cannot be loaded; the message is one line."""


# ------------------------------------------------------------------------------- strict JSON


class DuplicateKeyError(ValueError):
    """A JSON object with a repeated key; the message is one line and names no key or value."""


def _unique_pairs(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise DuplicateKeyError("duplicate key in a JSON object")
    return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not canonical JSON")


def loads_strict(data: Union[str, bytes, bytearray]) -> Any:
    """``json.loads`` for signed data: raises :class:`DuplicateKeyError` (a ``ValueError``) when any
    object, at any depth, repeats a key, and ``ValueError`` on invalid JSON or ``NaN``/``Infinity``;
    ``UnicodeDecodeError`` on bytes that are not UTF-8."""
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode("utf-8")
    return json.loads(data, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)


# ------------------------------------------------------------------------------- signatures


def _report_label(report: Any) -> str:
    rid = report.get("report_id") if isinstance(report, dict) else None
    return f"report {rid}" if rid else "report (no report_id)"


def _signed_fields(report: dict) -> dict:
    """Every field but ``signature``; schema fields that are absent count as null, so a report
    read back from JSON Lines (nulls kept or dropped) or from Parquet gives the same bytes."""
    fields = dict.fromkeys(REPORT_FIELDS)
    fields.update(report)
    fields.pop("signature", None)
    return fields


def canonical_bytes(report: dict) -> bytes:
    """Canonical JSON (sorted keys, compact separators, UTF-8) of the report without ``signature``."""
    if not isinstance(report, dict):
        raise ReportSignatureError(f"a report is a JSON object, not {type(report).__name__}")
    try:
        text = json.dumps(_signed_fields(report), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ReportSignatureError(f"{_report_label(report)}: cannot serialise canonically: {exc}") from None
    return text.encode("utf-8")


def key_id(key) -> str:
    """Fingerprint of an Ed25519 public key (``csadetect.core.keys.key_id``)."""
    return signing.key_id(key)


def sign_report(report: dict, private_key: signing.PrivateKeyLike) -> dict:
    """A copy of ``report`` with ``signature`` set by the provider's Ed25519 private key."""
    key = signing.load_private_key(private_key)
    signed = dict(report)
    sig = key.sign(canonical_bytes(signed))
    signed["signature"] = f"{SIGNATURE_SCHEME}:{key_id(key)}:{base64.b64encode(sig).decode('ascii')}"
    return signed


def parse_signature(report: dict) -> tuple[str, bytes]:
    """``(key_id, signature bytes)`` of a signed report; raises :class:`ReportSignatureError`."""
    label = _report_label(report)
    value = report.get("signature")
    if value in (None, ""):
        raise ReportSignatureError(f"{label}: not signed")
    if not isinstance(value, str):
        raise ReportSignatureError(f"{label}: malformed signature (not a string)")
    parts = value.split(":")
    if len(parts) != 3 or parts[0] != SIGNATURE_SCHEME:
        raise ReportSignatureError(f"{label}: malformed signature (expected '{SIGNATURE_SCHEME}:<key_id>:<base64>')")
    try:
        sig = base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError):
        raise ReportSignatureError(f"{label}: malformed signature (bad base64)") from None
    if len(sig) != 64:
        raise ReportSignatureError(f"{label}: malformed signature ({len(sig)} bytes, an Ed25519 signature has 64)")
    return parts[1], sig


def verify_report(report: dict, public_key: signing.PublicKeyLike) -> None:
    """Raise :class:`ReportSignatureError` unless the provider ``public_key`` signed ``report``
    exactly as it is. Parse report text with :func:`loads_strict` first: once parsed, a repeated
    key has already lost one of its values."""
    if not isinstance(report, dict):
        raise ReportSignatureError(f"a report is a JSON object, not {type(report).__name__}")
    label = _report_label(report)
    public = signing.load_public_key(public_key)
    signer, sig = parse_signature(report)
    expected = key_id(public)
    if signer != expected:
        raise ReportSignatureError(f"{label}: signed by key {signer}, not {expected}")
    if not signing.verify(public, canonical_bytes(report), sig):
        raise ReportSignatureError(f"{label}: signature does not verify (report altered or wrong key)")


# ------------------------------------------------------------------------------- centre keys


def generate_centre_keypair(keydir: str | os.PathLike, overwrite: bool = False) -> tuple[str, str]:
    """Create ``keydir/centre_private.pem`` (0600) and ``keydir/centre_public.pem`` (X25519);
    returns their paths. Refuses to replace an existing private key unless ``overwrite``."""
    return signing.write_keypair(keydir, X25519PrivateKey.generate(), CENTRE_PRIVATE_NAME, CENTRE_PUBLIC_NAME,
                                 overwrite, "a decryption key", EvidenceError)


def load_centre_private_key(key: CentrePrivateLike) -> X25519PrivateKey:
    """The EU Centre's X25519 private key from a PEM path (or key directory); objects pass through."""
    return signing.load_pem_private_key(key, X25519PrivateKey, "X25519", "centre private key", CENTRE_PRIVATE_NAME,
                                        EvidenceError, CENTRE_PUBLIC_NAME)


def load_centre_public_key(key: CentrePublicLike) -> X25519PublicKey:
    """The EU Centre's X25519 public key from a PEM path (or key directory); objects pass through
    (a private key object gives its public half)."""
    return signing.load_pem_public_key(key, X25519PublicKey, X25519PrivateKey, "X25519", "centre public key",
                                       CENTRE_PUBLIC_NAME, EvidenceError)


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def centre_key_id(key: CentrePublicLike) -> str:
    """First 16 hex of SHA-256 of the raw 32-byte X25519 public key."""
    return signing.raw_key_id(load_centre_public_key(key))


# ------------------------------------------------------------------------------- sealing
#
# A token is ``<version>:<key_id>:<base64 body>``: ``version`` is ``x25519-aesgcm-v1`` (the
# cipher suite), ``key_id`` the recipient's fingerprint (:func:`centre_key_id`), and the body
# ``ephemeral X25519 public key (32 bytes) || nonce (12) || AES-256-GCM ciphertext || tag (16)``.
# The AES key is HKDF-SHA256 of the X25519 shared secret (info: ``"csadetect evidence
# x25519-aesgcm-v1"`` + both public keys); the associated data binds the token to a report id
# (:func:`seal_evidence`) or an event id (:func:`seal_content`).
#
# What is encrypted (the plaintext) is the evidence envelope. Since envelope version 2 it is
# binary, so sealing costs what AES-GCM and one base64 of the output cost:
#
#     byte 0        envelope version, 2
#     bytes 1-4     n, the header length (unsigned 32-bit, big-endian)
#     next n bytes  the header: compact UTF-8 JSON object {"mime": <string or null>}
#     the rest      the content bytes, as they are (no JSON, no base64)
#
# Version 1, written by earlier releases and still read (tokens sealed then sit in review items and
# reports), is the UTF-8 JSON object ``{"content": <base64>, "mime": <string or null>, "v": 1}``.
# :func:`_unenvelope` tells them apart by the first byte (``{`` or 2); any other first byte, a
# truncated header, a header length beyond the plaintext or a malformed header is a one-line
# :class:`EvidenceError`. The envelope lies inside the ciphertext, so the tag authenticates it.


def _derive(shared: bytes, epk: bytes, rpk: bytes) -> bytes:
    if shared == bytes(len(shared)):  # low-order point: refuse an all-zero shared secret
        raise EvidenceError("invalid ephemeral key in sealed evidence")
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=_HKDF_INFO + epk + rpk).derive(shared)


def _aad(associated_data) -> bytes:
    if isinstance(associated_data, str):
        return associated_data.encode("utf-8")
    if not isinstance(associated_data, (bytes, bytearray)):
        raise EvidenceError(f"associated data must be bytes, not {type(associated_data).__name__}")
    return bytes(associated_data)


def _seal_parts(parts: tuple, centre_public_key: CentrePublicLike, associated_data: bytes) -> str:
    """A token whose plaintext is the concatenation of ``parts`` (bytes-like objects). One join,
    one AES-GCM pass and one SIMD base64 (``pybase64``): sealing a 3 MP upload costs about what
    AES-GCM costs."""
    recipient = load_centre_public_key(centre_public_key)
    rpk = _raw(recipient)
    ephemeral = X25519PrivateKey.generate()
    epk = _raw(ephemeral.public_key())
    key = _derive(ephemeral.exchange(recipient), epk, rpk)
    nonce = os.urandom(_NONCE_BYTES)
    try:
        plaintext = b"".join(parts)
    except TypeError:
        for part in parts:  # name the first part that is not bytes-like
            try:
                memoryview(part)
            except TypeError:
                raise EvidenceError(f"evidence must be bytes, not {type(part).__name__}") from None
        raise
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, _aad(associated_data))
    body = pybase64.b64encode(epk + nonce + ciphertext).decode("ascii")
    return f"{SEAL_VERSION}:{signing.raw_key_id(recipient)}:{body}"


def seal(plaintext, centre_public_key: CentrePublicLike, associated_data: bytes) -> str:
    """Encrypt ``plaintext`` (any bytes-like object) for the centre: ephemeral X25519 +
    HKDF-SHA256 + AES-256-GCM."""
    return _seal_parts((plaintext,), centre_public_key, associated_data)


def open_sealed(token: str, centre_private_key: CentrePrivateLike, associated_data: bytes) -> bytes:
    """The plaintext of a :func:`seal` token; raises :class:`EvidenceError` when it was tampered
    with, sealed for another key, or sealed with other associated data (another report)."""
    key = load_centre_private_key(centre_private_key)
    aad = _aad(associated_data)
    if not isinstance(token, str) or not token:
        raise EvidenceError("no sealed evidence")
    parts = token.split(":")
    if len(parts) != 3:
        raise EvidenceError("malformed sealed evidence (expected '<version>:<key_id>:<base64>')")
    version, sealed_for, body = parts
    if version != SEAL_VERSION:
        raise EvidenceError(f"unsupported sealed evidence version {version[:40]!r} (this build reads {SEAL_VERSION})")
    rpk = _raw(key.public_key())
    mine = signing.raw_key_id(key.public_key())
    if sealed_for != mine:
        raise EvidenceError(f"evidence is sealed for centre key {sealed_for[:40]}, not {mine}")
    try:
        raw = pybase64.b64decode(body, validate=True)
    except ValueError:  # binascii.Error, or a str that is not ASCII
        raise EvidenceError("malformed sealed evidence (bad base64)") from None
    head = _EPK_BYTES + _NONCE_BYTES
    if len(raw) < head + _TAG_BYTES:
        raise EvidenceError("malformed sealed evidence (too short)")
    view = memoryview(raw)
    epk, nonce, ciphertext = raw[:_EPK_BYTES], raw[_EPK_BYTES:head], view[head:]
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(epk))
    except ValueError:
        raise EvidenceError("invalid ephemeral key in sealed evidence") from None
    try:
        return AESGCM(_derive(shared, epk, rpk)).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise EvidenceError(
            "sealed evidence does not decrypt (tampered, wrong key, or moved from another report)"
        ) from None


def _envelope_header(mime: str | None) -> bytes:
    """The version byte, header length and header of a binary envelope: what precedes the content."""
    if mime is not None and not isinstance(mime, str):
        raise EvidenceError(f"evidence MIME type must be a string, not {type(mime).__name__}")
    header = json.dumps({"mime": mime}, separators=(",", ":")).encode("ascii")
    return _ENVELOPE_PREFIX.pack(EVIDENCE_ENVELOPE_VERSION, len(header)) + header


def _envelope_parts(plaintext: bytes, label: str) -> tuple[str | None, int]:
    """``(mime, offset of the content)`` of a binary envelope; raises :class:`EvidenceError`."""
    malformed = f"{label}: evidence decrypts but its envelope is malformed"
    if len(plaintext) < _ENVELOPE_PREFIX.size:
        raise EvidenceError(f"{malformed} (truncated header)")
    _, size = _ENVELOPE_PREFIX.unpack_from(plaintext)
    start = _ENVELOPE_PREFIX.size + size
    if start > len(plaintext):
        raise EvidenceError(f"{malformed} (header length beyond the evidence)")
    try:
        header = loads_strict(plaintext[_ENVELOPE_PREFIX.size:start])
    except (ValueError, RecursionError):  # invalid JSON, a repeated key, not UTF-8, nested too deep
        raise EvidenceError(f"{malformed} (header is not a JSON object)") from None
    if not isinstance(header, dict) or set(header) != {"mime"}:
        raise EvidenceError(f"{malformed} (header fields)")
    mime = header["mime"]
    if mime is not None and not isinstance(mime, str):
        raise EvidenceError(f"{malformed} (MIME type is not a string)")
    return mime, start


def _unenvelope_json(plaintext: bytes, label: str) -> tuple[str | None, bytes]:
    """Version 1, the JSON envelope of earlier releases."""
    try:
        envelope = json.loads(plaintext.decode("utf-8"))
        content = pybase64.b64decode(envelope["content"], validate=True)
        mime = envelope.get("mime")
        version = envelope.get("v", JSON_ENVELOPE_VERSION)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise EvidenceError(f"{label}: evidence decrypts but its envelope is malformed") from None
    if mime is not None and not isinstance(mime, str):
        raise EvidenceError(f"{label}: evidence decrypts but its envelope is malformed")
    if version != JSON_ENVELOPE_VERSION:
        raise EvidenceError(f"{label}: evidence decrypts but its JSON envelope version {str(version)[:20]!r} "
                            f"is not {JSON_ENVELOPE_VERSION}")
    return mime, content


def _unenvelope(plaintext: bytes, label: str) -> tuple[str | None, bytes]:
    """``(mime, content)`` of an envelope of either version, told apart by its first byte."""
    first = plaintext[:1]
    if first == b"{":
        return _unenvelope_json(plaintext, label)
    if first == bytes([EVIDENCE_ENVELOPE_VERSION]):
        mime, start = _envelope_parts(plaintext, label)
        return mime, plaintext[start:]
    if not first:
        raise EvidenceError(f"{label}: evidence decrypts but its envelope is empty")
    raise EvidenceError(f"{label}: evidence decrypts but its envelope version {first[0]} is unknown "
                        f"(this build reads {JSON_ENVELOPE_VERSION} and {EVIDENCE_ENVELOPE_VERSION})")


def _binary_envelope(plaintext: bytes, label: str) -> tuple:
    """What a re-seal encrypts: ``(plaintext,)`` when it already is a valid binary envelope
    (checked; the content is never copied out of it), else the content of its JSON envelope (an
    earlier release's token) after a binary envelope's header."""
    if plaintext[:1] == bytes([EVIDENCE_ENVELOPE_VERSION]):
        _envelope_parts(plaintext, label)
        return (plaintext,)
    mime, content = _unenvelope(plaintext, label)
    return _envelope_header(mime), content


def _report_aad(report: dict) -> bytes:
    """The associated data of ``report``'s evidence (its id), checking that it can still be sealed."""
    rid = report.get("report_id")
    if not rid:
        raise EvidenceError("report has no report_id; cannot bind evidence to it")
    if report.get("signature"):
        raise EvidenceError(f"report {rid}: already signed; seal evidence before signing")
    return str(rid).encode("utf-8")


def seal_evidence(report: dict, content: bytes, mime: str | None, centre_public_key: CentrePublicLike) -> dict:
    """A copy of ``report`` with ``evidence_encrypted`` set: ``content`` (with its MIME type) sealed
    for the centre with the report id as associated data. Call before :func:`sign_report`."""
    aad = _report_aad(report)
    sealed = dict(report)
    sealed["evidence_encrypted"] = _seal_parts((_envelope_header(mime), content), centre_public_key, aad)
    return sealed


def open_evidence(report: dict, centre_private_key: CentrePrivateLike) -> tuple[str | None, bytes]:
    """``(mime, content)`` of a report's sealed evidence; raises :class:`EvidenceError` (the
    message names the report)."""
    label = _report_label(report)
    rid = report.get("report_id")
    token = report.get("evidence_encrypted")
    if not rid:
        raise EvidenceError(f"{label}: no report_id to check the evidence against")
    if not token:
        raise EvidenceError(f"{label}: no evidence")
    try:
        plaintext = open_sealed(token, centre_private_key, str(rid).encode("utf-8"))
    except EvidenceError as exc:
        raise EvidenceError(f"{label}: {exc}") from None
    return _unenvelope(plaintext, label)


# ------------------------------------------------------------------ provider review evidence
#
# Between hashing and the decision the content travels sealed for the provider's own X25519
# evidence key (``reports.evidence_key``), bound to the event id. Reviewers open it with that key;
# when a hit is reported it is opened once and re-sealed for the EU Centre (``reseal_for_centre``).

EVIDENCE_PRIVATE_NAME = "evidence_private.pem"
EVIDENCE_PUBLIC_NAME = "evidence_public.pem"


def evidence_aad(event_id: str) -> bytes:
    return b"csadetect-evidence\x1f" + str(event_id).encode("utf-8")


def generate_evidence_keypair(keydir: str | os.PathLike, overwrite: bool = False) -> tuple[str, str]:
    """``keydir/evidence_private.pem`` (0600) and ``evidence_public.pem``: the provider's X25519
    key for review evidence."""
    return signing.write_keypair(keydir, X25519PrivateKey.generate(), EVIDENCE_PRIVATE_NAME, EVIDENCE_PUBLIC_NAME,
                                 overwrite, "a decryption key", EvidenceError)


def load_evidence_private_key(key: CentrePrivateLike) -> X25519PrivateKey:
    return signing.load_pem_private_key(key, X25519PrivateKey, "X25519", "evidence private key",
                                        EVIDENCE_PRIVATE_NAME, EvidenceError, EVIDENCE_PUBLIC_NAME)


def seal_content(content: bytes, mime: str | None, public_key, event_id: str) -> str:
    """``content`` (any bytes-like object) sealed for an X25519 ``public_key`` (a key object, or the
    private key object), bound to ``event_id``, in a binary envelope (header, then the content as
    it is), encrypted in one AES-GCM pass and base64-encoded once (:func:`_seal_parts`)."""
    return _seal_parts((_envelope_header(mime), content), public_key, evidence_aad(event_id))


def _open_content_plaintext(token: str, private_key, event_id: str) -> bytes:
    if not isinstance(private_key, X25519PrivateKey):
        private_key = load_evidence_private_key(private_key)
    try:
        return open_sealed(token, private_key, evidence_aad(event_id))
    except EvidenceError as exc:
        raise EvidenceError(f"evidence of event {event_id}: {exc}") from None


def open_content(token: str, private_key, event_id: str) -> tuple[str | None, bytes]:
    """``(mime, content)`` of a :func:`seal_content` token (either envelope version)."""
    return _unenvelope(_open_content_plaintext(token, private_key, event_id), f"evidence of event {event_id}")


def reseal_for_centre(report: dict, token: str, evidence_private_key, centre_public_key) -> dict:
    """A copy of ``report`` whose ``evidence_encrypted`` holds the content of ``token`` (sealed for
    the provider by :func:`seal_content` for ``report['event_id']``), re-sealed for the Centre.
    A binary envelope is checked and re-encrypted as it is; a JSON one (an earlier release's token)
    is re-sealed in a binary envelope."""
    aad = _report_aad(report)
    event_id = report["event_id"]
    plaintext = _open_content_plaintext(token, evidence_private_key, event_id)
    sealed = dict(report)
    sealed["evidence_encrypted"] = _seal_parts(_binary_envelope(plaintext, f"evidence of event {event_id}"),
                                               centre_public_key, aad)
    return sealed


# ------------------------------------------------------------------------- the provider's keys


@dataclasses.dataclass
class ReportKeys:
    """The provider's keys that protect hits: Ed25519 ``signing`` key, X25519 ``evidence`` key (its
    public half seals content after hashing), and the EU Centre's X25519 ``centre`` public key.
    Any of them may be None (that protection is then off, and start-up says so)."""

    signing: Any = None
    evidence: Any = None
    centre: Any = None

    @classmethod
    def load(cls, reports) -> "ReportKeys":
        """From :class:`csadetect.config.settings.ReportSettings`; raises ReportKeyError with one line."""
        try:
            sk = signing.load_private_key(reports.signing_key) if reports.signing_key else None
            ek = load_evidence_private_key(reports.evidence_key) if reports.evidence_key else None
            ck = load_centre_public_key(reports.centre_public_key) if reports.centre_public_key else None
        except (EvidenceError, signing.SigningError, OSError, ValueError) as exc:
            raise ReportKeyError(f"report keys: {exc}") from None
        if not reports.include_evidence:
            ek = ck = None
        return cls(sk, ek, ck)

    @property
    def seals_evidence(self) -> bool:
        return self.evidence is not None and self.centre is not None

    def evidence_public(self):
        return self.evidence.public_key() if self.evidence is not None else None
