"""The per-process live index swaps to a new signed snapshot without a restart, and refuses one
that does not verify (keeping the last good version). ``refresh()`` is what the polling thread of
:class:`csadetect.indicators.live.LiveIndex` calls every ``poll_seconds`` (the thread itself:
tests/test_live_index.py)."""
from __future__ import annotations

import pytest

from csadetect.config.settings import IndicatorSettings, MatchSettings
from csadetect.core.keys import generate_keypair
from csadetect.indicators.live import LiveIndex
from csadetect.indicators.rows import from_media
from csadetect.indicators.snapshot import build_snapshot
from csadetect.media import synth
from csadetect.media.hashing import hash_image


@pytest.fixture
def db(tmp_path):
    generate_keypair(tmp_path / "keys")
    paths = []
    for i in range(3):
        p = tmp_path / f"img-{i}.jpg"
        p.write_bytes(synth.jpeg_bytes(synth.synthetic_image(700 + i)))
        paths.append(str(p))
    rows = from_media(paths, MatchSettings())
    build_snapshot([r for r in rows if "img-2" not in r.note], tmp_path / "db", tmp_path / "keys" / "private.pem")
    return tmp_path, rows, paths


def test_live_index_swaps_on_poll_and_refuses_tampered(db):
    root, rows, paths = db
    settings = IndicatorSettings(path=str(root / "db"), public_key=str(root / "keys" / "public.pem"), poll_seconds=30)
    live = LiveIndex(settings, MatchSettings())
    new_img = hash_image(open(paths[2], "rb").read())
    old_img = hash_image(open(paths[0], "rb").read())
    assert live.version == 1
    assert not live.current().match_image(new_img)
    assert live.current().match_image(old_img)

    # a delta adds img-2 and tombstones img-0's indicators
    old_ids = [r.indicator_id for r in rows if "img-0" in r.note]
    build_snapshot([r for r in rows if "img-2" in r.note], root / "db", root / "keys" / "private.pem",
                   base="latest", disable_ids=old_ids)
    assert not live.current().match_image(new_img)  # not polled yet
    assert live.refresh()  # the poll
    index = live.current()
    assert live.version == 2
    assert index.match_image(new_img)
    assert not index.match_image(old_img)

    # a version signed with another key is refused; version 2 stays in service
    generate_keypair(root / "other")
    build_snapshot(rows, root / "db", root / "other" / "private.pem")
    assert not live.refresh()
    assert live.current().version == 2
    assert live.current().match_image(new_img)
