"""Provider signatures and sealed evidence on reports (DESIGN §6/§7), and ``csadetect reports``."""
from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from csadetect.reports import crypto
from csadetect.cli import reports as reports_cli
from csadetect.reports.crypto import EvidenceError, ReportSignatureError
from csadetect.reports.schema import REPORT_SCHEMA, report_id, to_json_line, to_table
from csadetect.core.keys import generate_keypair, key_id

# benign stand-in for evidence: a few bytes that are not an image of anything
EVIDENCE = b"\x89PNG\r\n\x1a\n benign test bytes \x00\x01\x02"


def make_report(event_id: str = "evt-1", **fields) -> dict:
    report = {name: None for name in REPORT_SCHEMA.names}
    report.update(
        report_id=report_id("provider-x", event_id, "known-hash"),
        schema_version="1.0",
        provider_id="provider-x",
        created_at="2024-01-02T03:04:05Z",
        detection_type="known",
        detector="known-hash",
        detector_version="indicators-v3",
        score=0.875,
        threshold=0.5,
        distance=4.0,
        indicator_ids=["ind-1", "ind-2"],
        categories=["test"],
        matches=[
            {"indicator_id": "ind-1", "kind": "pdq", "distance": 4.0, "category": "test"},
            {"indicator_id": "ind-2", "kind": "md5", "distance": 0.0, "category": "test"},
        ],
        review_status="auto_confirmed",
        content_kind="image",
        mime="image/png",
        event_id=event_id,
        service="photos",
        occurred_at="2024-01-02T03:00:00Z",
        account="user-42",
        ip="192.0.2.7",
        port=443,
        country="DE",
        content_removed=True,
        urgent=False,
        legal_basis="Art. 13",
    )
    report.update(fields)
    return report


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    provider_priv, provider_pub = generate_keypair(root / "provider")
    other_priv, other_pub = generate_keypair(root / "other")
    centre_priv, centre_pub = crypto.generate_centre_keypair(root / "centre")
    other_centre_priv, _ = crypto.generate_centre_keypair(root / "other_centre")
    return argparse.Namespace(
        provider_priv=provider_priv, provider_pub=provider_pub, other_priv=other_priv, other_pub=other_pub,
        centre_priv=centre_priv, centre_pub=centre_pub, other_centre_priv=other_centre_priv,
    )


def sealed_signed(keys, event_id: str = "evt-1", content: bytes = EVIDENCE) -> dict:
    report = crypto.seal_evidence(make_report(event_id), content, "image/png", keys.centre_pub)
    return crypto.sign_report(report, keys.provider_priv)


# ------------------------------------------------------------------------------- signatures


def test_sign_verify_round_trip(keys):
    report = make_report()
    signed = crypto.sign_report(report, keys.provider_priv)
    assert report["signature"] is None  # a copy: the input is untouched
    scheme, kid, sig = signed["signature"].split(":")
    assert scheme == "ed25519" and kid == key_id(keys.provider_pub) and len(sig) == 88
    crypto.verify_report(signed, keys.provider_pub)
    # survives JSON Lines and Parquet round trips
    crypto.verify_report(json.loads(to_json_line(signed)), keys.provider_pub)
    crypto.verify_report(to_table([signed]).to_pylist()[0], keys.provider_pub)
    # absent schema fields count as null
    trimmed = {k: v for k, v in signed.items() if v is not None}
    crypto.verify_report(trimmed, keys.provider_pub)


def test_canonical_bytes_excludes_signature_and_is_stable(keys):
    report = make_report()
    signed = crypto.sign_report(report, keys.provider_priv)
    assert crypto.canonical_bytes(report) == crypto.canonical_bytes(signed)
    assert crypto.canonical_bytes(dict(reversed(list(report.items())))) == crypto.canonical_bytes(report)
    assert b"signature" not in crypto.canonical_bytes(signed)
    compact = crypto.canonical_bytes(make_report(legal_basis="Art13", account="\u00e9"))
    assert b" " not in compact and "\u00e9".encode("utf-8") in compact


@pytest.mark.parametrize(
    "field,value",
    [
        ("score", 0.876),
        ("account", "user-43"),
        ("indicator_ids", ["ind-1"]),
        ("evidence_encrypted", "x25519-aesgcm-v1:0000:AAAA"),
        ("created_at", "2024-01-02T03:04:06Z"),
        ("matches", []),
        ("port", 444),
        ("extra_field", "added"),
    ],
)
def test_any_altered_field_fails(keys, field, value):
    signed = sealed_signed(keys)
    altered = dict(signed, **{field: value})
    with pytest.raises(ReportSignatureError) as exc:
        crypto.verify_report(altered, keys.provider_pub)
    msg = str(exc.value)
    assert msg == f"report {signed['report_id']}: signature does not verify (report altered or wrong key)"
    assert "\n" not in msg


def test_altered_ciphertext_fails_verification(keys):
    signed = sealed_signed(keys)
    token = signed["evidence_encrypted"]
    flipped = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(ReportSignatureError, match="does not verify"):
        crypto.verify_report(dict(signed, evidence_encrypted=flipped), keys.provider_pub)


def test_wrong_key_and_unsigned(keys):
    signed = sealed_signed(keys)
    rid = signed["report_id"]
    with pytest.raises(ReportSignatureError) as exc:
        crypto.verify_report(signed, keys.other_pub)
    assert str(exc.value) == f"report {rid}: signed by key {key_id(keys.provider_pub)}, not {key_id(keys.other_pub)}"
    # a signature forged to claim the verifier's key id still fails
    _, _, sig = signed["signature"].split(":")
    forged = dict(signed, signature=f"ed25519:{key_id(keys.other_pub)}:{sig}")
    with pytest.raises(ReportSignatureError, match="signature does not verify"):
        crypto.verify_report(forged, keys.other_pub)
    with pytest.raises(ReportSignatureError) as exc:
        crypto.verify_report(make_report(), keys.provider_pub)
    assert str(exc.value) == f"report {rid}: not signed"
    with pytest.raises(ReportSignatureError, match="malformed signature"):
        crypto.verify_report(dict(signed, signature="ed25519:abc:!!!"), keys.provider_pub)


# ------------------------------------------------------------------------------- sealing


def test_centre_keypair_files(keys):
    assert os.path.basename(keys.centre_priv) == "centre_private.pem"
    assert stat.S_IMODE(os.stat(keys.centre_priv).st_mode) == 0o600
    with pytest.raises(EvidenceError, match="refusing to overwrite"):
        crypto.generate_centre_keypair(os.path.dirname(keys.centre_priv))
    with pytest.raises(EvidenceError, match="not an X25519 key"):
        crypto.load_centre_private_key(keys.provider_priv)


def test_seal_open_round_trip(keys):
    token = crypto.seal(b"hello evidence", keys.centre_pub, b"rid-1")
    assert token.startswith("x25519-aesgcm-v1:")
    assert b"hello evidence" not in token.encode()
    assert crypto.open_sealed(token, keys.centre_priv, b"rid-1") == b"hello evidence"
    # fresh ephemeral key and nonce each time
    assert crypto.seal(b"hello evidence", keys.centre_pub, b"rid-1") != token


def test_wrong_report_id_fails(keys):
    token = crypto.seal(b"hello evidence", keys.centre_pub, b"rid-1")
    with pytest.raises(EvidenceError) as exc:
        crypto.open_sealed(token, keys.centre_priv, b"rid-2")
    assert "moved from another report" in str(exc.value) and "\n" not in str(exc.value)
    # evidence moved into another report does not open there
    a, b = sealed_signed(keys, "evt-a"), make_report("evt-b")
    moved = dict(b, evidence_encrypted=a["evidence_encrypted"])
    with pytest.raises(EvidenceError, match=f"report {b['report_id']}: sealed evidence does not decrypt"):
        crypto.open_evidence(moved, keys.centre_priv)


def test_tampered_ciphertext_and_wrong_key_fail(keys):
    import base64

    token = crypto.seal(b"hello evidence", keys.centre_pub, b"rid-1")
    version, kid, body = token.split(":")
    raw = bytearray(base64.b64decode(body))
    for pos in (0, 40, len(raw) - 1):  # ephemeral key, nonce, tag
        bad = bytearray(raw)
        bad[pos] ^= 0x01
        with pytest.raises(EvidenceError):
            crypto.open_sealed(f"{version}:{kid}:{base64.b64encode(bytes(bad)).decode()}", keys.centre_priv, b"rid-1")
    with pytest.raises(EvidenceError, match="sealed for centre key"):
        crypto.open_sealed(token, keys.other_centre_priv, b"rid-1")
    with pytest.raises(EvidenceError, match="too short"):
        crypto.open_sealed(f"{version}:{kid}:AAAA", keys.centre_priv, b"rid-1")
    with pytest.raises(EvidenceError, match="unsupported sealed evidence version"):
        crypto.open_sealed("x25519-aesgcm-v9:" + kid + ":" + body, keys.centre_priv, b"rid-1")


def test_seal_evidence_before_signing(keys):
    signed = sealed_signed(keys)
    crypto.verify_report(signed, keys.provider_pub)
    assert crypto.open_evidence(signed, keys.centre_priv) == ("image/png", EVIDENCE)
    with pytest.raises(EvidenceError, match="seal evidence before signing"):
        crypto.seal_evidence(signed, b"x", "image/png", keys.centre_pub)


# ------------------------------------------------------------------------------- CLI


def run(capsys, *argv):
    parser = argparse.ArgumentParser(prog="csadetect")
    subparsers = parser.add_subparsers(dest="command", required=True)
    reports_cli.register(subparsers)
    args = parser.parse_args([str(a) for a in argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


@pytest.fixture
def report_files(tmp_path, keys):
    """A JSONL file and a Parquet file, each with one tampered report among good ones."""
    good = [sealed_signed(keys, f"evt-{i}", content=EVIDENCE + bytes([i])) for i in range(3)]
    tampered_jsonl = dict(good[1], score=0.01)
    jsonl = tmp_path / "in" / "reports.jsonl"
    jsonl.parent.mkdir()
    jsonl.write_text("".join(to_json_line(r) + "\n" for r in (good[0], tampered_jsonl, good[2])))
    more = [sealed_signed(keys, f"evt-p{i}", content=EVIDENCE + bytes([10 + i])) for i in range(2)]
    tampered_parquet = dict(more[0], account="someone-else")
    parquet = tmp_path / "in" / "reports.parquet"
    pq.write_table(to_table([tampered_parquet, more[1]]), parquet)
    return argparse.Namespace(jsonl=jsonl, parquet=parquet, good=good, more=more,
                              bad_ids={tampered_jsonl["report_id"], tampered_parquet["report_id"]})


def test_cli_verify(capsys, keys, report_files):
    code, out, err = run(capsys, "reports", "verify", "--public-key", keys.provider_pub, report_files.jsonl,
                         report_files.parquet)
    assert code == 1
    assert len(out) == 5
    failed = {o["report_id"]: o["error"] for o in out if not o["ok"]}
    assert set(failed) == report_files.bad_ids
    for rid, error in failed.items():
        assert error == f"report {rid}: signature does not verify (report altered or wrong key)"
    assert all(set(o) == {"report_id", "ok"} for o in out if o["ok"])
    assert "3 of 5 reports verify" in err and "2 FAILED" in err
    assert "x25519-aesgcm" not in json.dumps(out) + err  # never prints evidence

    # a directory works, good files only exit 0
    good = report_files.jsonl.parent.parent / "good"
    good.mkdir()
    (good / "a.jsonl").write_text(to_json_line(report_files.good[0]) + "\n")
    code, out, err = run(capsys, "reports", "verify", "--public-key", keys.provider_pub, good)
    assert code == 0 and out == [{"report_id": report_files.good[0]["report_id"], "ok": True}]

    # the wrong key: every report fails, named, one line
    code, out, _ = run(capsys, "reports", "verify", "--public-key", keys.other_pub, good)
    assert code == 1 and "signed by key" in out[0]["error"]

    # bad inputs: one line on stderr
    code, out, err = run(capsys, "reports", "verify", "--public-key", keys.provider_pub, good / "missing.jsonl")
    assert code == 1 and err.strip().startswith("error:") and "missing.jsonl" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, "reports", "verify", "--public-key", keys.centre_pub, good)
    assert code == 1 and err.startswith("error:") and "not an Ed25519 key" in err
    (good / "b.jsonl").write_text("not json\n")
    code, out, err = run(capsys, "reports", "verify", "--public-key", keys.provider_pub, good / "b.jsonl")
    assert code == 1 and out == [{"report_id": None, "ok": False, "error": f"{good / 'b.jsonl'}:1: not valid JSON"}]


def test_cli_decrypt(capsys, tmp_path, keys, report_files):
    outdir = tmp_path / "evidence"
    code, out, err = run(capsys, "reports", "decrypt", "--key", keys.centre_priv, "--out", outdir,
                         report_files.jsonl, report_files.parquet)
    # decrypt does not check signatures: the tampered reports' evidence still opens
    assert code == 0 and len(out) == 5 and all(o["ok"] for o in out)
    assert "signatures not checked" in err
    expected = {r["report_id"]: EVIDENCE + bytes([i]) for i, r in enumerate(report_files.good)}
    expected.update({r["report_id"]: EVIDENCE + bytes([10 + i]) for i, r in enumerate(report_files.more)})
    for o in out:
        assert o["out"] == str(outdir / f"{o['report_id']}.png") and o["mime"] == "image/png"
        assert stat.S_IMODE(os.stat(o["out"]).st_mode) == 0o600
        with open(o["out"], "rb") as fh:
            assert fh.read() == expected[o["report_id"]]
    assert "content" not in json.dumps(out)

    # a rerun leaves the same evidence as it is; a file with other content is kept unless --force
    code, again, _ = run(capsys, "reports", "decrypt", "--key", keys.centre_priv, "--out", outdir, report_files.jsonl)
    assert code == 0 and all(o["ok"] for o in again)
    other = Path(again[0]["out"])
    other.write_bytes(b"something else")
    code, again, err = run(capsys, "reports", "decrypt", "--key", keys.centre_priv, "--out", outdir, report_files.jsonl)
    assert code == 1 and again[0] == {"report_id": again[0]["report_id"], "ok": False,
                                      "error": f"{other} exists with other content; pass --force to replace it"}
    assert other.read_bytes() == b"something else" and all(o["ok"] for o in again[1:]) and "1 FAILED" in err
    code, again, _ = run(capsys, "reports", "decrypt", "--key", keys.centre_priv, "--out", outdir, "--force",
                         report_files.jsonl)
    assert code == 0 and other.read_bytes() == expected[again[0]["report_id"]]

    # evidence moved between reports, and the wrong centre key: named, exit 1
    moved = dict(report_files.good[0], evidence_encrypted=report_files.good[1]["evidence_encrypted"])
    bad = tmp_path / "moved.jsonl"
    bad.write_text(to_json_line(moved) + "\n" + to_json_line(report_files.good[2]) + "\n")
    code, out, err = run(capsys, "reports", "decrypt", "--key", keys.centre_priv, "--out", tmp_path / "e2", bad)
    assert code == 1 and [o["ok"] for o in out] == [False, True]
    assert out[0]["report_id"] == moved["report_id"] and "does not decrypt" in out[0]["error"]
    code, out, err = run(capsys, "reports", "decrypt", "--key", keys.other_centre_priv, "--out", tmp_path / "e3",
                         report_files.parquet)
    assert code == 1 and all("sealed for centre key" in o["error"] for o in out)
    code, out, err = run(capsys, "reports", "decrypt", "--key", keys.provider_priv, "--out", tmp_path / "e4", bad)
    assert code == 1 and err.startswith("error:") and "not an X25519 key" in err


def test_cli_centre_keygen(capsys, tmp_path):
    code, out, err = run(capsys, "reports", "centre-keygen", "--out", tmp_path / "c")
    assert code == 0 and out[0]["private_key"].endswith("centre_private.pem") and "keep it secret" in err
    code, _, err = run(capsys, "reports", "centre-keygen", "--out", tmp_path / "c")
    assert code == 1 and "refusing to overwrite" in err


# ------------------------------------------------------------------------------- duplicate keys


def _forged_line(report: dict, field: str, forged) -> str:
    """A signed report as one JSON line with ``field`` repeated: the forged value first, the signed
    value last (what Python's json keeps), so a first-wins reader would see the forged one."""
    line = to_json_line(report)
    return "{" + json.dumps(field) + ":" + json.dumps(forged) + "," + line[1:]


def test_loads_strict_refuses_duplicate_keys_at_any_depth():
    assert crypto.loads_strict('{"a": 1, "b": [{"c": 2}]}') == {"a": 1, "b": [{"c": 2}]}
    assert crypto.loads_strict(b'{"a": "\\u00e9"}') == {"a": "\u00e9"}
    for text in ('{"a": 1, "a": 1}', '{"a": 1, "a": 2}', '{"m": [{"k": 1, "k": 2}]}', '{"o": {"x": {"y": 1, "y": 1}}}'):
        with pytest.raises(crypto.DuplicateKeyError, match="^duplicate key in a JSON object$"):
            crypto.loads_strict(text)
    for text in ('{"score": NaN}', '{"score": Infinity}', "not json"):
        with pytest.raises(ValueError):
            crypto.loads_strict(text)
    with pytest.raises(UnicodeDecodeError):
        crypto.loads_strict(b'{"a": "\xff"}')


def test_duplicate_key_report_would_verify_last_wins_but_is_refused(keys):
    """The attack: Python's last-wins parse verifies, while the forged first value is what a
    first-wins reader shows. A strict parse refuses the line before any signature check."""
    report = sealed_signed(keys)
    line = _forged_line(report, "account", "someone-else")
    crypto.verify_report(json.loads(line), keys.provider_pub)  # last-wins: the signed value, it verifies
    with pytest.raises(crypto.DuplicateKeyError):
        crypto.loads_strict(line)


def test_forged_duplicate_key_report_fails_reports_verify(capsys, tmp_path, keys):
    good, forged = sealed_signed(keys, "evt-a"), sealed_signed(keys, "evt-b")
    nested = sealed_signed(keys, "evt-c")
    line = to_json_line(nested)
    nested_line = line.replace('"distance":4.0,', '"distance":0.0,"distance":4.0,', 1)  # inside matches[0]
    assert nested_line != line
    path = tmp_path / "forged.jsonl"
    path.write_text(to_json_line(good) + "\n" + _forged_line(forged, "account", "someone-else") + "\n"
                    + nested_line + "\n")
    code, out, err = run(capsys, "reports", "verify", "--public-key", keys.provider_pub, path)
    assert code == 1 and "1 of 3 reports verify" in err and "2 FAILED" in err
    assert out[0] == {"report_id": good["report_id"], "ok": True}
    for lineno, result in ((2, out[1]), (3, out[2])):
        assert result == {"report_id": None, "ok": False, "error":
                          f"{path}:{lineno}: duplicate key in a JSON object (refused: a signed report has one value per field)"}
    assert "someone-else" not in json.dumps(out) + err  # the reason never quotes content


def test_readers_refuse_duplicate_key_reports(tmp_path, keys):
    """Every reader of signed reports parses strictly: report files (``csadetect reports``, the
    console's file ingest), the console's subscription, and the feedback pipeline."""
    from csadetect.console.ingest import ReportIngest
    from csadetect.console.storage.memory import MemoryConsoleStore
    from csadetect.feedback.verdicts import decode
    from csadetect.reports.files import read_reports
    from csadetect.transforms.feedback import ParseReportFn

    report = crypto.sign_report(make_report("evt-dup", order_id="ORDER-1"), keys.provider_priv)  # console-valid
    line = _forged_line(report, "account", "someone-else")
    store_dir = tmp_path / "reports"
    store_dir.mkdir()
    (store_dir / "r.jsonl").write_text(line + "\n")
    [(obj, reason)] = list(read_reports(str(store_dir / "r.jsonl")))
    assert obj is None and "duplicate key" in reason

    ingest = ReportIngest(MemoryConsoleStore(), provider_key=keys.provider_pub)
    counts = ingest.read_store(str(store_dir))
    assert counts == {"invalid": 1} and not ingest.store.has_report(report["report_id"])
    (store_dir / "r.jsonl").write_text(to_json_line(report) + "\n")
    assert ingest.read_store(str(store_dir)) == {"added": 1}  # the same report, signed once: accepted

    with pytest.raises(ValueError):
        decode(line.encode())
    fn = ParseReportFn(keys.provider_pub)
    fn.setup()
    assert list(fn.process(line.encode())) == []
    assert [r["report_id"] for r in fn.process(to_json_line(report).encode())] == [report["report_id"]]


def test_parquet_with_a_repeated_column_is_refused(tmp_path, keys):
    import pyarrow as pa

    from csadetect.reports.files import ReportFileError, read_reports

    table = to_table([sealed_signed(keys)])
    doubled = pa.Table.from_arrays(table.columns + [pa.array(["someone-else"])], names=table.column_names + ["account"])
    path = tmp_path / "doubled.parquet"
    pq.write_table(doubled, path)
    with pytest.raises(ReportFileError, match="a column or field name is repeated"):
        list(read_reports(str(path)))
    pq.write_table(table, tmp_path / "ok.parquet")
    assert len(list(read_reports(str(tmp_path / "ok.parquet")))) == 1
