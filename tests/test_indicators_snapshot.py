"""Indicator rows, readers, signing and signed snapshots (build, load, tamper, delta, diff)."""
from __future__ import annotations

import base64
import json
import os
import stat

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from csadetect.core import fs
from csadetect.indicators.rows import (
    Indicator,
    IndicatorError,
    format_for,
    read_csv,
    read_hashes,
    read_indicators,
    read_jsonl,
)
from csadetect.core.keys import SigningError, generate_keypair, load_private_key, load_public_key, sign, verify
from csadetect.indicators import snapshot_build, snapshot_load, snapshot_tables
from csadetect.indicators.snapshot import (
    SnapshotError,
    build_snapshot,
    current_version,
    deltas_between,
    diff,
    info,
    load_delta,
    load_snapshot,
)
from tests.conftest import need_shared

PDQ_A = "98736629670cc19fc9f23862f66cce1f599e32c78e236c78619d202e9e66c157"
PDQ_B = "e162474a56babaadce4ccfe2231f4abdcac5342e31032bdd2eaca68bca87d516"
MD5_A = "0123456789abcdef0123456789abcdef"
SHA_A = "ab" * 32


@pytest.fixture
def keys(tmp_path):
    private, public = generate_keypair(tmp_path / "keys")
    return private, public


def _rows(n=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = [Indicator(f"p{i:03d}", "pdq", rng.bytes(32).hex(), category="cat-a" if i % 2 else "cat-b") for i in range(n)]
    rows += [Indicator("m1", "md5", MD5_A), Indicator("s1", "sha256", SHA_A, note="a note")]
    rows += [Indicator("v1", "vpdq", f"{PDQ_A} {PDQ_B}")]
    return rows


# ------------------------------------------------------------------------------- rows


def test_indicator_normalises_values():
    row = Indicator(" X1 ", "PDQ", PDQ_A.upper(), category="", source=None, added_at="2024-05-01T14:00:00+02:00")
    assert (row.indicator_id, row.kind, row.value) == ("X1", "pdq", PDQ_A)
    assert row.category == "unspecified" and row.source == "eu-centre"
    assert row.added_at == "2024-05-01T12:00:00Z" and row.active
    v = Indicator("v", "vpdq", f"{PDQ_A.upper()}  {PDQ_B}\n{PDQ_A}")
    assert v.value == f"{PDQ_A} {PDQ_B}"  # unique, single-spaced, lower case
    e = Indicator("e", "embedding", "AACAPwAAAEA=")
    assert np.frombuffer(__import__("base64").b64decode(e.value), "<f4").tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "pdq", "value": PDQ_A[:-2]}, "must be 64 hex characters, got 62"),
        ({"kind": "md5", "value": "z" * 32}, "not hexadecimal"),
        ({"kind": "sha512", "value": "a" * 128}, "unknown kind 'sha512'"),
        ({"kind": "sha1", "value": "a" * 32}, "sha1 value must be 40 hex characters, got 32"),
        ({"kind": "vpdq", "value": f"{PDQ_A} abc"}, "vpdq frame value must be 64"),
        ({"kind": "embedding", "value": "AAA"}, "embedding value"),
        ({"kind": "pdq", "value": PDQ_A, "added_at": "2024-05-01 12:00"}, "no time zone"),
        ({"kind": "pdq", "value": PDQ_A, "disabled_at": "yesterday"}, "not an RFC 3339"),
    ],
)
def test_indicator_rejects_bad_values(kwargs, message):
    with pytest.raises(IndicatorError, match=message):
        Indicator("id1", **kwargs)


def test_indicator_rejects_bad_ids():
    for bad in ("", "two words", "x" * 200):
        with pytest.raises(IndicatorError, match="indicator_id"):
            Indicator(bad, "md5", MD5_A)


def test_read_csv(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(
        "indicator_id,kind,value,category,note\n"
        f"a,pdq,{PDQ_A.upper()},cat,first\n"
        "\n"
        f"b,md5,{MD5_A},,\n"
    )
    rows = read_csv(str(path))
    assert [(r.indicator_id, r.kind, r.value, r.category, r.note) for r in rows] == [
        ("a", "pdq", PDQ_A, "cat", "first"),
        ("b", "md5", MD5_A, "unspecified", ""),
    ]
    assert read_indicators(str(path)) == rows


def test_read_csv_optional_columns(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(
        "indicator_id,kind,value,source,added_at,disabled_at\n"
        f"a,sha256,{SHA_A},hotline-x,2024-01-01T00:00:00Z,2024-02-01T00:00:00Z\n"
    )
    (row,) = read_csv(str(path))
    assert (row.source, row.added_at, row.disabled_at, row.active) == (
        "hotline-x", "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", False)


@pytest.mark.parametrize(
    "body, message",
    [
        (f"a,pdq,{PDQ_A[:10]},c,n\n", r"in\.csv:2: pdq value must be 64 hex characters, got 10"),
        (f"a,pdq,{PDQ_A},c,n\nb,sha512,{SHA_A},c,n\n", r"in\.csv:3: unknown kind 'sha512'"),
        (f"a,pdq,{PDQ_A},c,n\n\na,md5,{MD5_A},c,n\n", r"in\.csv:4: duplicate indicator_id 'a' \(first on line 2\)"),
        (f"a,pdq,{PDQ_A},c,n,extra\n", r"in\.csv:2: more fields than the header"),
        (f"a,pdq,{PDQ_A}\n", r"in\.csv:2: fewer fields than the header"),
    ],
)
def test_read_csv_bad_rows(tmp_path, body, message):
    path = tmp_path / "in.csv"
    path.write_text("indicator_id,kind,value,category,note\n" + body)
    with pytest.raises(IndicatorError, match=message) as exc:
        read_csv(str(path))
    assert "\n" not in str(exc.value)


def test_read_csv_bad_header(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(f"indicator_id,kind,valeu\na,pdq,{PDQ_A}\n")
    with pytest.raises(IndicatorError, match=r"in\.csv:1: missing column 'value'"):
        read_csv(str(path))
    path.write_text(f"indicator_id,kind,value,colour\na,pdq,{PDQ_A},red\n")
    with pytest.raises(IndicatorError, match=r"in\.csv:1: unknown column 'colour'"):
        read_csv(str(path))
    path.write_text("")
    with pytest.raises(IndicatorError, match="empty file"):
        read_csv(str(path))
    with pytest.raises(IndicatorError, match="file not found"):
        read_csv(str(tmp_path / "nope.csv"))


def test_read_jsonl(tmp_path):
    path = tmp_path / "in.jsonl"
    records = [
        {"indicator_id": "a", "kind": "pdq", "value": PDQ_A, "category": "c"},
        {"indicator_id": "b", "kind": "md5", "value": MD5_A.upper(), "disabled_at": None},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    rows = read_jsonl(str(path))
    assert [(r.indicator_id, r.value, r.category) for r in rows] == [("a", PDQ_A, "c"), ("b", MD5_A, "unspecified")]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r"in\.jsonl:2: invalid JSON"),
        ("[1, 2]", r"in\.jsonl:2: expected a JSON object"),
        ('{"indicator_id": "b", "kind": "md5"}', r"in\.jsonl:2: missing key 'value'"),
        ('{"indicator_id": "b", "kind": "md5", "value": 5}', r"in\.jsonl:2: value must be a string"),
        ('{"indicator_id": "b", "kind": "md5", "value": "%s", "colour": "x"}' % MD5_A, r"in\.jsonl:2: unknown key 'colour'"),
        ('{"indicator_id": "a", "kind": "md5", "value": "%s"}' % MD5_A, r"in\.jsonl:2: duplicate indicator_id 'a'"),
    ],
)
def test_read_jsonl_bad_rows(tmp_path, line, message):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"indicator_id": "a", "kind": "pdq", "value": PDQ_A}) + "\n" + line + "\n")
    with pytest.raises(IndicatorError, match=message):
        read_jsonl(str(path))


def test_read_needles():
    path = need_shared("pdq", "reg-test-input", "needles.txt")
    rows = read_indicators(str(path), kind="pdq")
    assert len(rows) == 100
    assert rows[0].indicator_id == "needles-1" and rows[0].kind == "pdq" and rows[0].value == PDQ_A
    assert rows[-1].indicator_id == "needles-100"


def test_read_hashes_bad_line(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text(f"# comment\n{PDQ_A}\n\n{PDQ_B}x\n")
    with pytest.raises(IndicatorError, match=r"list\.txt:4: pdq value must be 64 hex characters, got 65"):
        read_hashes(str(path), "pdq")
    path.write_text(f"{PDQ_A}\n\n{PDQ_B}\n")
    assert [r.indicator_id for r in read_hashes(str(path), "pdq")] == ["list-1", "list-3"]


def test_format_choice(tmp_path):
    assert format_for("a.csv") == "csv" and format_for("a.JSONL") == "jsonl" and format_for("a.json") == "jsonl"
    assert format_for("a.txt") == "hashes" and format_for("a.dat", "csv") == "csv"
    with pytest.raises(IndicatorError, match="cannot tell the format"):
        format_for("a.dat")
    with pytest.raises(IndicatorError, match="unknown format"):
        format_for("a.csv", "xml")
    path = tmp_path / "hashes.dat"
    path.write_text(PDQ_A + "\n")
    assert read_indicators(str(path), "hashes", "pdq")[0].value == PDQ_A


# ------------------------------------------------------------------------------- signing


def test_keys(tmp_path, keys):
    private, public = keys
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert open(private).read().startswith("-----BEGIN PRIVATE KEY-----")
    sig = sign(private, b"data")
    assert verify(public, b"data", sig) and not verify(public, b"date", sig)
    assert load_public_key(os.path.dirname(public))  # a key directory works too
    with pytest.raises(SigningError, match="refusing to overwrite"):
        generate_keypair(tmp_path / "keys")
    with pytest.raises(SigningError, match="private key not found"):
        load_private_key(tmp_path / "none.pem")
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(SigningError, match="cannot parse public key"):
        load_public_key(tmp_path / "bad.pem")
    with pytest.raises(SigningError, match="cannot parse private key"):
        load_private_key(tmp_path / "bad.pem")
    with pytest.raises(SigningError, match="is a private key"):
        load_public_key(private)


def test_a_key_pair_left_half_replaced_is_refused(tmp_path, monkeypatch):
    """A key generation stopped between its two files leaves a new private key beside the old
    public one: signing with it would make snapshots that nobody verifies, so loading refuses the
    pair with one line; generating again mends it. Both files are replaced whole."""
    from csadetect.core import fs as fsmod
    from csadetect.reports import crypto

    keydir = tmp_path / "keys"
    generate_keypair(keydir)
    old_public = (keydir / "public.pem").read_bytes()
    real = fsmod.replace_whole
    calls = []

    def stop_after_private(path, data, mode):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(path, data, mode)

    monkeypatch.setattr(fsmod, "replace_whole", stop_after_private)
    with pytest.raises(KeyboardInterrupt):
        generate_keypair(keydir, overwrite=True)
    monkeypatch.setattr(fsmod, "replace_whole", real)
    assert (keydir / "public.pem").read_bytes() == old_public  # untouched, not truncated
    assert not [p for p in os.listdir(keydir) if ".tmp" in p]
    with pytest.raises(SigningError, match="are not one key pair") as err:
        load_private_key(keydir)
    assert "\n" not in str(err.value)
    (keydir / "public.pem").write_text("not a key")  # a public file that cannot be read is no pair either
    with pytest.raises(SigningError, match="are not one key pair"):
        load_private_key(keydir / "private.pem")
    generate_keypair(keydir, overwrite=True)
    assert verify(keydir / "public.pem", b"data", sign(keydir, b"data"))
    assert stat.S_IMODE(os.stat(keydir / "public.pem").st_mode) == 0o644
    # a private key under another name is not checked against public.pem (a kept old key)
    os.replace(keydir / "private.pem", keydir / "old-private.pem")
    generate_keypair(keydir)
    assert load_private_key(keydir / "old-private.pem")
    # the review evidence keys (X25519) are checked the same way
    crypto.generate_evidence_keypair(tmp_path / "ev")
    other = crypto.generate_centre_keypair(tmp_path / "other")[1]
    os.replace(other, tmp_path / "ev" / crypto.EVIDENCE_PUBLIC_NAME)
    with pytest.raises(crypto.EvidenceError, match="are not one key pair"):
        crypto.load_evidence_private_key(tmp_path / "ev")


# ------------------------------------------------------------------------------- snapshots


def _state(snapshot):
    return {r.indicator_id: r for r in snapshot.rows()}


def test_round_trip(tmp_path, keys):
    private, public = keys
    db = str(tmp_path / "db")
    rows = _rows()
    manifest = build_snapshot(rows, db, private)
    assert manifest["version"] == 1 and manifest["type"] == "full" and manifest["parent"] is None
    assert manifest["counts"]["kinds"]["pdq"] == {"active": 30, "disabled": 0}
    assert set(manifest["files"]) == {"indicators.parquet", "pdq_codes.npy", "rows.arrow", "category_codes.npy",
                                      "source_codes.npy", "disabled_rows.npy"}  # too few pdq rows for mapped tables
    assert manifest["index"]["layout"]["pdq"] == [0, 30] and manifest["index"]["mih"] is False
    assert current_version(db) == 1
    assert sorted(os.listdir(db)) == ["CURRENT", "versions"]  # no temp files left behind
    snap = load_snapshot(db, public)
    assert snap.version == 1 and len(snap) == len(rows)
    loaded = _state(snap)
    for row in rows:
        got = loaded[row.indicator_id]
        assert got.replace(added_at=None) == row and got.added_at == manifest["created_at"]
    pdq_rows = [r for r in snap.rows() if r.kind == "pdq"]
    assert [bytes(c).hex() for c in snap.pdq_codes] == [r.value for r in pdq_rows]


def test_round_trip_through_beam_filesystems(tmp_path, keys, monkeypatch):
    monkeypatch.setattr(fs, "FORCE_BEAM", True)
    private, public = keys
    db = str(tmp_path / "db")
    build_snapshot(_rows(5), db, private)
    assert current_version(db) == 1 and len(load_snapshot(db, public)) == 8


def test_no_snapshot(tmp_path, keys):
    with pytest.raises(SnapshotError, match="no snapshot in"):
        load_snapshot(str(tmp_path / "empty"), keys[1])
    assert current_version(str(tmp_path / "empty")) is None


def test_tampered_parquet_is_refused(tmp_path, keys):
    private, public = keys
    db = str(tmp_path / "db")
    build_snapshot(_rows(), db, private)
    path = os.path.join(db, "versions", "1", "indicators.parquet")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 1
    open(path, "wb").write(bytes(data))
    with pytest.raises(SnapshotError, match=r"^checksum mismatch for indicators\.parquet in version 1$"):
        load_snapshot(db, public)


def test_tampered_codes_and_missing_file_are_refused(tmp_path, keys):
    private, public = keys
    db = str(tmp_path / "db")
    build_snapshot(_rows(), db, private)
    codes = os.path.join(db, "versions", "1", "pdq_codes.npy")
    arr = np.load(codes)
    arr[0, 0] ^= 1
    np.save(codes, arr)
    with pytest.raises(SnapshotError, match=r"checksum mismatch for pdq_codes\.npy in version 1"):
        load_snapshot(db, public)
    os.remove(codes)
    with pytest.raises(SnapshotError, match=r"pdq_codes\.npy is missing from version 1"):
        load_snapshot(db, public)


def test_verifying_without_loading_refuses_what_loading_refuses(tmp_path, keys, monkeypatch):
    """``indicators verify`` and ``info`` check a version as loading does without holding it
    (snapshot_load.verify_snapshot): a tampered or missing codes file, a codes file of another
    shape signed as if it were right, and rows that do not add up to the signed counts."""
    from csadetect.core.keys import load_private_key, sign

    private, public = keys
    db = str(tmp_path / "db")
    build_snapshot(_rows(), db, private)
    monkeypatch.setattr(snapshot_load, "_chain", None)  # never the whole chain
    expected = snapshot_tables.counts(snapshot_tables.rows_to_table(_rows()))
    assert snapshot_load.verify_snapshot(db, public)[2] == expected
    where = os.path.join(db, "versions", "1")
    codes = os.path.join(where, "pdq_codes.npy")
    kept = open(codes, "rb").read()
    arr = np.load(codes)
    np.save(codes, arr[:-1])
    with pytest.raises(SnapshotError, match=r"checksum mismatch for pdq_codes\.npy in version 1"):
        snapshot_load.verify_snapshot(db, public)

    def resign(change):  # a builder's mistake, signed: the manifest names what is on disk
        manifest = json.loads(open(os.path.join(where, "manifest.json")).read())
        change(manifest)
        body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        open(os.path.join(where, "manifest.json"), "wb").write(body)
        signature = base64.b64encode(sign(load_private_key(private), body)) + b"\n"
        open(os.path.join(where, "manifest.sig"), "wb").write(signature)

    resign(lambda m: m["files"]["pdq_codes.npy"].update(sha256=fs.sha256_file(codes)))
    with pytest.raises(SnapshotError, match=r"pdq_codes\.npy of version 1 does not match its 30 pdq rows"):
        snapshot_load.verify_snapshot(db, public)
    open(codes, "wb").write(kept)
    resign(lambda m: m["files"]["pdq_codes.npy"].update(sha256=fs.sha256_file(codes)))
    snapshot_load.verify_snapshot(db, public)
    resign(lambda m: m["counts"]["kinds"]["md5"].update(active=2))
    with pytest.raises(SnapshotError, match=r"the rows of version 1 do not add up to its signed counts"):
        snapshot_load.verify_snapshot(db, public)
    resign(lambda m: (m["counts"]["kinds"]["md5"].update(active=1), m["totals"].update(rows=99)))
    with pytest.raises(SnapshotError, match=r"the resolved rows of version 1 do not add up to its signed totals"):
        snapshot_load.verify_snapshot(db, public)
    os.remove(codes)
    with pytest.raises(SnapshotError, match=r"pdq_codes\.npy is missing from version 1"):
        snapshot_load.verify_snapshot(db, public)


def test_tampered_manifest_and_wrong_key_are_refused(tmp_path, keys):
    private, public = keys
    db = str(tmp_path / "db")
    build_snapshot(_rows(), db, private)
    _, other_public = generate_keypair(tmp_path / "other")
    with pytest.raises(SnapshotError, match="signature does not verify for version 1"):
        load_snapshot(db, other_public)
    path = os.path.join(db, "versions", "1", "manifest.json")
    text = open(path).read()
    open(path, "w").write(text.replace('"active": 30', '"active": 31'))
    with pytest.raises(SnapshotError, match="signature does not verify"):
        load_snapshot(db, public)
    open(path, "w").write(text)
    assert load_snapshot(db, public).version == 1
    os.remove(os.path.join(db, "versions", "1", "manifest.sig"))
    with pytest.raises(SnapshotError, match="has no manifest.sig"):
        load_snapshot(db, public)


def test_manifest_replayed_into_another_version_is_refused(tmp_path, keys):
    private, public = keys
    db = str(tmp_path / "db")
    build_snapshot(_rows(), db, private)
    build_snapshot(_rows(3, seed=9), db, private)
    for name in ("manifest.json", "manifest.sig", "indicators.parquet", "pdq_codes.npy"):
        src = open(os.path.join(db, "versions", "1", name), "rb").read()
        open(os.path.join(db, "versions", "2", name), "wb").write(src)
    with pytest.raises(SnapshotError, match="directory of version 2 says version 1"):
        load_snapshot(db, public)


def test_delta_and_tombstones(tmp_path, keys):
    private, public = keys
    db = str(tmp_path / "db")
    rows = _rows()
    build_snapshot(rows, db, private)
    new = Indicator("p-new", "pdq", PDQ_A, category="cat-new")
    changed = rows[1].replace(category="cat-changed")
    m2 = build_snapshot([new, changed, rows[2]], db, private, base="latest", disable_ids=["p000", "m1"])
    assert (m2["version"], m2["type"], m2["parent"]) == (2, "delta", 1)
    assert m2["counts"]["rows"] == 4  # p-new, p001 changed, p000 + m1 tombstoned; p002 unchanged is skipped
    assert m2["totals"]["kinds"]["pdq"] == {"active": 30, "disabled": 1}
    assert m2["totals"]["kinds"]["md5"] == {"active": 0, "disabled": 1}
    assert set(m2["files"]) == {"delta.parquet", "pdq_codes.npy"}

    v1, v2 = load_snapshot(db, public, 1), load_snapshot(db, public)
    assert v2.version == 2 and [m["version"] for m in v2.chain] == [1, 2]
    state = _state(v2)
    assert state["p-new"].active and state["p-new"].category == "cat-new"
    assert state["p001"].category == "cat-changed" and state["p001"].added_at == _state(v1)["p001"].added_at
    assert not state["p000"].active and state["p000"].disabled_at == m2["created_at"]
    assert not state["m1"].active and state["p002"] == _state(v1)["p002"]
    codes = {r.indicator_id: bytes(c).hex() for r, c in zip([r for r in v2.rows() if r.kind == "pdq"], v2.pdq_codes)}
    assert codes["p-new"] == PDQ_A and all(codes[k] == state[k].value for k in codes)

    d = diff(v1, v2)
    assert d["added"] == ["p-new"] and d["disabled"] == ["m1", "p000"] and d["changed"] == ["p001"]
    assert d["removed"] == [] and d["enabled"] == [] and (d["from"], d["to"]) == (1, 2)

    # tombstones are sticky: re-importing the original rows does not re-enable p000
    m3 = build_snapshot(rows, db, private, base="latest")
    assert m3["counts"]["rows"] == 1  # only p001's category goes back
    assert not _state(load_snapshot(db, public))["p000"].active

    assert [d.version for d in deltas_between(db, public, 1)] == [2, 3]
    assert deltas_between(db, public, 3) == []
    assert load_delta(db, public, 2).parent == 1


def test_a_delta_reads_only_the_base_rows_it_names(tmp_path, keys, monkeypatch):
    """A delta build reads, of its base chain, only the rows of the ids it names (batch by batch,
    each file verified first) and derives its totals from the parent's: over random rounds of adds,
    changes, re-imports and tombstones on a chain of deltas, each version's totals and resolved rows
    are those of loading the whole chain, and no version is ever loaded whole while building."""
    from csadetect.indicators.snapshot_tables import counts

    private, public = keys
    db = str(tmp_path / "db")
    rng = np.random.default_rng(5)
    rows = {r.indicator_id: r for r in _rows(40)}
    build_snapshot(list(rows.values()), db, private)
    dead: set = set()
    for round_ in range(6):
        batch = []
        for ident in rng.choice(sorted(rows), size=8, replace=False):
            row = rows[ident]
            batch.append(row.replace(category=f"cat-{round_}") if rng.random() < 0.5 else row)
        batch += [Indicator(f"n{round_}-{i}", "md5", rng.bytes(16).hex()) for i in range(3)]
        gone = [str(i) for i in rng.choice(sorted(rows), size=2, replace=False)]
        with monkeypatch.context() as m:
            m.setattr(snapshot_load, "_chain", None)  # a delta build must not load its base whole
            manifest = build_snapshot(batch, db, private, base="latest", disable_ids=gone)
        rows.update({r.indicator_id: r for r in batch})
        dead.update(gone)
        whole = load_snapshot(db, public)
        assert manifest["totals"] == counts(whole.table)
        # the resolved rows a batch at a time (export, compact): those of loading the chain whole, in its order
        for size in (1, 7, 1000):
            with monkeypatch.context() as m:
                m.setattr(snapshot_load, "_chain", None)
                m.setattr(snapshot_load, "READ_BATCH", size)
                version, batches = snapshot_load.resolved_batches(db, public)
                assert version == manifest["version"] and pa.concat_tables(batches()).equals(whole.table)
                _, batches = snapshot_load.resolved_batches(db, public, ordered=False)
                unordered = pa.concat_tables(batches())
                assert unordered.take(snapshot_tables.sort_order(unordered)).equals(whole.table)
                # verified as loading does, the totals counted a batch at a time
                version, chain, totals = snapshot_load.verify_snapshot(db, public)
                assert [m["version"] for m in chain] == [m["version"] for m in whole.chain]
                assert totals == counts(whole.table) == chain[-1]["totals"]
        state = _state(whole)
        assert set(state) == set(rows) and {i for i, r in state.items() if not r.active} == dead
        assert all(state[i].category == rows[i].category for i in rows)


def test_delta_chain_is_verified_back_to_the_base(tmp_path, keys):
    private, public = keys
    db = str(tmp_path / "db")
    build_snapshot(_rows(), db, private)
    build_snapshot([Indicator("x", "md5", MD5_A.replace("0", "f"))], db, private, base="latest")
    path = os.path.join(db, "versions", "1", "indicators.parquet")
    open(path, "ab").write(b"junk")
    with pytest.raises(SnapshotError, match="checksum mismatch for indicators.parquet in version 1"):
        load_snapshot(db, public)
    # a delta build reads the base chain's rows it needs, each file verified first
    with pytest.raises(SnapshotError, match="^checksum mismatch for indicators.parquet in version 1$"):
        build_snapshot([Indicator("y", "md5", MD5_A)], db, private, base="latest")
    os.remove(path)
    with pytest.raises(SnapshotError, match="^indicators.parquet is missing from version 1$"):
        build_snapshot([Indicator("y", "md5", MD5_A)], db, private, base="latest")
    assert sorted(os.listdir(os.path.join(db, "versions"))) == ["1", "2"]


def test_delta_errors(tmp_path, keys):
    private, public = keys
    db = str(tmp_path / "db")
    with pytest.raises(SnapshotError, match="no snapshot in .* to base a delta on"):
        build_snapshot(_rows(), db, private, base="latest")
    build_snapshot(_rows(), db, private)
    with pytest.raises(SnapshotError, match="cannot disable 'nope': no such indicator"):
        build_snapshot([], db, private, base="latest", disable_ids=["nope"])
    with pytest.raises(SnapshotError, match="version 7 not found"):
        build_snapshot([], db, private, base=7)
    with pytest.raises(SnapshotError, match="base must be 'latest' or a version number"):
        build_snapshot([], db, private, base="newest")
    assert current_version(db) == 1


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 6), min_size=1, max_size=5), data=st.data())
def test_take_rows_equals_arrows_take(sizes, data):
    """take_rows gathers chunk by chunk (Arrow's take concatenates every chunk first) and gives what
    Arrow's take gives, for any chunking and any indices, repeats and empty chunks included."""
    chunks, start = [], 0
    for size in sizes:
        chunks.append(pa.table({"id": [f"i{start + k}" for k in range(size)], "n": list(range(start, start + size))},
                               schema=pa.schema([("id", pa.string()), ("n", pa.int64())])))
        start += size
    table = pa.concat_tables(chunks)
    indices = data.draw(st.lists(st.integers(0, start - 1), max_size=12)) if start else []
    assert snapshot_tables.take_rows(table, indices).equals(table.take(pa.array(indices, pa.int64())))


@pytest.mark.parametrize("chunk", [1 << 20, 2])
def test_a_repeated_id_is_refused_by_name(tmp_path, keys, monkeypatch, chunk):
    """Ids are checked sorted, neighbour by neighbour, a chunk at a time: a repeat is found across
    kinds and across a chunk's edge (chunks of 2 rows), and nothing is written."""
    monkeypatch.setattr(snapshot_build, "WRITE_CHUNK", chunk)
    db = str(tmp_path / "db")
    table = pa.table({"indicator_id": ["a", "m", "b", "z", "m"], "kind": ["pdq", "md5", "pdq", "md5", "pdq"],
                      "value": ["f" * 64, "0" * 32, "e" * 64, "1" * 32, "d" * 64]})
    with pytest.raises(SnapshotError, match="^indicator id 'm' appears more than once$"):
        build_snapshot(table, db, keys[0])
    assert not os.path.exists(db)
    bad = table.slice(0, 4).set_column(2, "value", pa.array(["f" * 64, "0" * 32, "e" * 64, "1" * 31]))
    with pytest.raises(SnapshotError, match="32 hex"):  # in the last chunk, once the pdq rows' were written
        build_snapshot(bad, db, keys[0])
    assert os.listdir(os.path.join(db, "versions")) == []  # the staging directory is gone
    build_snapshot(table.slice(0, 4), db, keys[0])
    assert len(load_snapshot(db, keys[1])) == 4


def test_full_snapshot_with_disable(tmp_path, keys):
    private, public = keys
    db = str(tmp_path / "db")
    m = build_snapshot(_rows(), db, private, disable_ids=["s1"])
    assert m["counts"]["kinds"]["sha256"] == {"active": 0, "disabled": 1}
    assert not _state(load_snapshot(db, public))["s1"].active


def test_info(tmp_path, keys):
    private, public = keys
    db = str(tmp_path / "db")
    build_snapshot(_rows(), db, private)
    build_snapshot([], db, private, base="latest", disable_ids=["v1"])
    checked = info(db, public)
    assert checked["verified"] and checked["current"] == 2 and [c["version"] for c in checked["chain"]] == [1, 2]
    assert checked["totals"]["kinds"]["vpdq"] == {"active": 0, "disabled": 1}
    unchecked = info(db)
    assert not unchecked["verified"] and unchecked["totals"] == checked["totals"]
    assert info(db, public, version=1)["totals"]["kinds"]["vpdq"] == {"active": 1, "disabled": 0}


@settings(max_examples=60, deadline=None, database=None)
@given(rows=st.lists(st.tuples(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6),
                               st.sampled_from(snapshot_tables.names())), max_size=40, unique_by=lambda r: r[0]))
def test_the_canonical_order_from_the_id_sort_is_the_two_key_sort(rows):
    """A full build sorts the ids once (the uniqueness check) and only ranks the kinds after it."""
    table = pa.table({"indicator_id": pa.array([r[0] for r in rows], pa.string()),
                      "kind": pa.array([r[1] for r in rows], pa.string())})
    by_id = snapshot_build._check_unique(table["indicator_id"])
    assert snapshot_tables.sort_order(table, by_id).tolist() == snapshot_tables.sort_order(table).tolist()
