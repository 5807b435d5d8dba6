"""A YAML ``true``/``false`` where the settings ask for a number fails with one line
(csadetect/config/base.py, ``_Strict._no_bool_numbers``): pydantic's lax mode would otherwise take
``match.embedding_query_turn_gate: true`` as a gate of 1 and ``limits.max_pixels: true`` as one pixel."""
from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from csadetect.config.settings import ConfigError, MatchSettings, Settings, _bool_for_number, load_settings


def _fields(model: type[BaseModel], path: tuple[str, ...] = ()):
    """(dotted path, annotation) of every leaf field under ``model``, sub-models walked."""
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _fields(ann, path + (name,))
        else:
            yield path + (name,), ann


def _nested(path: tuple[str, ...], value) -> dict:
    out = value
    for key in reversed(path):
        out = {key: out}
    return out


NUMERIC = [(p, a) for p, a in _fields(Settings) if _bool_for_number(True, a)]


def test_the_walk_finds_the_number_fields():
    paths = {".".join(p) for p, _ in NUMERIC}
    assert {"match.embedding_query_turn_gate", "match.embedding_query_region_gate", "limits.max_pixels",
            "match.embedding_query_region_shares"} <= paths
    assert "match.embedding_query_turns" not in paths  # a bool field
    assert len(paths) > 40


@pytest.mark.parametrize("path", [p for p, _ in NUMERIC], ids=[".".join(p) for p, _ in NUMERIC])
@pytest.mark.parametrize("flag", [True, False])
def test_every_number_field_refuses_true_and_false(path, flag):
    ann = dict(NUMERIC)[path]
    origin = typing.get_origin(ann)
    value = [flag] if origin in (tuple, list) else flag
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=_nested(path, value))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"invalid config at {'.'.join(path)}") and "expected a number, not true/false" in msg


def test_optional_numbers_say_how_to_turn_them_off_and_null_still_does():
    with pytest.raises(ConfigError, match=r"embedding_query_turn_gate: .*not true/false; null turns it off"):
        load_settings(overrides={"match": {"embedding_query_turn_gate": True}})
    with pytest.raises(ConfigError, match=r"max_pixels: .*not true/false$"):
        load_settings(overrides={"limits": {"max_pixels": True}})
    s = load_settings(overrides={"match": {"embedding_query_turn_gate": None, "embedding_query_region_gate": 16}})
    assert s.match.embedding_query_turn_gate is None and s.match.embedding_query_region_gate == 16.0


def test_numbers_and_bools_are_still_taken_where_they_belong():
    s = load_settings(overrides={"match": {"embedding_query_turn_gate": 20, "embedding_query_turns": False,
                                           "embedding_query_region_shares": [0.8, 0.9]},
                                 "limits": {"max_pixels": 1000, "max_video_seconds": 30}})
    assert s.match.embedding_query_turn_gate == 20.0 and s.match.embedding_query_turns is False
    assert s.match.embedding_query_region_shares == (0.8, 0.9)
    assert s.limits.max_pixels == 1000 and s.limits.max_video_seconds == 30.0
    assert load_settings() == Settings.model_validate(load_settings().model_dump())  # the defaults round-trip


def test_a_bool_inside_a_list_of_numbers_fails():
    with pytest.raises(ConfigError, match="embedding_query_region_shares: .*expected a number"):
        load_settings(overrides={"match": {"embedding_query_region_shares": [0.8, True]}})
    with pytest.raises(ValueError, match="expected a number"):
        MatchSettings(embedding_query_region_shares=(True,))


def test_bool_for_number_reads_annotations():
    assert _bool_for_number(True, int) and _bool_for_number(False, typing.Optional[float])
    assert not _bool_for_number(True, bool) and not _bool_for_number(True, typing.Union[bool, float])
    assert not _bool_for_number(1, int) and not _bool_for_number(None, typing.Optional[int])
    assert not _bool_for_number(True, str) and not _bool_for_number(True, typing.Literal[0, 1])
    assert _bool_for_number([0.5, True], tuple[float, ...]) and not _bool_for_number([0.5], tuple[float, ...])
    assert _bool_for_number((1, True), tuple[int, float]) and not _bool_for_number(("a", True), tuple[str, bool])
    assert _bool_for_number({"pdq": True}, dict[str, float]) and not _bool_for_number({"pdq": 31}, dict[str, float])
    assert _bool_for_number({"s": {"pdq": False}}, dict[str, dict[str, float]])
    assert _bool_for_number([True], typing.Optional[tuple[float, ...]]) and not _bool_for_number([0.5], typing.Optional[tuple[float, ...]])
    assert not _bool_for_number({"a": True}, dict[str, bool]) and not _bool_for_number({"a": True}, typing.Optional[dict])


def test_a_bool_among_the_distances_of_a_source_fails():
    """``match.thresholds.by_source`` (source -> kind -> max distance): ``pdq: true`` would be a distance of 1."""
    with pytest.raises(ConfigError, match=r"by_source: .*expected a number, not true/false"):
        load_settings(overrides={"match": {"thresholds": {"by_source": {"eu-centre": {"pdq": True}}}}})
    s = load_settings(overrides={"match": {"thresholds": {"by_source": {"eu-centre": {"pdq": 20}}}}})
    assert s.match.thresholds.by_source == {"eu-centre": {"pdq": 20.0}}
