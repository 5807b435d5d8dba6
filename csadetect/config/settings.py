"""Typed, validated configuration.

Defaults live in ``csadetect/config/default.yaml`` (shipped as package data). A user file is merged on top
and the whole is validated *before* a pipeline graph is built, so a typo fails at start-up with a
one-line message instead of deep inside a worker. A key given twice in one YAML mapping is refused
(:func:`safe_load_unique`; PyYAML would keep the last silently), and so is an empty ``--config`` path.

The sections live in modules of their own: :mod:`~csadetect.config.base` (the strict base model and
:class:`ConfigError`), :mod:`~csadetect.config.limits`, :mod:`~csadetect.config.matching`,
:mod:`~csadetect.config.detectors`, :mod:`~csadetect.config.orders`, :mod:`~csadetect.config.outputs` and
:mod:`~csadetect.config.console`. This module holds the top-level :class:`Settings` and
:func:`load_settings`, and every name stays importable from here.
"""
from __future__ import annotations

import copy
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import ValidationError, field_validator

# the sections moved to their own modules; callers import them from here, so every name is re-exported
from csadetect.config.base import ConfigError, _bool_for_number, _Strict
from csadetect.config.console import ConsoleSettings
from csadetect.config.detectors import Batching, EmbeddingSettings, GroomingSettings, NewMaterialSettings
from csadetect.config.limits import ContentSettings, Limits
from csadetect.config.matching import (AllowListSettings, FloodGuardSettings, IndicatorSettings,
                                       MatchSettings, MatchThresholds)
from csadetect.config.orders import DETECTION_TYPES, DetectionOrder
from csadetect.config.outputs import (FeedbackSettings, ProviderSettings, ReportSettings, RetentionSettings,
                                      ReviewSettings, SinkSettings, StoreSettings)
from csadetect.core import fs
from csadetect.core.timeutil import utc_now

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = CONFIG_DIR / "default.yaml"


class Settings(_Strict):
    limits: Limits = Limits()
    content: ContentSettings = ContentSettings()
    match: MatchSettings = MatchSettings()
    indicators: IndicatorSettings = IndicatorSettings()
    allow_list: AllowListSettings = AllowListSettings()
    flood_guard: FloodGuardSettings = FloodGuardSettings()
    grooming: GroomingSettings = GroomingSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    new_material: NewMaterialSettings = NewMaterialSettings()
    sinks: SinkSettings = SinkSettings()
    provider: ProviderSettings = ProviderSettings()
    orders: tuple[DetectionOrder, ...] = ()
    reports: ReportSettings = ReportSettings()
    review: ReviewSettings = ReviewSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    stores: StoreSettings = StoreSettings()
    retention: RetentionSettings = RetentionSettings()
    console: ConsoleSettings = ConsoleSettings()

    def orders_covering(self, detection_type: str, service: str, now: Optional[datetime] = None) -> list[DetectionOrder]:
        now = now or utc_now()
        return [o for o in self.orders if o.covers(detection_type, service, now)]

    def active_orders(self, now: Optional[datetime] = None) -> list[DetectionOrder]:
        now = now or utc_now()
        return [o for o in self.orders if o.active(now)]

    def demo_orders(self) -> list[DetectionOrder]:
        """The configured orders marked ``demo: true`` (the shipped default's stand-in order)."""
        return [o for o in self.orders if o.demo]

    @field_validator("orders")
    @classmethod
    def _unique_orders(cls, v):
        ids = [o.order_id for o in v]
        if len(ids) != len(set(ids)):
            raise ValueError("order_id values must be unique")
        return v

    @field_validator("sinks")
    @classmethod
    def _some_sink(cls, v: SinkSettings) -> SinkSettings:
        if not (v.report_dir or v.report_topic):
            raise ValueError("no report sink: set sinks.report_dir or sinks.report_topic")
        return v

    @field_validator("new_material")
    @classmethod
    def _needs_embedding(cls, v: NewMaterialSettings, info) -> NewMaterialSettings:
        emb = info.data.get("embedding")
        if v.enabled and emb is not None and not emb.enabled:
            raise ValueError("the new-material classifier needs embedding.enabled: true (it scores the embedding)")
        return v


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping: PyYAML keeps the last one
    silently, so a second ``match:`` section would put the first one's values back to their defaults.
    Keys brought in by a ``<<:`` merge may still be overridden."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice in one mapping (line {key_node.start_mark.line + 1})")
                seen.add(key)
            except TypeError:  # an unhashable key: the SafeLoader says what is wrong with it
                pass
        return super().construct_mapping(node, deep)


def safe_load_unique(stream):
    """``yaml.safe_load`` that refuses duplicate keys (:class:`_UniqueKeyLoader`)."""
    return yaml.load(stream, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def _read_text(path: str | os.PathLike) -> str:
    """A local file, or a file on any Beam filesystem (``gs://...``)."""
    return fs.read_text(os.fspath(path))


def _read_yaml(path: str | os.PathLike) -> dict:
    try:
        data = safe_load_unique(_read_text(path)) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory: give the YAML file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text (YAML)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_settings(path: Optional[str] = None, overrides: Optional[dict[str, Any]] = None) -> Settings:
    """Defaults, then ``path``, then ``overrides`` (nested dict); validated. Raises ConfigError."""
    if path is not None and not os.fspath(path).strip():
        raise ConfigError("the config file path is empty: give --config a YAML file or leave it out")
    data = _read_yaml(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else {}
    if path:
        data = _merge(data, _read_yaml(path))
    if overrides:
        data = _merge(data, overrides)
    data.pop("profile", None)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        message = first["msg"].removeprefix("Value error, ")  # pydantic's prefix on a validator's own words
        raise ConfigError(f"invalid config at {where}: {message}") from None
