"""Shared fixtures. Test data from ../shared is read in place; tests that need it skip with a
clear reason when it is absent (an outside user's clone)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CSADETECT_SHARED", REPO.parent / "shared"))
THREATEXCHANGE = SHARED / "testdata" / "threatexchange"

# Beam's default runner would try to download Prism: tests always pin theirs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _beam_temp_folders():
    """Beam makes a ``beam-pipeline-temp*`` folder with every pipeline and removes it only at the
    end of ``Pipeline.run``: the folders of graphs a test builds and never runs are removed after it
    (the code under test removes its own: ``tests/test_profiles.py`` checks that before this runs)."""
    import shutil
    import sys

    beam = sys.modules.get("apache_beam")
    if beam is None:  # a test that imports no Beam makes no pipeline
        yield
        return
    made = []
    init = beam.Pipeline.__init__

    def tracked(self, *args, **kwargs):
        init(self, *args, **kwargs)
        made.append(self.local_tempdir)

    with pytest.MonkeyPatch.context() as patch:  # its own: a test's monkeypatch.undo() keeps it
        patch.setattr(beam.Pipeline, "__init__", tracked)
        yield

    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def generated_pans(tmp_path_factory, folder: str, seeds, seconds: int, size: tuple[int, int]) -> dict:
    """``{seed: path}`` of generated pans (:func:`csadetect.media.synth.synthetic_video`, 30 fps) in a
    fresh folder ``folder``; skips the test without the ffmpeg CLI."""
    import shutil

    from csadetect.media import synth

    if shutil.which("ffmpeg") is None:
        pytest.skip("needs the ffmpeg CLI")
    d = tmp_path_factory.mktemp(folder)
    out = {}
    for seed in seeds:
        out[seed] = d / f"pan-{seed}.mp4"
        synth.synthetic_video(seed, out[seed], seconds=seconds, fps=30, size=size)
    return out


def signed_indicator_db(work: Path, pictures: list[bytes]) -> list[str]:
    """Write ``pictures`` (encoded images) as ``known-<i>.jpg`` under ``work``, an Ed25519 key pair
    under ``work/keys`` and a signed snapshot of their indicator rows at ``work/db``; returns the
    pictures' paths."""
    from csadetect.config.settings import MatchSettings
    from csadetect.core.keys import generate_keypair
    from csadetect.indicators.rows import from_media
    from csadetect.indicators.snapshot import build_snapshot

    paths = []
    for i, data in enumerate(pictures):
        path = Path(work) / f"known-{i}.jpg"
        path.write_bytes(data)
        paths.append(str(path))
    generate_keypair(Path(work) / "keys")
    build_snapshot(from_media(paths, MatchSettings()), str(Path(work) / "db"), str(Path(work) / "keys" / "private.pem"))
    return paths


def video_through_hash_stage(data: bytes, match) -> list:
    """The frames the pipeline's ``HashMedia`` stage gives an MP4 upload of ``data`` under the
    ``match`` settings (``csadetect.config.settings.MatchSettings``)."""
    import json

    from csadetect.config.settings import Limits
    from csadetect.events.event import make_event, parse_event
    from csadetect.transforms.hash import HashMediaFn

    fn = HashMediaFn(Limits(), match)
    fn.setup()
    (item,) = list(fn.process(parse_event(json.dumps(make_event("v", data, kind="video", mime="video/mp4")))))
    return list(item.video.frames)


def need_shared(*parts: str) -> Path:
    path = THREATEXCHANGE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (clone without ../shared)")
    return path


@pytest.fixture
def te_dir():
    return need_shared()


def make_report_keys(keydir) -> dict:
    """Provider (signing + evidence) and EU Centre keys under ``keydir``; returns config overrides
    ``{"reports": {...}}`` that use them, plus the paths under ``"paths"``."""
    from csadetect.reports.crypto import generate_centre_keypair
    from csadetect.review.store import generate_provider_keys

    keydir = Path(keydir)
    reports = generate_provider_keys(str(keydir / "provider"))
    centre_private, centre_public = generate_centre_keypair(keydir / "centre")
    reports["centre_public_key"] = str(centre_public)
    paths = dict(reports, centre_private_key=str(centre_private), provider_public_key=str(keydir / "provider" / "public.pem"))
    return {"reports": reports, "paths": paths}


@pytest.fixture(scope="session")
def report_keys(tmp_path_factory):
    return make_report_keys(tmp_path_factory.mktemp("report-keys"))


@pytest.fixture(scope="module")
def emulator():
    """The real Pub/Sub emulator on a free port for the tests of one module (``host:port``);
    skips with the reason when gcloud is not installed."""
    from tests.pubsub_emulator import pubsub_emulator

    try:
        with pubsub_emulator() as host:
            yield host
    except RuntimeError as exc:
        if "not installed" in str(exc):
            pytest.skip(str(exc))
        raise
