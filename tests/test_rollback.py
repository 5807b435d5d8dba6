"""No rollback of the indicator database (issue 12, item 4).

``CURRENT`` is an unsigned hint: the version served is the highest one whose signed manifest
verifies. A ``CURRENT`` below it is reported by ``indicators verify`` and refused by ``run``'s
start-up check; readers keep the highest version. A forged or damaged newest version is refused,
never skipped. ``indicators.min_version`` is enforced at start-up and on hot swap."""
from __future__ import annotations

import base64
import json
import os
import shutil

import pytest

from csadetect.config.settings import ConfigError, IndicatorSettings, MatchSettings, Settings
from csadetect.core.keys import generate_keypair, sign
from csadetect.indicators.index import load_index
from csadetect.indicators.live import LiveIndex
from csadetect.indicators.rows import Indicator
from csadetect.indicators.snapshot import (
    SnapshotError,
    build_snapshot,
    check_head,
    head,
    info,
    load_snapshot,
)
from csadetect.pipelines.detect import check_indicators
from tests.cli_helpers import run_cli

MD5_OLD = "0" * 32
MD5_NEW = "1" * 32


@pytest.fixture
def db(tmp_path):
    """A two-version database: v1 holds ``old``; the v2 delta adds ``new``."""
    private, public = generate_keypair(tmp_path / "keys")
    path = str(tmp_path / "db")
    build_snapshot([Indicator("old", "md5", MD5_OLD)], path, private)
    build_snapshot([Indicator("new", "md5", MD5_NEW)], path, private, base="latest")
    return path, private, public


def _set_current(db_dir, text):
    with open(os.path.join(db_dir, "CURRENT"), "w") as fh:
        fh.write(text)


def _ids(snapshot):
    return {r.indicator_id for r in snapshot.rows() if r.active}


def _settings(db_dir, public, min_version=None, poll_seconds=30):
    return IndicatorSettings(path=db_dir, public_key=str(public), poll_seconds=poll_seconds, min_version=min_version)


# ------------------------------------------------------------------- echo 1 > CURRENT


def test_rolled_back_current_fails_verify_with_one_line(db, capsys):
    db_dir, _, public = db
    code, out, _ = run_cli(capsys, "indicators", "verify", "--public-key", public, db_dir)
    assert code == 0 and out[0]["version"] == 2 and out[0]["current"] == out[0]["latest_signed"] == 2
    _set_current(db_dir, "1\n")
    code, out, err = run_cli(capsys, "indicators", "verify", "--public-key", public, db_dir)
    assert code == 1 and not out[0]["ok"]
    assert err.count("\n") == 1 and err.startswith("error: rollback attempt:")
    assert "CURRENT names version 1, below the highest signed version 2" in err
    # also when checking an explicit (old) version's chain: the database state is checked first
    code, _, err = run_cli(capsys, "indicators", "verify", "--public-key", public, "--version", "1", db_dir)
    assert code == 1 and "rollback attempt" in err


def test_missing_current_fails_verify(db, capsys):
    db_dir, _, public = db
    os.remove(os.path.join(db_dir, "CURRENT"))
    code, _, err = run_cli(capsys, "indicators", "verify", "--public-key", public, db_dir)
    assert code == 1 and "CURRENT is missing or unreadable; the highest signed version is 2" in err
    assert load_snapshot(db_dir, public).version == 2  # readers still serve the highest signed version
    _set_current(db_dir, "garbage\n")
    assert load_snapshot(db_dir, public).version == 2
    code, _, err = run_cli(capsys, "indicators", "verify", "--public-key", public, db_dir)
    assert code == 1 and "CURRENT is missing or unreadable" in err


def test_readers_take_the_highest_signed_version_not_current(db, capsys):
    """Loading never goes below the highest signed version because of CURRENT: ``match`` still finds
    what version 2 added (and says CURRENT disagrees); a running worker stays where it is."""
    db_dir, _, public = db
    live = LiveIndex(_settings(db_dir, public), MatchSettings())
    _set_current(db_dir, "1\n")
    snap = load_snapshot(db_dir, public)
    assert snap.version == 2 and _ids(snap) == {"old", "new"}
    assert load_index(db_dir, public).version == 2
    found = head(db_dir, public)
    assert (found.latest, found.current) == (2, 1) and "rollback attempt" in found.problem()
    assert info(db_dir, public)["latest_signed"] == 2 and "rollback" in info(db_dir, public)["rollback"]
    assert not live.refresh() and live.version == 2
    # a delta built now goes on top of version 2, not of the version CURRENT names
    manifest = build_snapshot([Indicator("newer", "md5", "2" * 32)], db_dir, db[1], base="latest")
    assert (manifest["version"], manifest["parent"]) == (3, 2)
    assert _ids(load_snapshot(db_dir, public)) == {"old", "new", "newer"}


def test_match_cli_uses_the_highest_signed_version_and_warns(db, capsys, tmp_path):
    db_dir, _, public = db
    _set_current(db_dir, "1\n")
    config = tmp_path / "config.yaml"
    config.write_text("embedding:\n  enabled: false\nnew_material:\n  enabled: false\n")
    picture = tmp_path / "a.png"
    from csadetect.media import synth

    picture.write_bytes(synth.jpeg_bytes(synth.synthetic_image(3)))
    args = ["--config", config, "match", "--indicators", db_dir, "--public-key", public, "--no-embedding", picture]
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and out[0]["matched"] is False
    assert "indicator snapshot version 2" in err and "warning: rollback attempt" in err


def test_run_refuses_to_start_on_a_rolled_back_database(db):
    db_dir, _, public = db
    settings = Settings(indicators=_settings(db_dir, public))
    assert check_indicators(settings).version == 2
    _set_current(db_dir, "1\n")
    with pytest.raises(ConfigError) as err:
        check_indicators(settings)
    message = str(err.value)
    assert "\n" not in message and "rollback attempt" in message and "below the highest signed version 2" in message


# ------------------------------------------------------------------- min_version


def test_min_version_at_start_up(db, capsys):
    db_dir, _, public = db
    with pytest.raises(ConfigError, match=r"version 2 is below the minimum version 3 \(indicators.min_version\)"):
        check_indicators(Settings(indicators=_settings(db_dir, public, min_version=3)))
    with pytest.raises(SnapshotError, match="below the minimum version 3"):
        LiveIndex(_settings(db_dir, public, min_version=3), MatchSettings())
    assert LiveIndex(_settings(db_dir, public, min_version=2), MatchSettings()).version == 2
    code, _, err = run_cli(capsys, "indicators", "verify", "--public-key", public, "--min-version", "3", db_dir)
    assert code == 1 and "below the minimum version 3" in err
    assert run_cli(capsys, "indicators", "verify", "--public-key", public, "--min-version", "2", db_dir)[0] == 0


def test_min_version_on_hot_swap(tmp_path):
    """A worker at version 1 with min_version 3 refuses to swap to version 2 (kept at 1, counted as a
    refused snapshot), and swaps once version 3 exists."""
    private, public = generate_keypair(tmp_path / "keys")
    db_dir = str(tmp_path / "db")
    build_snapshot([Indicator("old", "md5", MD5_OLD)], db_dir, private)
    index = load_index(db_dir, public)
    build_snapshot([Indicator("new", "md5", MD5_NEW)], db_dir, private, base="latest")
    with pytest.raises(SnapshotError, match="version 2 is below the minimum version 3"):
        index.refresh(db_dir, public, min_version=3)
    assert index.version == 1
    build_snapshot([Indicator("newer", "md5", "2" * 32)], db_dir, private, base="latest")
    assert index.refresh(db_dir, public, min_version=3) and index.version == 3


def test_worker_refuses_a_deleted_newest_version(db):
    """Deleting version 2 and lowering CURRENT cannot be seen in the files; the running worker
    refuses to go back, and a new worker refuses to start below min_version."""
    db_dir, _, public = db
    live = LiveIndex(_settings(db_dir, public, min_version=2), MatchSettings())
    assert live.version == 2
    shutil.rmtree(os.path.join(db_dir, "versions", "2"))
    _set_current(db_dir, "1\n")
    assert not live.refresh() and live.current().version == 2
    with pytest.raises(SnapshotError, match="refused: the highest signed version in .* is 1, older than the loaded 2"):
        live.index.refresh(db_dir, public)
    with pytest.raises(SnapshotError, match="version 1 is below the minimum version 2"):
        LiveIndex(_settings(db_dir, public, min_version=2), MatchSettings())


def test_current_naming_a_missing_version_is_refused(db):
    db_dir, _, public = db
    shutil.rmtree(os.path.join(db_dir, "versions", "2"))  # CURRENT still says 2
    with pytest.raises(SnapshotError, match="CURRENT names version 2, above the highest signed version 1"):
        load_snapshot(db_dir, public)


# ------------------------------------------------------------------- forged or damaged newest version


def _forge_version(db_dir, version, signer=None):
    """Copy version 2 as ``version`` with its manifest rewritten to that number, signed by
    ``signer`` (a private key) or keeping version 2's signature."""
    src, dst = os.path.join(db_dir, "versions", "2"), os.path.join(db_dir, "versions", str(version))
    shutil.copytree(src, dst)
    manifest = json.loads(open(os.path.join(dst, "manifest.json"), "rb").read())
    manifest["version"] = version
    raw = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    open(os.path.join(dst, "manifest.json"), "wb").write(raw)
    if signer is not None:
        open(os.path.join(dst, "manifest.sig"), "wb").write(base64.b64encode(sign(signer, raw)) + b"\n")


@pytest.mark.parametrize("current", ["2\n", "9\n"])
def test_forged_manifest_cannot_raise_the_version(db, tmp_path, capsys, current):
    db_dir, _, public = db
    live = LiveIndex(_settings(db_dir, public), MatchSettings())
    other_private, _ = generate_keypair(tmp_path / "other")
    _forge_version(db_dir, 9, signer=other_private)
    _set_current(db_dir, current)
    with pytest.raises(SnapshotError, match="signature does not verify for version 9"):
        load_snapshot(db_dir, public)
    with pytest.raises(SnapshotError, match="signature does not verify for version 9"):
        head(db_dir, public)
    code, _, err = run_cli(capsys, "indicators", "verify", "--public-key", public, db_dir)
    assert code == 1 and "signature does not verify for version 9" in err
    assert not live.refresh() and live.current().version == 2  # refused, not raised; version 2 stays in service
    assert load_snapshot(db_dir, public, 2).version == 2  # an explicit version still loads


def test_replayed_signature_cannot_raise_the_version(db):
    db_dir, _, public = db
    _forge_version(db_dir, 3)  # version 2's signature over a manifest that now says 3
    with pytest.raises(SnapshotError, match="signature does not verify for version 3"):
        load_snapshot(db_dir, public)


def test_damaged_newest_version_is_refused_not_skipped(db):
    """A broken signature on version 2 must not make readers fall back to version 1."""
    db_dir, _, public = db
    sig = os.path.join(db_dir, "versions", "2", "manifest.sig")
    open(sig, "w").write(base64.b64encode(b"\0" * 64).decode() + "\n")
    with pytest.raises(SnapshotError, match="signature does not verify for version 2"):
        load_snapshot(db_dir, public)
    os.remove(sig)
    with pytest.raises(SnapshotError, match="version 2 .* has no manifest.sig"):
        load_snapshot(db_dir, public)


def test_signed_manifest_with_duplicate_keys_is_refused(db):
    """Even correctly signed, a manifest with a repeated key is refused (no last-value-wins)."""
    db_dir, private, public = db
    where = os.path.join(db_dir, "versions", "2")
    raw = open(os.path.join(where, "manifest.json"), "rb").read()
    forged = raw.replace(b'"version": 2', b'"version": 2,\n  "version": 2', 1)
    assert forged != raw
    open(os.path.join(where, "manifest.json"), "wb").write(forged)
    open(os.path.join(where, "manifest.sig"), "wb").write(base64.b64encode(sign(private, forged)) + b"\n")
    with pytest.raises(SnapshotError, match="not valid JSON without duplicate keys"):
        load_snapshot(db_dir, public)


def test_unpublished_version_directory_is_skipped(db):
    """A version directory without its manifest yet (an object-store copy in progress: the
    manifest is written last) is not a version; the highest published one is served."""
    db_dir, _, public = db
    partial = os.path.join(db_dir, "versions", "3")
    os.makedirs(partial)
    shutil.copy(os.path.join(db_dir, "versions", "2", "delta.parquet"), partial)
    assert load_snapshot(db_dir, public).version == 2
    assert check_head(db_dir, public).latest == 2
