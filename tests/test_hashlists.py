"""Hash lists in and out (docs/indicators.md): ``indicators import`` of threatexchange / HMA
exports, plain lists and mapped CSV with per-row refusals; ``indicators export``; ``match
--hashes``, ``match -``, what a match line says (transform, view, distance, threshold, note);
``hash DIR``, ``hash -`` and ``--config`` after the command.

Pictures are generated (csadetect.media.synth); PDQ vectors are Meta's public ones from
../shared, read in place (the tests that need them skip without it)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sys

import pytest
from PIL import Image

from csadetect.cli.main import main
from csadetect.indicators import formats
from csadetect.indicators.rows import IndicatorError, read_csv, read_hashes
from csadetect.indicators.snapshot import load_snapshot
from csadetect.media import synth
from csadetect.media.hashing import hamming, hash_image
from csadetect.signals import SIGNAL_TYPES, get
from tests.conftest import REPO, need_shared

PDQ_THRESHOLD = 31  # MatchSettings' default


def cli(capsys, *argv, stdin: str | None = None, monkeypatch=None):
    """``csadetect ARGV`` through the real parser: (exit code, JSON lines of stdout, stderr)."""
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.strip()], err


def needles() -> list[str]:
    path = need_shared("pdq", "reg-test-input", "needles.txt")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def world(tmp_path, capsys):
    """Three generated pictures made indicators (pdq, pdq of the value channel, md5, sha256 rows) in a signed
    snapshot; ``rows`` by (file, kind) holds each picture's own pdq row."""
    known = tmp_path / "known"
    known.mkdir()
    pictures = [synth.synthetic_image(7000 + i, (480, 360)) for i in range(3)]
    for i, img in enumerate(pictures):
        img.save(known / f"k{i}.jpg", quality=92)
    keys, rows_csv, db = tmp_path / "keys", tmp_path / "rows.csv", tmp_path / "db"
    assert cli(capsys, "indicators", "keygen", "--out", keys)[0] == 0
    assert cli(capsys, "indicators", "from-media", "--no-embedding", "--out", rows_csv, "--category", "test", known)[0] == 0
    code, out, err = cli(capsys, "indicators", "import", rows_csv, "--out", db, "--key", keys / "private.pem")
    assert code == 0 and out[0]["imported"] == 12 and out[0]["refused"] == 0 and out[0]["version"] == 1
    rows = {(r.note, r.kind): r for r in read_csv(str(rows_csv)) if not r.indicator_id.endswith("-value")}
    return {"known": known, "pictures": pictures, "keys": keys, "db": db, "rows": rows, "tmp": tmp_path,
            "private": keys / "private.pem", "public": keys / "public.pem"}


# ------------------------------------------------------------------------------- import formats


def tx_csv(path, records):
    """A CSV laid out as python-threatexchange's ``threatexchange dataset -P --csv`` writes it
    (cli/dataset_cmd.py: csv.DictWriter with these five columns, header first)."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["signal_type", "signal_str", "collab", "category", "tags"])
        writer.writerows(records)


def test_threatexchange_csv(tmp_path, capsys, world):
    a, b = needles()[:2]
    md5 = hashlib.md5(b"benign").hexdigest()
    frames = json.dumps([f"{a},100,0.000", f"{b},90,1.000", f"{'0' * 64},10,2.000"])  # VPDQSignal's signal_str
    path = tmp_path / "collab.csv"
    tx_csv(path, [
        ["pdq", a, "Sample Data", "POSITIVE_CLASS", "media_type_photo"],  # line 2
        ["video_md5", md5, "Sample Data", "INVESTIGATION_SEED", ""],  # 3
        ["url", "https://example.org/", "Sample Data", "POSITIVE_CLASS", ""],  # 4: no such kind here
        ["pdq", b, "Sample Data", "NEGATIVE_CLASS", ""],  # 5: a known false positive
        ["pdq", "abc", "Sample Data", "POSITIVE_CLASS", ""],  # 6: malformed
        ["vpdq", frames, "Sample Data", "POSITIVE_CLASS", ""],  # 7
        ["pdq", a.upper(), "Other", "POSITIVE_CLASS", ""],  # 8: the same signal from another collab
    ])
    got = formats.read(str(path))
    assert got.format == "threatexchange" and got.merged == 1
    assert [(r.indicator_id, r.kind, r.value, r.source) for r in got.rows] == [
        ("collab-2", "pdq", a, "Sample Data"), ("collab-3", "md5", md5, "Sample Data"),
        ("collab-7", "vpdq", f"{a} {b}", "Sample Data")]  # frames below the quality gate are left out
    assert got.rows[0].note == "collab Sample Data; POSITIVE_CLASS; tags media_type_photo"
    assert [line for line, _ in got.refused] == [4, 5, 6]
    assert "signal_type 'url' is not a kind csadetect matches" in got.refused[0][1]
    assert "NEGATIVE_CLASS" in got.refused[1][1] and "pdq value must be 64 hex characters, got 3" in got.refused[2][1]

    # the optional columns may be absent, a repeated one counts by its last field (as a dict of the
    # header would), and signal types are read per row whatever came before (the reader remembers kinds)
    other = tmp_path / "two.csv"
    other.write_text(f"signal_str,signal_type,tags,TAGS\n{a},PDQ,x,y\n{b},nope,,\n{b}, pdq ,,z\n")
    got = formats.read(str(other), "threatexchange")
    assert [(r.indicator_id, r.kind, r.value, r.source, r.category, r.note) for r in got.rows] == [
        ("two-2", "pdq", a, "eu-centre", "unspecified", "tags y"),
        ("two-4", "pdq", b, "eu-centre", "unspecified", "tags z")]
    assert got.refused == [(3, "signal_type 'nope' is not a kind csadetect matches (" + ", ".join(SIGNAL_TYPES) + ")")]

    # the command line: refused rows fail the import by default, counted and with line numbers
    db = tmp_path / "txdb"
    code, out, err = cli(capsys, "indicators", "import", path, "--out", db, "--key", world["private"])
    assert code == 1 and out == [] and not db.exists()
    lines = err.strip().splitlines()
    assert lines[0] == f"{path} (threatexchange): imported 3, refused 3, merged 1 repeated values"
    assert lines[1].startswith(f"refused {path}:4: signal_type 'url'") and lines[2].startswith(f"refused {path}:5:")
    assert lines[-1] == "error: 3 refused rows: nothing imported (fix them, or pass --skip-refused to import the 3 good rows)"
    code, out, err = cli(capsys, "indicators", "import", path, "--skip-refused", "--show-refused", "1",
                         "--out", db, "--key", world["private"])
    assert code == 0 and out[0]["imported"] == 3 and out[0]["refused"] == 3
    assert out[0]["counts"]["kinds"] == {"pdq": {"active": 1, "disabled": 0}, "md5": {"active": 1, "disabled": 0},
                                         "vpdq": {"active": 1, "disabled": 0}}
    assert "... and 2 more refused rows" in err


def test_hma_dataset_file(tmp_path, capsys, world):
    a, b = needles()[:2]
    path = tmp_path / "simple.HASH_PDQ.te"  # HMA 1.x: HMASerialization, no header
    path.write_text(f"{a},4169895076385542,4153,2021-01-13T17:16:45+0000,media_priority_s3 collab_a\n"
                    f"{b},4169895076385543,4154\n")
    got = formats.read(str(path))
    assert got.format == "hma" and [(r.indicator_id, r.kind, r.value) for r in got.rows] == [("4169895076385542", "pdq", a)]
    assert got.rows[0].note == "added_on 2021-01-13T17:16:45+0000; labels media_priority_s3 collab_a"
    assert got.refused == [(2, "3 fields, expected 5 (indicator,indicator_id,first_descriptor_id,added_on,labels)")]
    other = tmp_path / "bank.te"
    shutil.copy(path, other)
    with pytest.raises(IndicatorError, match="simple.<INDICATOR_TYPE>.te; pass --kind"):
        formats.read(str(other))
    assert formats.read(str(other), kind="HASH_PDQ").rows[0].kind == "pdq"


def test_plain_lists_and_ambiguity(tmp_path, capsys, world):
    md5, sha1, sha256 = (hashlib.new(n, b"benign").hexdigest() for n in ("md5", "sha1", "sha256"))
    pdq = get("pdq").examples()[0]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# exported by hand\n{md5}\n\n{sha1.upper()}\nxyz\n")
    got = formats.read(str(listing))  # 32 and 40 hex digits: one kind each
    assert [(r.indicator_id, r.kind, r.value) for r in got.rows] == [("list-2", "md5", md5), ("list-4", "sha1", sha1)]
    assert got.refused == [(5, "not a value of any kind (pdq, md5, sha256, vpdq, sha1)")]  # the good rows stay

    # 64 hex digits are PDQ or SHA-256: never guessed; one line naming the file and line
    listing.write_text(f"{sha256}\n")
    with pytest.raises(IndicatorError) as exc:
        formats.read(str(listing))
    assert str(exc.value).startswith(f"{listing}:1: 64 hex digits could be pdq or sha256") and "pass --kind" in str(exc.value)
    assert formats.read(str(listing), kind="sha256").rows[0].kind == "sha256"
    assert formats.read(str(listing), kind="SHA-256").rows[0].kind == "sha256"  # an alias
    for header in ("sha256", "# kind: sha256", "SHA256"):
        listing.write_text(f"{header}\n{sha256}\n")
        assert [r.kind for r in formats.read(str(listing)).rows] == ["sha256"], header
    listing.write_text(f"# kind: HASH_PDQ\n{pdq}\n")
    assert formats.read(str(listing)).rows[0].kind == "pdq"
    with pytest.raises(IndicatorError, match="the header names pdq, --kind says sha256"):
        formats.read(str(listing), kind="sha256")
    # `indicators build`'s reader reads lists the same way (one line reader: rows.hash_list_values)
    with pytest.raises(IndicatorError, match=":1: the header names pdq, --kind says sha256"):
        read_hashes(str(listing), kind="sha256")
    listing.write_text(f"# a comment\n\n# kind: sha256\n{sha256}\n# kind: md5\n")
    assert [(r.indicator_id, r.kind) for r in read_hashes(str(listing))] == [(f"{listing.stem}-4", "sha256")]
    assert [(r.indicator_id, r.kind) for r in formats.read(str(listing)).rows] == [(f"{listing.stem}-4", "sha256")]
    # "KIND VALUE" lines: python-threatexchange's file exchange, `threatexchange dataset -P -S`
    listing.write_text(f"pdq {pdq}\nvideo_md5 {md5}\nsha256 {sha256}\n")
    assert [r.kind for r in formats.read(str(listing)).rows] == ["pdq", "md5", "sha256"]

    # the command line: the same one-line refusal, nothing built
    listing.write_text(f"{sha256}\n")
    db = tmp_path / "listdb"
    code, out, err = cli(capsys, "indicators", "import", listing, "--out", db, "--key", world["private"])
    assert code == 1 and out == [] and err.count("\n") == 1 and "64 hex digits could be pdq or sha256" in err
    assert not db.exists()
    code, out, _ = cli(capsys, "indicators", "import", listing, "--kind", "sha256", "--out", db, "--key", world["private"])
    assert code == 0 and out[0]["counts"]["kinds"] == {"sha256": {"active": 1, "disabled": 0}}


def test_mapped_csv_with_quality(tmp_path, capsys, world):
    a, b, c = needles()[:3]
    sha1 = hashlib.sha1(b"benign").hexdigest()
    path = tmp_path / "partner.csv"
    path.write_text("file,type,hash,q,comment,ref\n"
                    f"x.jpg,HASH_PDQ,{a},100,first,P-1\n"  # 2
                    f"y.jpg,pdq,{b},20,blurry,P-2\n"  # 3: below the quality gate
                    f"z.jpg,pdq,{c},high,,P-3\n"  # 4: not a quality
                    f"w.bin,sha1,{sha1},,exact,P-4\n"  # 5
                    f"v.bin,url,http://x,,,P-5\n"  # 6
                    "short,row\n")  # 7
    columns = formats.parse_columns("hash=hash,kind=type,quality=q,note=comment,id=ref")
    got = formats.read(str(path), columns=columns)
    assert got.format == "columns" and got.ignored_columns == ("file",)
    assert [(r.indicator_id, r.kind, r.note) for r in got.rows] == [("P-1", "pdq", "first"), ("P-4", "sha1", "exact")]
    assert [line for line, _ in got.refused] == [3, 4, 6, 7]
    assert got.refused[0][1] == "quality 20 is below 50 (--min-quality; the match quality gate)"
    assert got.refused[1][1] == "quality 'high' is not a number from 0 to 100"
    assert [r.indicator_id for r in formats.read(str(path), columns=columns, min_quality=10).rows] == ["P-1", "P-2", "P-4"]

    with pytest.raises(IndicatorError, match="no column 'nope'"):
        formats.read(str(path), columns=formats.parse_columns("hash=nope"))
    for bad, message in (("kind=type", "must name the hash column"), ("hash", "ROLE=COLUMN"),
                         ("hash=h,colour=c", "unknown role 'colour'")):
        with pytest.raises(IndicatorError, match=message):
            formats.parse_columns(bad)
    code, _, err = cli(capsys, "indicators", "import", path, "--csv", tmp_path / "o.csv")
    assert code == 1 and err.count("\n") == 1 and "pass --columns hash=COLUMN" in err

    # this project's CSV with an extra column: imported, the column named as ignored
    own = tmp_path / "own.csv"
    own.write_text(f"indicator_id,kind,value,category,reviewer\nr1,pdq,{a},test,alice\nr1,md5,{'0' * 32},,bob\n")
    code, out, err = cli(capsys, "indicators", "import", own, "--csv", tmp_path / "o.csv")
    assert code == 1 and "ignored columns: reviewer" in err and f"refused {own}:3: duplicate indicator_id 'r1' (first on line 2)" in err
    assert not (tmp_path / "o.csv").exists()


# ------------------------------------------------------------------------------- export and round trip


def test_export_and_round_trip(tmp_path, capsys, world):
    private, public, db = world["private"], world["public"], world["db"]
    # add a sha1 row and a vpdq row, and tombstone one row, so every case is in the snapshot
    sha1 = hashlib.sha1(b"benign").hexdigest()
    extra = tmp_path / "extra.csv"
    extra.write_text(f"indicator_id,kind,value\ns1,sha1,{sha1}\nv1,vpdq,{get('vpdq').examples()[0]}\n")
    assert cli(capsys, "indicators", "build", "--input", extra, "--key", private, "--out", db, "--base", "latest")[0] == 0
    gone = world["rows"][("k2.jpg", "md5")].indicator_id
    assert cli(capsys, "indicators", "build", "--key", private, "--out", db, "--base", "latest", "--disable", gone)[0] == 0
    active = [r for r in load_snapshot(db, public).rows() if r.active]
    assert len(active) == 13  # 3 pictures x 4 rows, sha1, vpdq, one tombstoned

    # csadetect CSV: every column; import -> snapshot -> export gives the same file
    first = tmp_path / "export.csv"
    code, out, _ = cli(capsys, "indicators", "export", db, "--public-key", public, "--out", first)
    assert code == 0 and out[0]["written"] == 13 and out[0]["version"] == 3
    db2 = tmp_path / "db2"
    assert cli(capsys, "indicators", "import", first, "--out", db2, "--key", private)[0] == 0
    second = tmp_path / "export2.csv"
    assert cli(capsys, "indicators", "export", db2, "--public-key", public, "--out", second)[0] == 0
    assert first.read_text() == second.read_text()
    assert sorted(load_snapshot(db2, public).rows(), key=lambda r: r.indicator_id) == sorted(active, key=lambda r: r.indicator_id)
    code, _, err = cli(capsys, "indicators", "export", db, "--public-key", public, "--include-disabled", "--out", first)
    assert code == 1 and err.count("\n") == 1 and "exists; pass --force" in err  # never silently overwritten
    assert first.read_text() == second.read_text()
    code, out, _ = cli(capsys, "indicators", "export", db, "--public-key", public, "--include-disabled", "--force",
                       "--out", first)
    assert code == 0 and out[0]["written"] == 14 and f"{gone},md5," in first.read_text()

    # threatexchange CSV: kinds python-threatexchange has no type for are skipped and counted
    tx = tmp_path / "tx.csv"
    code, out, err = cli(capsys, "indicators", "export", db, "--public-key", public, "--format", "threatexchange", "--out", tx)
    assert code == 0 and out[0]["written"] == 11 and out[0]["skipped"] == {"sha1": 1, "vpdq": 1}
    assert "skipped 1 sha1 rows" in err
    header, *records = list(csv.reader(open(tx)))
    assert header == ["signal_type", "signal_str", "collab", "category", "tags"]
    assert {r[0] for r in records} == {"pdq", "video_md5", "video_sha256"} and {r[3] for r in records} == {"POSITIVE_CLASS"}
    back = formats.read(str(tx))
    assert not back.refused and {(r.kind, r.value, r.source) for r in back.rows} == \
        {(r.kind, r.value, r.source) for r in active if r.kind not in ("sha1", "vpdq")}

    # plain lists: one kind, with a header naming it, so they import back without --kind
    listing = tmp_path / "sha256.txt"
    code, _, err = cli(capsys, "indicators", "export", db, "--public-key", public, "--format", "list", "--out", listing)
    assert code == 1 and err.count("\n") == 1 and "pass --kind" in err and not listing.exists()
    code, out, _ = cli(capsys, "indicators", "export", db, "--public-key", public, "--format", "list", "--kind", "sha256",
                       "--out", listing)
    assert code == 0 and out[0]["written"] == 3 and listing.read_text().startswith("# kind: sha256\n")
    back = formats.read(str(listing))
    assert sorted(r.value for r in back.rows) == sorted(r.value for r in active if r.kind == "sha256")
    assert {r.kind for r in back.rows} == {"sha256"}

    # written a batch at a time from a chain of deltas (the snapshot is never held whole): the same
    # files as writing the loaded snapshot's rows; a data file failing its checksum part way leaves no file
    from csadetect.indicators import snapshot_load
    from csadetect.indicators.snapshot import table_rows, version_dir

    rows = table_rows(load_snapshot(db, public).table)
    for fmt, extra in (("csadetect", ["--include-disabled"]), ("threatexchange", []), ("list", ["--kind", "pdq"])):
        expected = io.StringIO()
        formats.export(rows, fmt, expected, "pdq" if fmt == "list" else None, include_disabled=fmt == "csadetect")
        streamed = tmp_path / f"streamed-{fmt}"
        with pytest.MonkeyPatch.context() as m:
            m.setattr(snapshot_load, "READ_BATCH", 2)
            m.setattr(snapshot_load, "_chain", None)  # never the whole chain
            code, _, err = cli(capsys, "indicators", "export", db, "--public-key", public, "--format", fmt, *extra,
                               "--out", streamed)
        assert code == 0, err
        assert streamed.read_text() == expected.getvalue()
    base = version_dir(str(db), 1) + "/indicators.parquet"
    shutil.copy(base, tmp_path / "kept.parquet")
    with open(base, "r+b") as fh:
        fh.seek(-20, 2)
        fh.write(b"x")
    broken = tmp_path / "broken.csv"
    code, _, err = cli(capsys, "indicators", "export", db, "--public-key", public, "--out", broken)
    assert code == 1 and "checksum mismatch for indicators.parquet in version 1" in err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("broken")] == []
    shutil.copy(tmp_path / "kept.parquet", base)


# ------------------------------------------------------------------------------- match


def _matched_with(capsys, world, setting: str, path) -> bool:
    """``matched`` of ``csadetect match PATH`` (no embedding) with one ``match:`` setting changed in a config file."""
    config = world["tmp"] / "one-setting.yaml"
    config.write_text(f"match:\n  {setting}\n")
    code, out, err = cli(capsys, "match", "--config", config, "--no-embedding", "--indicators", world["db"],
                         "--public-key", world["public"], path)
    assert code == 0, err
    return out[0]["matched"]


def test_match_finds_a_known_picture_as_a_later_frame_of_a_gif(tmp_path, capsys, world):
    """``match`` hashes an upload as the pipeline does: an animated GIF's later frames too
    (``match.image_frames``); with 0, the first frame only."""
    other = synth.synthetic_image(98, world["pictures"][0].size).convert("RGB")
    gif = tmp_path / "animated.gif"
    other.save(gif, save_all=True, append_images=[world["pictures"][0].convert("RGB")], duration=100, loop=0)
    k0_pdq = world["rows"][("k0.jpg", "pdq")]
    code, out, err = cli(capsys, "match", "--no-embedding", "--indicators", world["db"], "--public-key", world["public"], gif)
    assert code == 0, err
    # the picture's PDQ row and its value row (media.view_value), each met by the second frame or its value hash
    views = {m["indicator_id"]: m["view"] for m in out[0]["matches"]}
    assert set(views) == {k0_pdq.indicator_id, f"{k0_pdq.indicator_id}-value"}
    assert set(views.values()) <= {"frame-1", "frame-1-value"}
    assert _matched_with(capsys, world, "image_frames: 0", gif) is False


def test_match_finds_a_known_picture_shown_in_a_video(tmp_path, capsys, world):
    """``csadetect match`` hashes a video as the pipeline hashes an upload: a slideshow showing a
    known picture on bars matches its PDQ row, and names the frame (``match.video_frames_pdq``);
    switched off, it matches nothing."""
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg CLI")
    frames = []
    for img in (synth.synthetic_image(97, (300, 420)), world["pictures"][1], synth.synthetic_image(96, (500, 400))):
        scale = min(640 / img.width, 360 / img.height)
        pic = img.convert("RGB").resize((round(img.width * scale), round(img.height * scale)))
        frame = Image.new("RGB", (640, 360))
        frame.paste(pic, ((640 - pic.width) // 2, (360 - pic.height) // 2))
        frames.append(frame.tobytes() * 20)  # 2 s at 10 fps
    video = tmp_path / "slideshow.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "640x360", "-framerate",
                    "10", "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-pix_fmt", "yuv420p",
                    str(video)], input=b"".join(frames), check=True)
    k1_pdq = world["rows"][("k1.jpg", "pdq")]
    code, out, err = cli(capsys, "match", "--no-embedding", "--indicators", world["db"], "--public-key", world["public"],
                         video)
    assert code == 0, err
    (match,) = out[0]["matches"]
    assert (match["indicator_id"], match["kind"]) == (k1_pdq.indicator_id, "pdq")
    assert match["view"] in ("cropped", "framed")  # inside the video's bars, or the frame's own
    assert 2.0 <= match["timestamp"] < 4.0 and match["distance"] <= 31
    assert _matched_with(capsys, world, "video_frames_pdq: false", video) is False


def test_match_output_says_how_it_matched(tmp_path, capsys, world):
    queries = tmp_path / "q"
    queries.mkdir()
    k0 = world["pictures"][0]
    k0.transpose(Image.Transpose.ROTATE_90).save(queries / "rot.jpg", quality=92)
    k0.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(queries / "mirror.jpg", quality=92)
    k0.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(queries / "upside-down.jpg", quality=92)
    synth.synthetic_image(99, (480, 360)).save(queries / "other.jpg")
    k0_pdq = world["rows"][("k0.jpg", "pdq")]
    code, out, err = cli(capsys, "match", "--no-embedding", "--indicators", world["db"], "--public-key", world["public"], queries)
    assert code == 0, err
    by_name = {o["path"].rsplit("/", 1)[-1]: o for o in out}
    assert by_name["other.jpg"] == {"path": str(queries / "other.jpg"), "matched": False, "matches": []}
    distances = {}
    # PDQ's names: flip-x mirrors top to bottom, flip-y left to right
    for name, transform in (("rot.jpg", "rotate-270"), ("mirror.jpg", "flip-y"), ("upside-down.jpg", "flip-x")):
        matches = by_name[name]["matches"]
        (match,) = [m for m in matches if m["indicator_id"] == k0_pdq.indicator_id]
        # the value channel's row (the largest of R, G, B: csadetect.media.view_value) matches as well, by the value view
        assert [(m["indicator_id"], m["view"], m["transform"]) for m in matches if m is not match] == [
            (k0_pdq.indicator_id + "-value", "value", transform)], name
        query = hash_image((queries / name).read_bytes())
        expected = min(hamming(h, bytes.fromhex(k0_pdq.value)) for h in query.dihedral)
        assert match == {"indicator_id": k0_pdq.indicator_id, "kind": "pdq", "distance": expected, "category": "test",
                         "threshold": PDQ_THRESHOLD, "note": "k0.jpg", "view": "original", "transform": transform,
                         "quality": query.quality}, name
        assert expected <= PDQ_THRESHOLD
        distances[name] = expected

    # --config after the command: its threshold is the one applied and reported
    config = tmp_path / "strict.yaml"
    config.write_text("match:\n  pdq_threshold: 0\n  auto_confirm_distance: 0\n")
    code, out, _ = cli(capsys, "match", "--config", config, "--no-embedding", "--indicators", world["db"],
                       "--public-key", world["public"], world["known"] / "k1.jpg", queries / "rot.jpg")
    assert code == 0 and out[0]["matches"][0]["threshold"] == 0 and out[0]["matches"][0]["distance"] == 0
    assert distances["rot.jpg"] > 0 and out[1]["matched"] is False
    code, _, err = cli(capsys, "match", "--config", tmp_path / "missing.yaml", queries)
    assert code in (1, 2) and err.count("\n") == 1 and "missing.yaml" in err


def test_dihedral_transforms_of_meta_images(tmp_path, capsys, world):
    dih = need_shared("pdq", "reg-test-input", "dih")
    listing = tmp_path / "bridge.txt"
    listing.write_text(f"# kind: pdq\n{hash_image((dih / 'bridge-1-original.jpg').read_bytes()).pdq.hex()}\n")
    db = tmp_path / "bridge-db"
    assert cli(capsys, "indicators", "import", listing, "--out", db, "--key", world["private"])[0] == 0
    code, out, _ = cli(capsys, "match", "--no-embedding", "--indicators", db, "--public-key", world["public"], dih)
    assert code == 0
    got = {o["path"].rsplit("/", 1)[-1]: o["matches"][0]["transform"] for o in out}
    assert got == {"bridge-1-original.jpg": "original", "bridge-2-rotate-90.jpg": "rotate-270",
                   "bridge-3-rotate-180.jpg": "rotate-180", "bridge-4-rotate-270.jpg": "rotate-90",
                   "bridge-5-flipx.jpg": "flip-x", "bridge-6-flipy.jpg": "flip-y",
                   "bridge-7-flip-plus-1.jpg": "flip-plus-1", "bridge-8-flip-minus-1.jpg": "flip-minus-1"}


def test_match_hashes_from_a_partner(tmp_path, capsys, world):
    rows = world["rows"]
    k1_pdq, k2_md5 = rows[("k1.jpg", "pdq")], rows[("k2.jpg", "md5")]
    unrelated = needles()[0]
    path = tmp_path / "partner.csv"
    tx_csv(path, [["pdq", k1_pdq.value, "Partner", "POSITIVE_CLASS", ""],  # line 2
                  ["video_md5", k2_md5.value, "Partner", "POSITIVE_CLASS", ""],  # 3
                  ["pdq", unrelated, "Partner", "POSITIVE_CLASS", ""],  # 4
                  ["pdq", "zz", "Partner", "POSITIVE_CLASS", ""]])  # 5
    code, out, err = cli(capsys, "match", "--indicators", world["db"], "--public-key", world["public"], "--hashes", path)
    assert code == 1 and "imported 3, refused 1" in err
    by_input = {o["input"]: o for o in out}
    assert by_input[f"{path}:5"] == {"input": f"{path}:5", "error": "pdq value must be 64 hex characters, got 2"}
    assert by_input[f"{path}:2"] == {"input": f"{path}:2", "id": "partner-2", "kind": "pdq", "matched": True, "matches": [
        {"indicator_id": k1_pdq.indicator_id, "kind": "pdq", "distance": 0, "category": "test", "threshold": PDQ_THRESHOLD,
         "note": "k1.jpg"}]}
    assert by_input[f"{path}:3"]["matches"] == [
        {"indicator_id": k2_md5.indicator_id, "kind": "md5", "distance": 0, "category": "test", "threshold": 0, "note": "k2.jpg"}]
    assert by_input[f"{path}:4"] == {"input": f"{path}:4", "id": "partner-4", "kind": "pdq", "matched": False, "matches": []}

    # a plain list needs its kind like an import does
    listing = tmp_path / "partner.txt"
    listing.write_text(k1_pdq.value + "\n")
    code, out, err = cli(capsys, "match", "--indicators", world["db"], "--public-key", world["public"], "--hashes", listing)
    assert code == 1 and out == [] and "64 hex digits could be pdq or sha256" in err
    code, out, _ = cli(capsys, "match", "--indicators", world["db"], "--public-key", world["public"], "--hashes", listing,
                       "--kind", "pdq")
    assert code == 0 and out[0]["matches"][0]["indicator_id"] == k1_pdq.indicator_id


def test_match_stdin_paths_and_hashes(tmp_path, capsys, monkeypatch, world):
    rows, known = world["rows"], world["known"]
    sub = tmp_path / "more" / "deeper"
    sub.mkdir(parents=True)
    shutil.copy(known / "k2.jpg", sub / "copy.jpg")
    (sub / "notes.txt").write_text("not media")  # skipped when walking a directory
    lines = [str(known / "k0.jpg"), str(tmp_path / "more"), rows[("k1.jpg", "md5")].value,
             rows[("k1.jpg", "sha256")].value, str(tmp_path / "missing.jpg"), ""]
    code, out, _ = cli(capsys, "match", "--no-embedding", "--indicators", world["db"], "--public-key", world["public"], "-",
                       stdin="\n".join(lines) + "\n", monkeypatch=monkeypatch)
    assert code == 1
    assert out[0]["path"] == str(known / "k0.jpg") and [m["kind"] for m in out[0]["matches"]] == ["pdq", "pdq", "md5", "sha256"]
    assert out[1]["path"] == str(sub / "copy.jpg") and {m["note"] for m in out[1]["matches"]} == {"k2.jpg"}
    assert out[2] == {"input": "-:3", "kind": "md5", "matched": True, "matches": [
        {"indicator_id": rows[("k1.jpg", "md5")].indicator_id, "kind": "md5", "distance": 0, "category": "test",
         "threshold": 0, "note": "k1.jpg"}]}
    assert out[3]["input"] == "-:4" and "64 hex digits could be pdq or sha256" in out[3]["error"]
    assert out[4] == {"path": str(tmp_path / "missing.jpg"), "error": "file not found"}
    assert len(out) == 5

    code, out, _ = cli(capsys, "match", "--no-embedding", "--indicators", world["db"], "--public-key", world["public"],
                       "--kind", "SHA-256", "-", stdin=rows[("k1.jpg", "sha256")].value + "\n", monkeypatch=monkeypatch)
    assert code == 0 and out[0]["kind"] == "sha256" and out[0]["matches"][0]["note"] == "k1.jpg"
    code, _, err = cli(capsys, "match", "--indicators", world["db"], "--public-key", world["public"])
    assert code == 1 and "match needs PATH" in err


def test_sha1_list_matches_end_to_end(tmp_path, capsys, world):
    """A SHA-1 list (40 hex digits: no --kind needed) becomes sha1 indicators that match the file."""
    data = (world["known"] / "k0.jpg").read_bytes()
    listing = tmp_path / "sha1.txt"
    listing.write_text(hashlib.sha1(data).hexdigest() + "\n" + hashlib.sha1(b"other").hexdigest() + "\n")
    db = tmp_path / "sha1db"
    code, out, _ = cli(capsys, "indicators", "import", listing, "--out", db, "--key", world["private"])
    assert code == 0 and out[0]["counts"]["kinds"] == {"sha1": {"active": 2, "disabled": 0}}
    code, out, _ = cli(capsys, "match", "--no-embedding", "--indicators", db, "--public-key", world["public"],
                       world["known"] / "k0.jpg", world["known"] / "k1.jpg")
    assert code == 0 and out[0]["matches"] == [{"indicator_id": "sha1-1", "kind": "sha1", "distance": 0,
                                                "category": "unspecified", "threshold": 0, "note": ""}]
    assert out[1]["matched"] is False


def test_video_match_says_which_frames(tmp_path, capsys, world):
    video = synth.synthetic_video(11, tmp_path / "v.mp4", seconds=2)
    if video is None:
        pytest.skip("ffmpeg CLI not installed")
    rows_csv, db = tmp_path / "video.csv", tmp_path / "vdb"
    assert cli(capsys, "indicators", "from-media", "--out", rows_csv, video)[0] == 0
    assert cli(capsys, "indicators", "import", rows_csv, "--out", db, "--key", world["private"])[0] == 0
    code, out, _ = cli(capsys, "match", "--indicators", db, "--public-key", world["public"], video)
    assert code == 0
    (vpdq,) = [m for m in out[0]["matches"] if m["kind"] == "vpdq"]
    assert vpdq["distance"] == 0.0 and vpdq["threshold"] == 0.2 and vpdq["note"] == "v.mp4"
    assert vpdq["frames_matched"] == vpdq["frames_queried"] >= 1 and vpdq["first_frame"] == 0 and vpdq["first_timestamp"] == 0.0


# ------------------------------------------------------------------------------- hash


def test_hash_directory_stdin_and_config(tmp_path, capsys, monkeypatch):
    top = tmp_path / "media"
    (top / "sub").mkdir(parents=True)
    synth.synthetic_image(1).save(top / "a.jpg")
    synth.synthetic_image(2).save(top / "sub" / "b.png")
    (top / "sub" / "readme.txt").write_text("not media")
    code, out, _ = cli(capsys, "hash", top)
    assert code == 0 and [o["path"] for o in out] == [str(top / "a.jpg"), str(top / "sub" / "b.png")]
    assert all(len(o["pdq"]) == 64 for o in out)

    code, out2, _ = cli(capsys, "hash", "-", stdin=f"{top / 'sub'}\n\n{top / 'a.jpg'}\n", monkeypatch=monkeypatch)
    assert code == 0 and [o["path"] for o in out2] == [str(top / "sub" / "b.png"), str(top / "a.jpg")]
    assert out2[1] == out[0]

    config = tmp_path / "c.yaml"
    config.write_text("limits:\n  max_pixels: 100\n")  # after the command: applied (the pictures are too large)
    code, out, err = cli(capsys, "hash", "--config", config, top / "a.jpg")
    assert code == 1 and out == [] and err.startswith(f"error: {top / 'a.jpg'}:")
    code, out, _ = cli(capsys, "--config", config, "hash", top / "a.jpg")  # before it: the same
    assert code == 1 and out == []


def test_docs_name_every_format_and_alias():
    """docs/indicators.md documents every import and export format and every kind's aliases."""
    text = (REPO / "docs" / "indicators.md").read_text()
    for fmt in formats.IMPORT_FORMATS + formats.EXPORT_FORMATS:
        assert f"--format {fmt}" in text or f"`{fmt}`" in text, fmt
    for kind in ("pdq", "md5", "sha1", "sha256"):
        for alias in get(kind).aliases:
            assert f"`{alias}`" in text, alias


def test_meta_vpdq_frame_file(tmp_path, capsys, world):
    """Meta's vPDQ hasher output (frame,quality,hash,timestamp) becomes one vpdq indicator, and the
    video it was computed from matches it, all its frames found."""
    expected = need_shared("vpdq", "expected", "doorknob-hd-no-bar.txt")
    video = need_shared("vpdq", "videos", "doorknob-hd-no-bar.mp4")
    got = formats.read(str(expected), "vpdq-frames")
    (row,) = got.rows
    frames = [line.split(",") for line in expected.read_text().splitlines() if line.strip()]
    assert row.indicator_id == "doorknob-hd-no-bar" and row.kind == "vpdq" and not got.refused
    assert row.value.split() == list(dict.fromkeys(h for _, q, h, _ in frames if int(q) >= 50))

    broken = tmp_path / "broken.txt"
    broken.write_text(expected.read_text().splitlines()[0] + "\n1,100,nothex\n2,abc\n")
    got = formats.read(str(broken), "vpdq-frames")
    assert len(got.rows) == 1 and [line for line, _ in got.refused] == [2, 3]

    db = tmp_path / "vdb"
    code, out, _ = cli(capsys, "indicators", "import", expected, "--format", "vpdq-frames", "--out", db,
                       "--key", world["private"])
    assert code == 0 and out[0]["counts"]["kinds"] == {"vpdq": {"active": 1, "disabled": 0}}
    code, out, _ = cli(capsys, "match", "--no-embedding", "--indicators", db, "--public-key", world["public"], video)
    assert code == 0
    (match,) = out[0]["matches"]
    assert match["indicator_id"] == "doorknob-hd-no-bar" and match["note"] == "doorknob-hd-no-bar.txt"
    assert match["distance"] <= match["threshold"] == 0.2
    assert match["frames_matched"] >= 0.8 * match["frames_queried"] and match["first_timestamp"] >= 0
