"""CLI round trip: keygen -> from-media -> build -> verify -> info -> match, deltas, diff, errors."""
from __future__ import annotations

import csv
import json
import os
import shutil

import pytest

from csadetect.cli import indicators as cli
from csadetect.media import synth
from csadetect.models.embedding import KIND
from csadetect.signals.embedding import (EMBEDDING_BOXES, EMBEDDING_CROPS, EMBEDDING_REGIONS, EMBEDDING_ROTATIONS,
                                         EMBEDDING_TURNS, embedding_views)
from tests.cli_helpers import run_cli as run
from tests.conftest import need_shared


@pytest.fixture
def media(tmp_path):
    """Known images (copied into tmp: from-media notes the file names) and query images."""
    dih = need_shared("pdq", "reg-test-input", "dih")
    labelme = need_shared("pdq", "reg-test-input", "labelme-subset")
    known = tmp_path / "known"
    known.mkdir()
    shutil.copy(dih / "bridge-1-original.jpg", known)
    shutil.copy(labelme / "q0122.jpg", known)
    return known, dih, labelme


def test_round_trip(tmp_path, capsys, media):
    known, dih, labelme = media
    keys, csv_path, db = tmp_path / "keys", tmp_path / "rows.csv", tmp_path / "db"

    code, out, err = run(capsys, "indicators", "keygen", "--out", keys)
    assert code == 0 and out[0]["public_key"].endswith("public.pem") and "keep it secret" in err
    code, _, err = run(capsys, "indicators", "keygen", "--out", keys)
    assert code == 1 and err.strip().startswith("error:") and "refusing to overwrite" in err

    # hash rows only here (embedding rows: test_embedding_rows_and_near_duplicates)
    code, out, _ = run(capsys, "indicators", "from-media", "--no-embedding", "--out", csv_path, "--category", "test", known)
    assert code == 0 and out == [{"out": str(csv_path), "files": 2, "failed": 0, "rows": 8}]  # pdq, pdq-value, md5, sha256 each
    with open(csv_path) as fh:
        assert fh.readline().strip() == "indicator_id,kind,value,category,note"
        rows = list(csv.DictReader(open(csv_path)))
    assert {r["note"] for r in rows} == {"bridge-1-original.jpg", "q0122.jpg"} and {r["category"] for r in rows} == {"test"}
    bridge_pdq = next(r["indicator_id"] for r in rows if r["kind"] == "pdq" and r["note"].startswith("bridge"))

    code, out, err = run(capsys, "indicators", "build", "--input", csv_path, "--key", keys / "private.pem", "--out", db)
    assert code == 0 and out[0]["version"] == 1 and out[0]["type"] == "full" and "built version 1" in err

    code, out, _ = run(capsys, "indicators", "verify", "--public-key", keys / "public.pem", db)
    assert code == 0 and out[0]["ok"] and out[0]["version"] == 1 and out[0]["chain"] == [1]

    code, out, err = run(capsys, "indicators", "info", db)
    assert code == 0 and not out[0]["verified"] and "not verified" in err
    code, out, _ = run(capsys, "indicators", "info", "--public-key", keys, db)  # a key directory works
    assert code == 0 and out[0]["verified"] and out[0]["totals"]["kinds"]["pdq"] == {"active": 4, "disabled": 0}

    missing = tmp_path / "gone.jpg"
    code, out, err = run(capsys, "match", "--no-embedding", "--indicators", db, "--public-key", keys / "public.pem",
                         dih, labelme / "q0291.jpg", missing)
    assert code == 1
    by_name = {os.path.basename(o["path"]): o for o in out}
    assert len(by_name) == 10
    for name in os.listdir(dih):
        hit = by_name[name]
        # the picture's pdq row and its value channel's (csadetect.media.view_value)
        assert hit["matched"] and [m["indicator_id"] for m in hit["matches"] if m["kind"] == "pdq"] == [
            bridge_pdq, bridge_pdq + "-value"]
        assert set(hit["matches"][0]) == {"indicator_id", "kind", "distance", "category", "threshold", "note", "view",
                                          "transform", "quality"}
        assert len(hit["matches"]) == (4 if name == "bridge-1-original.jpg" else 2)  # + md5, sha256
    exact = by_name["bridge-1-original.jpg"]["matches"]
    assert exact[0] == {"indicator_id": bridge_pdq, "kind": "pdq", "distance": 0, "category": "test", "threshold": 31,
                        "note": "bridge-1-original.jpg", "view": "original", "transform": "original", "quality": 100}
    assert [m["kind"] for m in exact] == ["pdq", "pdq", "md5", "sha256"]
    assert by_name["q0291.jpg"] == {"path": str(labelme / "q0291.jpg"), "matched": False, "matches": []}
    assert by_name["gone.jpg"] == {"path": str(missing), "error": "file not found"}
    assert "version 1" in err

    # a delta that tombstones the bridge's perceptual rows: they stop matching; diff reports them
    code, out, _ = run(capsys, "indicators", "build", "--key", keys / "private.pem", "--out", db,
                       "--base", "latest", "--disable", bridge_pdq, bridge_pdq + "-value")
    assert code == 0 and out[0]["version"] == 2 and out[0]["parent"] == 1
    code, out, _ = run(capsys, "match", "--no-embedding", "--indicators", db, "--public-key", keys / "public.pem",
                       dih / "bridge-1-original.jpg")
    assert code == 0 and [m["kind"] for m in out[0]["matches"]] == ["md5", "sha256"]
    code, out, err = run(capsys, "indicators", "diff", "--public-key", keys / "public.pem", db, 1, 2)
    assert code == 0 and out[0]["disabled"] == [bridge_pdq, bridge_pdq + "-value"] and out[0]["added"] == []
    assert "2 disabled" in err

    # diff of two databases
    other = tmp_path / "db2"
    shutil.copytree(db, other)
    code, out, _ = run(capsys, "indicators", "diff", "--public-key", keys / "public.pem", db, other)
    assert code == 0 and out[0]["added"] == out[0]["disabled"] == out[0]["changed"] == []


def test_embedding_rows_and_near_duplicates(tmp_path, capsys):
    """With the (default) embedding model configured, from-media adds versioned embedding rows
    per image (the image and its index-side views), and match reports a rotated, cropped copy that PDQ misses as an embedding
    near-duplicate, with the similarity; an unrelated image matches nothing."""
    known, queries = tmp_path / "known", tmp_path / "q"
    known.mkdir(), queries.mkdir()
    originals = [synth.synthetic_image(100000 + i, (480, 360)) for i in range(3)]
    for i, img in enumerate(originals):
        img.save(known / f"k{i}.jpg", quality=92)
    synth.corner_crop(originals[0]).save(queries / "crop.jpg")
    synth.synthetic_image(555555, (480, 360)).save(queries / "other.jpg")
    keys, csv_path, db = tmp_path / "keys", tmp_path / "rows.csv", tmp_path / "db"
    run(capsys, "indicators", "keygen", "--out", keys)
    code, out, err = run(capsys, "indicators", "from-media", "--out", csv_path, known)
    per_image = len(embedding_views(originals[0]))  # the image + its index-side views (crops, rotations)
    assert per_image == (1 + len(EMBEDDING_CROPS) + len(EMBEDDING_ROTATIONS)
                         + sum(len(a) for _, a in EMBEDDING_REGIONS + EMBEDDING_BOXES) + len(EMBEDDING_TURNS))
    assert code == 0 and out[0]["rows"] == 3 * (4 + per_image) and "embedding row" in err
    rows = list(csv.DictReader(open(csv_path)))
    emb = [r for r in rows if r["kind"] == "embedding"]
    assert len(emb) == 3 * per_image and all(r["value"].startswith("embedding-ref-0.2:") for r in emb)
    k0_ids = {r["indicator_id"] for r in emb if r["note"] == "k0.jpg"}
    base_id = next(r["indicator_id"] for r in rows if r["note"] == "k0.jpg" and r["kind"] == "pdq")[:-len("-pdq")]
    assert k0_ids == {f"{base_id}-embedding{suffix}" for suffix, _ in embedding_views(originals[0])}
    assert run(capsys, "indicators", "build", "--input", csv_path, "--key", keys / "private.pem", "--out", db)[0] == 0

    code, out, err = run(capsys, "match", "--indicators", db, "--public-key", keys / "public.pem", queries)
    by_name = {os.path.basename(o["path"]): o for o in out}
    assert code == 0 and "near-duplicates at cosine similarity" in err
    crop = by_name["crop.jpg"]["matches"]
    # PDQ misses the crop; the embedding finds it (one or more rows of k0, nothing else)
    assert crop and {m["kind"] for m in crop} == {"embedding"} and {m["indicator_id"] for m in crop} <= k0_ids
    assert crop[0]["similarity"] >= KIND.metadata()["threshold"] and abs(crop[0]["distance"] - (1 - crop[0]["similarity"])) < 1e-5
    # the line says the threshold (as a distance), the note (the known file) and the query's input that matched
    assert crop[0]["threshold"] == round(1 - KIND.metadata()["threshold"], 6) and crop[0]["note"] == "k0.jpg"
    assert crop[0]["view"] in ("image", "image:flip") and crop[0]["distance"] <= crop[0]["threshold"] + 1e-6
    assert by_name["other.jpg"]["matched"] is False
    code, out, _ = run(capsys, "match", "--no-embedding", "--indicators", db, "--public-key", keys / "public.pem",
                       queries / "crop.jpg")
    assert code == 0 and out[0]["matched"] is False


def test_bad_inputs(tmp_path, capsys):
    keys = tmp_path / "keys"
    run(capsys, "indicators", "keygen", "--out", keys)
    bad = tmp_path / "bad.csv"
    bad.write_text("indicator_id,kind,value,category,note\na,pdq,abc,,\n")
    code, out, err = run(capsys, "indicators", "build", "--input", bad, "--key", keys / "private.pem", "--out", tmp_path / "db")
    assert code == 1 and out == []
    assert err.count("\n") == 1 and f"{bad}:2: pdq value must be 64 hex characters, got 3" in err
    assert not (tmp_path / "db").exists()

    good = tmp_path / "good.txt"
    good.write_text("ab" * 32 + "\n")
    code, _, err = run(capsys, "indicators", "build", "--input", good, "--key", tmp_path / "nokey.pem", "--out", tmp_path / "db")
    assert code == 1 and "private key not found" in err

    code, out, err = run(capsys, "indicators", "verify", "--public-key", keys / "public.pem", tmp_path / "db")
    assert code == 1 and out[0]["ok"] is False and "no snapshot in" in err and err.count("\n") == 1

    code, _, err = run(capsys, "match", "--indicators", tmp_path / "db", "--public-key", keys / "public.pem", bad)
    assert code == 1 and "no snapshot in" in err

    code, _, err = run(capsys, "indicators", "diff", "--public-key", keys / "public.pem", tmp_path / "db")
    assert code == 1 and "diff takes" in err

    code, _, err = run(capsys, "indicators", "build", "--key", keys / "private.pem", "--out", tmp_path / "db")
    assert code == 1 and "--input is required" in err


def test_wrong_key_and_tampering(tmp_path, capsys):
    keys, other = tmp_path / "keys", tmp_path / "other"
    run(capsys, "indicators", "keygen", "--out", keys)
    run(capsys, "indicators", "keygen", "--out", other)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"indicator_id": "a", "kind": "md5", "value": "0" * 32}) + "\n")
    db = tmp_path / "db"
    assert run(capsys, "indicators", "build", "--input", rows, "--key", keys / "private.pem", "--out", db)[0] == 0
    code, out, err = run(capsys, "indicators", "verify", "--public-key", other / "public.pem", db)
    assert code == 1 and not out[0]["ok"] and "signature does not verify" in out[0]["error"]
    with open(db / "versions" / "1" / "indicators.parquet", "ab") as fh:
        fh.write(b"!")
    code, out, err = run(capsys, "indicators", "verify", "--public-key", keys / "public.pem", db)
    assert code == 1 and "checksum mismatch for indicators.parquet in version 1" in err


def test_needles_build_with_format(tmp_path, capsys):
    needles = need_shared("pdq", "reg-test-input", "needles.txt")
    keys = tmp_path / "keys"
    run(capsys, "indicators", "keygen", "--out", keys)
    copy = tmp_path / "needles.list"
    shutil.copy(needles, copy)
    # 64 hex digits could be PDQ or SHA-256: without --kind the build refuses in one line
    code, out, err = run(capsys, "indicators", "build", "--input", copy, "--format", "hashes",
                         "--key", keys / "private.pem", "--out", tmp_path / "db")
    assert code == 1 and out == [] and err.count("\n") == 1
    assert f"{copy}:1: 64 hex digits could be pdq or sha256" in err and "pass --kind" in err
    assert not (tmp_path / "db").exists()
    code, out, _ = run(capsys, "indicators", "build", "--input", copy, "--format", "hashes", "--kind", "pdq",
                       "--key", keys / "private.pem", "--out", tmp_path / "db")
    assert code == 0 and out[0]["counts"]["kinds"] == {"pdq": {"active": 100, "disabled": 0}}


def test_main_helper(tmp_path, capsys):
    assert cli.main(["indicators", "keygen", "--out", str(tmp_path / "k")]) == 0
    assert json.loads(capsys.readouterr().out)["key_id"]


def test_config_before_or_after_the_command(tmp_path, capsys):
    """``--config`` given after ``match`` is read; given before it, the subcommand's own option
    (default SUPPRESS) does not reset it."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("match:\n  pdq_threshold: -1\n")
    for argv in (["--config", bad, "match", "--indicators", tmp_path, "x.jpg"],
                 ["match", "--config", bad, "--indicators", tmp_path, "x.jpg"]):
        code, out, err = run(capsys, *argv)
        assert code == 1 and out == [] and err.count("\n") == 1 and "pdq_threshold" in err, argv


def test_import_and_export_are_indicators_commands(tmp_path, capsys):
    keys = tmp_path / "keys"
    run(capsys, "indicators", "keygen", "--out", keys)
    listing = tmp_path / "md5.txt"
    listing.write_text("d35c785545392755e7e4164457657269\n")
    code, out, err = run(capsys, "indicators", "import", listing, "--out", tmp_path / "db", "--key", keys / "private.pem")
    assert code == 0 and out[0]["imported"] == 1 and out[0]["format"] == "list" and "imported 1, refused 0" in err
    code, out, _ = run(capsys, "indicators", "export", tmp_path / "db", "--public-key", keys / "public.pem",
                       "--format", "list", "--out", tmp_path / "back.txt")
    assert code == 0 and (tmp_path / "back.txt").read_text() == "# kind: md5\nd35c785545392755e7e4164457657269\n"
    code, _, err = run(capsys, "indicators", "import", listing)
    assert code == 1 and err.count("\n") == 1 and "--out DBDIR --key" in err
    code, _, err = run(capsys, "indicators", "import", listing, "--out", tmp_path / "db2")
    assert code == 1 and "--out needs --key" in err


def test_from_media_refuses_to_replace_an_existing_csv_without_force(tmp_path, capsys):
    """An existing --out CSV is kept (one line, exit 1, before any hashing) unless --force."""
    picture = tmp_path / "known.jpg"
    synth.synthetic_image(4242, (320, 240)).save(picture)
    out_csv = tmp_path / "rows.csv"
    out_csv.write_text("keep me\n")
    code, out, err = run(capsys, "indicators", "from-media", "--no-embedding", "--out", out_csv, picture)
    assert code == 1 and out == []
    assert err == f"error: {out_csv} exists; pass --force to replace it\n"
    assert out_csv.read_text() == "keep me\n"
    code, out, _ = run(capsys, "indicators", "from-media", "--no-embedding", "--force", "--out", out_csv, picture)
    assert code == 0 and out[0]["rows"] > 0
    assert out_csv.read_text().startswith("indicator_id,kind,value,category,note\n")


def test_from_media_writes_no_csv_when_no_file_could_be_hashed(tmp_path, capsys):
    """Every file failing leaves no header-only CSV behind (which the next run would need --force for)."""
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture")
    out_csv = tmp_path / "rows.csv"
    code, out, err = run(capsys, "indicators", "from-media", "--no-embedding", "--out", out_csv, broken)
    assert code == 1 and out[0]["rows"] == 0 and out[0]["out"] is None
    assert f"nothing written to {out_csv}" in err
    assert not out_csv.exists()
