"""The evidence envelope inside sealed tokens (``csadetect.reports.crypto``, "sealing"): the binary
envelope (version 2) that new tokens hold, the JSON envelope (version 1) of earlier releases that
must still open, and the one-line errors for everything else.

All content here is random or fixed benign bytes."""
from __future__ import annotations

import base64
import json
import os
import random
import struct

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings, strategies as st

from csadetect.core.keys import raw_key_id
from csadetect.reports import crypto
from csadetect.reports.crypto import EvidenceError

EVENT = "evt-envelope-1"
REPORT = {"report_id": "rep-envelope-1", "event_id": EVENT, "signature": None, "evidence_encrypted": None}
CONTENT = b"\xff\xd8\xff\xe0 benign stand-in bytes \x00\x01\x02" * 7


@pytest.fixture(scope="module")
def keys():
    return {"evidence": X25519PrivateKey.generate(), "centre": X25519PrivateKey.generate(),
            "other": X25519PrivateKey.generate()}


# ---------------------------------------------------- the earlier release, written out independently


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def old_envelope(content: bytes, mime) -> bytes:
    """The JSON envelope (version 1) exactly as earlier releases wrote it."""
    return json.dumps({"v": 1, "mime": mime, "content": base64.b64encode(bytes(content)).decode("ascii")},
                      sort_keys=True, separators=(",", ":")).encode("utf-8")


def old_seal(plaintext: bytes, recipient: X25519PublicKey, aad: bytes) -> str:
    """``crypto.seal`` as earlier releases wrote it: one AESGCM.encrypt, one base64 of the body."""
    ephemeral = X25519PrivateKey.generate()
    epk, rpk = _raw(ephemeral.public_key()), _raw(recipient)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"csadetect evidence x25519-aesgcm-v1" + epk + rpk).derive(ephemeral.exchange(recipient))
    nonce = os.urandom(12)
    body = epk + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)
    return f"x25519-aesgcm-v1:{raw_key_id(recipient)}:{base64.b64encode(body).decode('ascii')}"


def independent_open(token: str, private: X25519PrivateKey, aad: bytes) -> bytes:
    """The token format as documented, opened without ``crypto``: decode the whole body, decrypt."""
    version, kid, body = token.split(":")
    assert version == "x25519-aesgcm-v1" and kid == raw_key_id(private.public_key())
    raw = base64.b64decode(body, validate=True)
    epk, nonce, ciphertext = raw[:32], raw[32:44], raw[44:]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"csadetect evidence x25519-aesgcm-v1" + epk + _raw(private.public_key())).derive(
        private.exchange(X25519PublicKey.from_public_bytes(epk)))
    return AESGCM(key).decrypt(nonce, ciphertext, aad)


def binary_envelope(content: bytes, mime) -> bytes:
    """The binary envelope (version 2) as the docs describe it."""
    header = json.dumps({"mime": mime}, separators=(",", ":")).encode("utf-8")
    return b"\x02" + struct.pack(">I", len(header)) + header + content


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


# ------------------------------------------------------------------------ earlier releases' tokens


def test_old_json_envelope_tokens_still_open(keys):
    evidence_pub, centre_pub = keys["evidence"].public_key(), keys["centre"].public_key()
    token = old_seal(old_envelope(CONTENT, "image/jpeg"), evidence_pub, crypto.evidence_aad(EVENT))
    assert crypto.open_content(token, keys["evidence"], EVENT) == ("image/jpeg", CONTENT)
    no_mime = old_seal(old_envelope(b"", None), evidence_pub, crypto.evidence_aad(EVENT))
    assert crypto.open_content(no_mime, keys["evidence"], EVENT) == (None, b"")

    report = dict(REPORT, evidence_encrypted=old_seal(old_envelope(CONTENT, "image/png"), centre_pub,
                                                      REPORT["report_id"].encode()))
    assert crypto.open_evidence(report, keys["centre"]) == ("image/png", CONTENT)


def test_reseal_of_an_old_token_writes_a_binary_envelope(keys):
    token = old_seal(old_envelope(CONTENT, "image/jpeg"), keys["evidence"].public_key(), crypto.evidence_aad(EVENT))
    report = crypto.reseal_for_centre(REPORT, token, keys["evidence"], keys["centre"].public_key())
    assert crypto.open_evidence(report, keys["centre"]) == ("image/jpeg", CONTENT)
    plaintext = independent_open(report["evidence_encrypted"], keys["centre"], REPORT["report_id"].encode())
    assert plaintext == binary_envelope(CONTENT, "image/jpeg")


def test_new_tokens_follow_the_documented_format(keys):
    token = crypto.seal_content(CONTENT, "image/jpeg", keys["evidence"].public_key(), EVENT)
    assert token.startswith("x25519-aesgcm-v1:" + raw_key_id(keys["evidence"].public_key()) + ":")
    plaintext = independent_open(token, keys["evidence"], crypto.evidence_aad(EVENT))
    assert plaintext == binary_envelope(CONTENT, "image/jpeg")
    assert plaintext[:1] == bytes([crypto.EVIDENCE_ENVELOPE_VERSION])
    # the content is raw in the plaintext: the token is 4/3 of it (+ a fixed overhead), not 16/9
    assert len(token) < len(CONTENT) * 4 / 3 + 200


# ------------------------------------------------------------------------------ round trips


def test_round_trips_and_reseal(keys):
    centre_pub = keys["centre"].public_key()
    for content in (CONTENT, bytearray(CONTENT), memoryview(CONTENT), b""):
        token = crypto.seal_content(content, "image/webp", keys["evidence"].public_key(), EVENT)
        assert crypto.open_content(token, keys["evidence"], EVENT) == ("image/webp", bytes(content))
        report = crypto.seal_evidence(REPORT, content, None, centre_pub)
        assert crypto.open_evidence(report, keys["centre"]) == (None, bytes(content))
    token = crypto.seal_content(CONTENT, "video/mp4", keys["evidence"].public_key(), EVENT)
    resealed = crypto.reseal_for_centre(REPORT, token, keys["evidence"], centre_pub)
    assert crypto.open_evidence(resealed, keys["centre"]) == ("video/mp4", CONTENT)
    assert resealed["evidence_encrypted"] != token and REPORT["evidence_encrypted"] is None  # a copy


# every remainder of base64's 3-byte groups, small and at the size of a 3 MP upload
EDGES = sorted({0, 1, 2, 3, 4, 5, 1000, 1001, 1002, 432_000, 432_001, 432_002})


@pytest.mark.parametrize("size", EDGES)
def test_sizes_encode_as_one_base64_body(keys, size):
    content = random.Random(size).randbytes(size)
    token = crypto.seal_content(content, "image/jpeg", keys["evidence"].public_key(), EVENT)
    base64.b64decode(token.split(":")[2], validate=True)  # one valid base64 text, padded once at the end
    assert independent_open(token, keys["evidence"], crypto.evidence_aad(EVENT)) == binary_envelope(content,
                                                                                                     "image/jpeg")
    assert crypto.open_content(token, keys["evidence"], EVENT) == ("image/jpeg", content)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=3000), mime=st.none() | st.text(max_size=80))
def test_round_trip_any_bytes_and_mime(keys, content, mime):
    token = crypto.seal_content(content, mime, keys["evidence"].public_key(), EVENT)
    assert crypto.open_content(token, keys["evidence"], EVENT) == (mime, content)
    report = crypto.reseal_for_centre(REPORT, token, keys["evidence"], keys["centre"].public_key())
    assert crypto.open_evidence(report, keys["centre"]) == (mime, content)


# --------------------------------------------------------------------------------- failures


def _sealed_plaintext(keys, plaintext: bytes) -> str:
    """A token that decrypts (right key, right event) to ``plaintext``: what only a broken or
    foreign sealer could write."""
    return crypto.seal(plaintext, keys["evidence"].public_key(), crypto.evidence_aad(EVENT))


def test_tampering_wrong_key_and_wrong_binding_fail_in_one_line(keys):
    token = crypto.seal_content(CONTENT, "image/jpeg", keys["evidence"].public_key(), EVENT)
    version, kid, body = token.split(":")
    raw = bytearray(base64.b64decode(body))
    for pos in (0, 40, 50, len(raw) // 2, len(raw) - 1):  # ephemeral key, nonce, header, content, tag
        raw[pos] ^= 0x01
        tampered = f"{version}:{kid}:{base64.b64encode(bytes(raw)).decode()}"
        raw[pos] ^= 0x01
        with pytest.raises(EvidenceError) as exc:
            crypto.open_content(tampered, keys["evidence"], EVENT)
        assert one_line(exc).startswith(f"evidence of event {EVENT}: ")
    with pytest.raises(EvidenceError) as exc:
        crypto.open_content(token, keys["other"], EVENT)
    assert "sealed for centre key" in one_line(exc)
    with pytest.raises(EvidenceError) as exc:
        crypto.open_content(token, keys["evidence"], "another-event")
    assert "does not decrypt" in one_line(exc)
    with pytest.raises(EvidenceError) as exc:
        crypto.open_content("x25519-aesgcm-v9:" + kid + ":" + body, keys["evidence"], EVENT)
    assert "unsupported sealed evidence version" in one_line(exc)

    moved = dict(crypto.seal_evidence(REPORT, CONTENT, "image/jpeg", keys["centre"].public_key()),
                 report_id="rep-envelope-2")
    with pytest.raises(EvidenceError) as exc:
        crypto.open_evidence(moved, keys["centre"])
    assert one_line(exc).startswith("report rep-envelope-2: sealed evidence does not decrypt")


HEADER = b'{"mime":"image/jpeg"}'


def v2(header: bytes, content: bytes = CONTENT, version: int = 2) -> bytes:
    return bytes([version]) + struct.pack(">I", len(header)) + header + content


BROKEN = {
    "empty": (b"", "envelope is empty"),
    "truncated header": (b"\x02\x00\x00", "truncated header"),
    "header length beyond the plaintext": (b"\x02" + struct.pack(">I", 1000) + HEADER + b"abc",
                                           "header length beyond the evidence"),
    "header length far beyond": (b"\x02\xff\xff\xff\xff" + HEADER, "header length beyond the evidence"),
    "header not JSON": (v2(b"{mime"), "header is not a JSON object"),
    "header not UTF-8": (v2(b"\xff\xfe"), "header is not a JSON object"),
    "header repeats a key": (v2(b'{"mime":null,"mime":""}'), "header is not a JSON object"),
    "header a list": (v2(b"[]"), "header fields"),
    "header with another field": (v2(b'{"mime":null,"extra":1}'), "header fields"),
    "header mime a number": (v2(b'{"mime":7}'), "MIME type is not a string"),
    "unknown envelope version": (v2(HEADER, version=3), "envelope version 3 is unknown"),
    "old envelope, not JSON": (b"{not json", "envelope is malformed"),
    "old envelope, bad base64": (b'{"content":"!!","mime":null,"v":1}', "envelope is malformed"),
    "old envelope, other version": (old_envelope(CONTENT, None).replace(b'"v":1', b'"v":7'),
                                    "JSON envelope version '7' is not 1"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_malformed_envelopes_fail_in_one_line(keys, name):
    plaintext, expected = BROKEN[name]
    token = _sealed_plaintext(keys, plaintext)
    with pytest.raises(EvidenceError) as exc:
        crypto.open_content(token, keys["evidence"], EVENT)
    message = one_line(exc)
    assert message.startswith(f"evidence of event {EVENT}: evidence decrypts but its ") and expected in message
    # a re-seal checks the envelope instead of passing it on to the Centre
    with pytest.raises(EvidenceError) as exc:
        crypto.reseal_for_centre(REPORT, token, keys["evidence"], keys["centre"].public_key())
    assert expected in one_line(exc)


def test_bad_arguments_fail_in_one_line(keys):
    public = keys["evidence"].public_key()
    with pytest.raises(EvidenceError) as exc:
        crypto.seal_content("not bytes", "image/jpeg", public, EVENT)
    assert one_line(exc) == "evidence must be bytes, not str"
    with pytest.raises(EvidenceError) as exc:
        crypto.seal_content(CONTENT, 7, public, EVENT)
    assert one_line(exc) == "evidence MIME type must be a string, not int"
    with pytest.raises(EvidenceError) as exc:
        crypto.reseal_for_centre(dict(REPORT, signature="ed25519:k:s"), "x25519-aesgcm-v1:k:AAAA", keys["evidence"],
                                 keys["centre"].public_key())
    assert "seal evidence before signing" in one_line(exc)
