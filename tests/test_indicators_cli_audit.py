"""Operator-facing indicator commands: nothing lost or overwritten (an empty full snapshot, CURRENT moved
back, half-written or replaced output files), bad input failing fast with one ``error:`` line (a
directory without media, an empty hash list, a looping chain, ``--version 0``), and progress on stderr."""
from __future__ import annotations

import json
import os
import tempfile

import pytest

from csadetect.cli import output
from csadetect.cli import indicators as cli
from csadetect.core.keys import generate_keypair
from csadetect.indicators import formats, snapshot, snapshot_build
from csadetect.indicators.rows import Indicator, IndicatorError, write_csv
from csadetect.indicators.snapshot import build_snapshot, current_version, list_versions
from csadetect.media import synth
from tests.cli_helpers import run_cli

MD5 = "d35c785545392755e7e4164457657269"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"


@pytest.fixture
def db(tmp_path):
    """A database holding version 1 (two rows), and its key pair."""
    private, public = generate_keypair(tmp_path / "keys")
    path = str(tmp_path / "db")
    build_snapshot([Indicator("a1", "md5", MD5), Indicator("a2", "sha1", SHA1)], path, private)
    return path, private, public


def _images(folder, n):
    folder.mkdir()
    for i in range(n):
        (folder / f"i{i}.jpg").write_bytes(synth.jpeg_bytes(synth.synthetic_image(i, (96, 96))))
    return folder


def test_build_refuses_a_full_snapshot_of_no_rows(tmp_path, capsys, db):
    path, private, _ = db
    header_only = tmp_path / "empty.csv"
    header_only.write_text("indicator_id,kind,value\n")
    code, out, err = run_cli(capsys, "indicators", "build", "--input", header_only, "--key", private, "--out", path)
    assert code == 1 and out == [] and err.count("\n") == 1 and err.startswith("error: no indicator rows")
    assert list_versions(path) == [1] and current_version(path) == 1


def test_build_names_the_lines_of_a_repeated_id(tmp_path, capsys, db, monkeypatch):
    """The streaming read keeps no set of ids (~150 bytes a row); the build's sorted check finds a
    repeat, and the error names its lines as reading the whole file does, in chunks or not."""
    from csadetect.indicators import snapshot_tables

    path, private, _ = db
    rows = [Indicator(f"r{i}", "md5", f"{i:032x}") for i in range(5)] + [Indicator("r1", "md5", "f" * 32)]
    csv = tmp_path / "rows.csv"
    write_csv(rows, str(csv))
    for chunk in (1000, 2):
        monkeypatch.setattr(snapshot_tables, "TABLE_CHUNK", chunk)
        code, out, err = run_cli(capsys, "indicators", "build", "--input", csv, "--key", private, "--out",
                                 str(tmp_path / "new"))
        assert code == 1 and out == [] and err == f"error: {csv}:7: duplicate indicator_id 'r1' (first on line 3)\n"
        assert not (tmp_path / "new").exists()


def test_build_reads_a_large_input_in_chunks_with_progress(tmp_path, capsys, db, monkeypatch):
    """`indicators build` turns its input into Arrow a chunk at a time (an object per row was about
    1.4 KB: 14 GB for 10M rows) and says how far it has read; the snapshot is the same."""
    from csadetect.indicators import snapshot_tables
    from csadetect.indicators.rows import read_indicators

    path, private, _ = db
    rows = [Indicator(f"r{i}", "md5", f"{i:032x}") for i in range(7)]
    csv = tmp_path / "rows.csv"
    write_csv(rows, str(csv))
    # the chunked table equals the one made from all rows at once; progress after each chunk
    seen = []
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    table = snapshot_tables.indicator_table(iter(read_indicators(str(csv))), seen.append, chunk=3)
    assert table.equals(snapshot_tables.rows_to_table(rows)) and seen == [3, 6]
    # more than one chunk: read back mapped from an Arrow file of the chunks, unlinked at once
    assert table["indicator_id"].num_chunks == 3 and list(spill.iterdir()) == []
    assert snapshot_tables.indicator_table(iter(())).num_rows == 0

    def failing():
        yield from rows[:4]
        raise IndicatorError("line 5: bad row")

    with pytest.raises(IndicatorError):
        snapshot_tables.indicator_table(failing(), chunk=3)
    assert list(spill.iterdir()) == []
    monkeypatch.setattr(snapshot_tables, "TABLE_CHUNK", 2)
    monkeypatch.setattr(snapshot_build, "WRITE_CHUNK", 2)
    monkeypatch.setattr(output, "PROGRESS_SECONDS", 0.0)
    code, out, err = run_cli(capsys, "indicators", "build", "--input", csv, "--key", private, "--out", path,
                             "--base", "latest")
    assert code == 0 and f"reading {csv}: 6 rows" in err and f"writing {path}: 4 rows" in err, err
    assert list(spill.iterdir()) == []
    built = {r.indicator_id for r in snapshot.load_snapshot(path, _public(path)).rows()}
    assert built >= {r.indicator_id for r in rows}
    # a bad row late in the input still stops the build with one line, before anything is written
    csv.write_text(csv.read_text() + "r9,md5,nothex\n")
    code, out, err = run_cli(capsys, "indicators", "build", "--input", csv, "--key", private, "--out", path)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and f"{csv}:9:" in errors[0] and err.splitlines()[-1] == errors[0], err
    assert list_versions(path) == [1, 2]


def _public(path):
    return os.path.join(os.path.dirname(path), "keys", "public.pem")


def test_current_never_moves_back_below_a_version_published_meanwhile(db, monkeypatch):
    path, private, _ = db
    publish = snapshot_build._publish_dir
    raced = []

    def slower(staging, final):  # another build publishes version 3 before this one (2) moves CURRENT
        publish(staging, final)
        if not raced:
            raced.append(True)
            build_snapshot([Indicator("b1", "md5", MD5)], path, private)

    monkeypatch.setattr(snapshot_build, "_publish_dir", slower)
    assert build_snapshot([Indicator("c1", "md5", MD5)], path, private)["version"] == 2
    assert list_versions(path) == [1, 2, 3] and current_version(path) == 3


def test_a_build_that_cannot_publish_leaves_no_staging_directory(db, monkeypatch):
    path, private, _ = db
    monkeypatch.setattr(snapshot_build, "list_versions", lambda db_dir: [])  # as a racing build sees it
    monkeypatch.setattr(snapshot_build, "current_version", lambda db_dir: None)
    with pytest.raises(snapshot.SnapshotError, match="already exists"):
        build_snapshot([Indicator("c1", "md5", MD5)], path, private)
    assert sorted(os.listdir(os.path.join(path, "versions"))) == ["1"] and current_version(path) == 1


def test_info_without_a_key_refuses_a_delta_whose_parent_loops(tmp_path, capsys, monkeypatch):
    where = tmp_path / "db" / "versions" / "2"
    where.mkdir(parents=True)
    (where / "manifest.json").write_text(json.dumps({"format": snapshot.FORMAT, "version": 2, "type": "delta",
                                                     "parent": 2}))
    read = snapshot._read_manifest
    calls = []

    def counted(*a, **k):
        calls.append(1)
        assert len(calls) < 20, "info loops over the same manifest"
        return read(*a, **k)

    monkeypatch.setattr(snapshot, "_read_manifest", counted)
    code, out, err = run_cli(capsys, "indicators", "info", tmp_path / "db")
    assert code == 1 and out == [] and err == "error: version 2 is a delta with an invalid parent 2\n"


def test_verify_version_0_is_refused_not_read_as_the_latest(capsys, db):
    path, _, public = db
    code, out, err = run_cli(capsys, "indicators", "verify", "--public-key", public, "--version", "0", path)
    assert code == 1 and not out[0]["ok"] and err.startswith("error: version 0 not found") and err.count("\n") == 1


def test_a_failed_write_keeps_the_earlier_file_and_leaves_no_partial_one(tmp_path):
    out = tmp_path / "rows.csv"
    out.write_text("the earlier file\n")

    def failing():
        yield Indicator("a1", "md5", MD5)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_csv(failing(), str(out), overwrite=True)
    with pytest.raises(OSError):
        formats.export_file(failing(), "csadetect", str(out), overwrite=True)
    assert out.read_text() == "the earlier file\n" and os.listdir(tmp_path) == ["rows.csv"]
    write_csv([Indicator("a1", "md5", MD5)], str(out), overwrite=True)
    assert out.read_text().splitlines()[1].startswith("a1,md5,") and os.listdir(tmp_path) == ["rows.csv"]


def test_without_force_a_file_made_while_writing_is_not_replaced(tmp_path, monkeypatch):
    out = tmp_path / "export.csv"
    export = formats.export

    def slow(rows, fmt, fh, *a):  # someone else writes the file meanwhile
        out.write_text("theirs\n")
        return export(rows, fmt, fh, *a)

    monkeypatch.setattr(formats, "export", slow)
    with pytest.raises(IndicatorError, match="exists; pass --force"):
        formats.export_file([Indicator("a1", "md5", MD5)], "csadetect", str(out))
    assert out.read_text() == "theirs\n" and os.listdir(tmp_path) == ["export.csv"]


def test_output_paths_that_cannot_be_written_fail_before_any_work(tmp_path, capsys, db, monkeypatch):
    path, _, public = db
    monkeypatch.setattr(cli, "from_media", lambda *a, **k: pytest.fail("hashed before checking --out"))
    monkeypatch.setattr(formats, "read", lambda *a, **k: pytest.fail("read before checking --csv"))
    images = _images(tmp_path / "imgs", 1)
    (tmp_path / "taken.csv").write_text("kept\n")
    cases = [
        (["indicators", "from-media", "--no-embedding", "--out", tmp_path / "nodir" / "o.csv", images],
         f"error: {tmp_path / 'nodir' / 'o.csv'}: directory {tmp_path / 'nodir'} does not exist\n"),
        (["indicators", "from-media", "--no-embedding", "--force", "--out", images, images],
         f"error: {images}: is a directory\n"),
        (["indicators", "import", tmp_path / "missing.txt", "--csv", tmp_path / "taken.csv"],
         f"error: {tmp_path / 'taken.csv'} exists; pass --force to replace it\n"),
        (["indicators", "export", path, "--public-key", public, "--force", "--out", images],
         f"error: {images}: is a directory\n"),
    ]
    for argv, expected in cases:
        code, out, err = run_cli(capsys, *argv)
        assert (code, out, err) == (1, [], expected)
    assert (tmp_path / "taken.csv").read_text() == "kept\n"
    assert sorted(os.listdir(tmp_path)) == ["db", "imgs", "keys", "taken.csv"]


def test_a_directory_without_media_is_an_error_for_hash_and_match(tmp_path, capsys, db):
    path, _, public = db
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no pictures here\n")
    code, out, err = run_cli(capsys, "hash", empty)
    assert (code, out, err) == (1, [], f"error: {empty}: no image or video files in this directory\n")
    code, out, _ = run_cli(capsys, "match", "--no-embedding", "--indicators", path, "--public-key", public, empty)
    assert code == 1 and out == [{"path": str(empty), "error": "no image or video files in this directory"}]


def test_match_refuses_an_empty_hash_list_before_loading_the_snapshot(tmp_path, capsys):
    empty = tmp_path / "list.txt"
    empty.write_text("# kind: md5\n\n")
    code, out, err = run_cli(capsys, "match", "--indicators", tmp_path / "no-db", "--public-key", tmp_path / "no.pem",
                         "--hashes", empty)
    assert (code, out, err) == (1, [], f"error: {empty}: no hash values to match\n")


def test_from_media_reports_progress_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(output, "PROGRESS_SECONDS", 0.0)
    images = _images(tmp_path / "imgs", 3)
    code, out, err = run_cli(capsys, "indicators", "from-media", "--no-embedding", "--out", tmp_path / "o.csv", images)
    assert code == 0 and out[0]["rows"] > 0
    assert "hashing file 2 of 3" in err and "hashing file 3 of 3" in err
