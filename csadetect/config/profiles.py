"""Runner profiles and the effective options of a pipeline run (issue 6): the plain config part.

A *profile* is a YAML file: ``csadetect/config/<name>.yaml`` (``direct``, ``dataflow``, ``flink``)
or any path given to ``--profile``. It holds

``pipeline_options``
    Beam pipeline option name -> value (``runner: DataflowRunner``, ``streaming: true``,
    ``experiments: [a, b]``, ``transform_name_mapping: {Old: New}``). ``${VAR}`` and
    ``${VAR:-default}`` expand from the environment; an option whose variable is unset (and has
    no default) is left unset, and ``required`` says whether that is an error. A ``$VAR`` or an
    unclosed ``${VAR`` is refused when the profile is loaded (it would be kept as literal text).
``required``
    option names that must be set once the profile and the command line are applied (for
    example ``[project, region, temp_location]``): given on the command line or through the
    profile's environment variables.
``settings``
    overrides merged over the configuration (``csadetect/config/default.yaml``, then ``--config``); the
    pipeline's own flags (``--report_dir``, ...) still win. ``${VAR}`` expands here too; a key
    whose variable is unset is dropped (the configured value stays).
``description``
    one line shown by the error that lists the profiles.

A profile is chosen with ``--profile NAME|PATH`` or, failing that, a ``profile:`` key in the
``--config`` file (a relative path there is relative to that file's folder). Options given on
the command line always win over the profile's. Without a profile nothing changes: the runner
stays pinned to the FnApiRunner (batch) or the DirectRunner (streaming).

This module knows no Beam: :mod:`csadetect.pipelines.options` applies a profile to the options Beam
knows, checks them and reads the runner, and hands this module the option names and values it
needs. :func:`effective_view` and :func:`format_effective` give the block both pipelines print to
stderr at start (the runner, every pipeline option that is set and the key config values), with
anything secret masked by :func:`mask`. :func:`check_demo_orders` keeps the default config's demo
detection order (``demo: true``) to local runs: a Dataflow or Flink run, or one under a profile
other than ``direct``, needs the operator's own orders.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping, Optional

import yaml

from csadetect.config.settings import CONFIG_DIR, ConfigError, Settings, _read_text, load_settings, safe_load_unique
from csadetect.core import fs

MASK = "****"
SENSITIVE_WORDS = ("key", "secret", "token", "password", "passwd", "credential")
PROFILE_KEYS = ("description", "pipeline_options", "required", "settings")
# Options a runner cannot start without, checked before the graph is built.
RUNNER_REQUIRED = {"dataflow": ("project", "region", "temp_location")}
# Runner families that run on this machine: the only ones allowed the demo detection order.
LOCAL_FAMILIES = ("direct", "prism")
# Runners whose job server adds options of its own (Flink: checkpointing_interval, ...).
PORTABLE_FAMILIES = ("flink", "spark", "portable")
# Key config values printed at start, per pipeline.
DETECT_KEYS = (
    "indicators.path", "indicators.public_key", "indicators.poll_seconds",
    "allow_list.path", "allow_list.public_key", "flood_guard.enabled", "flood_guard.release_dir",
    "grooming.enabled", "grooming.model", "embedding.enabled", "embedding.model",
    "new_material.enabled", "new_material.model", "new_material.review_threshold", "new_material.require_review",
    "sinks.report_dir", "sinks.report_topic", "sinks.review_dir", "sinks.review_topic",
    "sinks.dead_letter_dir", "sinks.dead_letter_topic", "sinks.formats",
    "review.verdict_subscription", "review.ttl_seconds",
    "reports.signing_key", "reports.evidence_key", "reports.centre_public_key", "reports.include_evidence",
    "stores.stats_dir", "retention.log_dir", "orders",
)
FEEDBACK_KEYS = (
    "feedback.subscription", "feedback.verdict_glob", "feedback.out_dir", "feedback.precision_floor",
    "feedback.min_verdicts", "feedback.notifications_dir", "feedback.notifications_topic",
    "feedback.notify_after_days", "sinks.report_dir", "retention.days",
)
# Settings that name storage the workers must reach: local paths only work on a local runner.
STORAGE_KEYS = (
    "indicators.path", "allow_list.path", "flood_guard.release_dir", "sinks.report_dir", "sinks.review_dir",
    "sinks.dead_letter_dir", "stores.stats_dir",
    "retention.log_dir", "feedback.out_dir", "feedback.notifications_dir",
)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SENSITIVE = re.compile("|".join(SENSITIVE_WORDS), re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<pw>[^@/\s]*)@")
_PAIR_SECRET = re.compile(
    r"(?P<name>[A-Za-z0-9_.-]*(?:" + "|".join(SENSITIVE_WORDS) + r")[A-Za-z0-9_.-]*)(?P<sep>=)(?P<value>[^,;&\s\"'}]+)",
    re.IGNORECASE,
)


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    path: str
    description: str = ""
    pipeline_options: dict = dataclasses.field(default_factory=dict)
    required: tuple = ()
    settings: dict = dataclasses.field(default_factory=dict)

    def placeholders(self, option: str) -> list[str]:
        """The environment variables the profile reads ``option`` from."""
        return [var for var, _ in _VAR.findall(json.dumps(self.pipeline_options.get(option)))]

    def expanded_settings(self, env=None) -> dict:
        """``settings`` with ``${VAR}`` expanded; keys whose variable is unset are dropped."""
        return _expand_tree(self.settings, os.environ if env is None else env)

    def check_option_names(self, known: Collection[str]) -> None:
        """Raise ConfigError for the first option the profile names (``pipeline_options``, then
        ``required``) that is not in ``known``, with the closest known name as a hint."""
        for name in list(self.pipeline_options) + list(self.required):
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"profile {self.name}: unknown pipeline option {name!r}{hint}")


# -- profiles -----------------------------------------------------------------------------------


def _read_profile_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = safe_load_unique(fh)  # a key given twice is an error, not the last one silently
    except FileNotFoundError:
        raise ConfigError(f"profile file not found: {path}") from None
    except OSError as exc:  # a directory, say
        raise ConfigError(f"cannot read profile {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"profile {path} is not UTF-8 text (YAML)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"profile {path} must hold a mapping at the top level")
    return data


# what is left of a value once its ${VAR} / ${VAR:-default} placeholders are taken out: a `${` (unclosed,
# or not a variable name) or a shell-style $VAR there would be kept as literal text, the variable never read
_BAD_VAR = re.compile(r"\$\{|\$[A-Za-z_][A-Za-z0-9_]*")


def _check_placeholders(name: str, where: str, value: Any) -> None:
    """Raise ConfigError for a malformed placeholder in the profile's ``where`` section (``$VAR``,
    ``${VAR``, ``${1}``): it would be passed on as literal text instead of the variable's value."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_placeholders(name, f"{where}.{key}", item)
    elif isinstance(value, list):
        for item in value:
            _check_placeholders(name, where, item)
    elif isinstance(value, str):
        bad = _BAD_VAR.search(_VAR.sub("", value))
        if bad:
            raise ConfigError(f"profile {name}: {where} has {bad.group(0)!r}, which is not read from the environment: "
                              "write ${VAR} or ${VAR:-default}")


def available_profiles(directory: Path = CONFIG_DIR) -> list[str]:
    """Names of the profiles shipped in ``config/`` (YAML files with a ``pipeline_options`` key)."""
    names = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and "pipeline_options" in data:
            names.append(path.stem)
    return names


def _looks_like_path(name: str) -> bool:
    return os.sep in name or "/" in name or name.endswith((".yaml", ".yml"))


def load_profile(name_or_path: str, directory: Path = CONFIG_DIR) -> Profile:
    """The profile called ``name_or_path`` in ``config/``, or the YAML file at that path.
    Raises ConfigError (one line) for an unknown profile or a malformed file."""
    name_or_path = (name_or_path or "").strip()
    if not name_or_path:
        raise ConfigError("--profile needs a profile name or the path of a YAML file")
    if _looks_like_path(name_or_path) or (os.path.isfile(name_or_path) and name_or_path not in available_profiles(directory)):
        path = Path(name_or_path)
        name = path.stem
    else:
        known = available_profiles(directory)
        if name_or_path not in known:
            raise ConfigError(f"unknown profile {name_or_path!r}: available profiles are {', '.join(known) or 'none'} "
                              f"(in {directory}), or give the path of a YAML file")
        path = Path(directory) / f"{name_or_path}.yaml"
        name = name_or_path
    data = _read_profile_yaml(path)
    unknown = sorted(set(data) - set(PROFILE_KEYS))
    if unknown:
        raise ConfigError(f"profile {name}: unknown key {unknown[0]!r} (allowed: {', '.join(PROFILE_KEYS)})")
    opts = data.get("pipeline_options") or {}
    if not isinstance(opts, dict):
        raise ConfigError(f"profile {name}: pipeline_options must be a mapping of Beam option name -> value")
    clean = {}
    for key, value in opts.items():
        if not isinstance(key, str) or not key.strip("-"):
            raise ConfigError(f"profile {name}: pipeline option names must be strings, got {key!r}")
        if key.lstrip("-") in clean:  # `runner` and `--runner`: one would silently lose
            raise ConfigError(f"profile {name}: pipeline option {key.lstrip('-')!r} given twice")
        clean[key.lstrip("-")] = value
    required = data.get("required") or []
    if isinstance(required, str):
        required = [required]
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ConfigError(f"profile {name}: required must be a list of pipeline option names")
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"profile {name}: settings must be a mapping (config keys, as in csadetect/config/default.yaml)")
    if "profile" in settings:
        raise ConfigError(f"profile {name}: settings may not name another profile")
    _check_placeholders(name, "pipeline_options", clean)
    _check_placeholders(name, "settings", settings)
    return Profile(name=name, path=str(path), description=str(data.get("description") or ""),
                   pipeline_options=clean, required=tuple(r.lstrip("-") for r in required), settings=settings)


def profile_settings(config: Optional[str], profile: Optional[Profile]) -> Settings:
    """Defaults, then ``config``, then the profile's ``settings`` (validated). A bad override in
    the profile is reported as the profile's."""
    overrides = profile.expanded_settings() if profile is not None else None
    try:
        return load_settings(config, overrides or None)
    except ConfigError as exc:
        if overrides:
            load_settings(config)  # the config alone fails the same way: report that
            raise ConfigError(f"profile {profile.name}: {exc}") from None
        raise


# -- the command line ---------------------------------------------------------------------------


def split_profile_arg(argv: Iterable[str]) -> tuple[Optional[str], list[str]]:
    """``(profile, argv without --profile)``; the last ``--profile`` wins."""
    argv = list(argv)
    name, out, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--profile":
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise ConfigError("--profile needs a profile name or the path of a YAML file")
            name, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--profile="):
            name = arg.split("=", 1)[1]
            if not name:
                raise ConfigError("--profile needs a profile name or the path of a YAML file")
        else:
            out.append(arg)
        i += 1
    return name, out


def arg_value(argv: list[str], name: str) -> Optional[str]:
    """The value of the last ``--name VALUE`` or ``--name=VALUE`` in ``argv`` (None: not given or empty)."""
    value = None
    for i, arg in enumerate(argv):
        if arg == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
    return value or None


def given_options(argv: Iterable[str]) -> list[str]:
    """The option names given in ``argv`` (``--name`` or ``--name=value``)."""
    return [arg[2:].split("=", 1)[0] for arg in argv if arg.startswith("--") and len(arg) > 2]


def _profile_from_config(config_path: Optional[str]) -> Optional[str]:
    """The ``profile:`` key of the ``--config`` file (a relative path is relative to that file's
    folder, whether or not it exists there: load_profile names the path it looked for). A config on
    a Beam filesystem (``gs://``) is read too; a profile it names must be shipped or an absolute path."""
    if not config_path:
        return None
    url = fs.is_url(config_path)
    if not url and not os.path.isfile(config_path):
        return None  # load_settings reports a missing config file later, with its own message
    try:
        data = safe_load_unique(_read_text(config_path))
    except Exception:  # noqa: BLE001 - unreadable or not YAML: load_settings says what is wrong with the file
        return None
    name = data.get("profile") if isinstance(data, dict) else None
    if not name:
        return None
    name = str(name)
    if _looks_like_path(name) and not os.path.isabs(name):
        if url:
            raise ConfigError(f"profile {name!r} in {config_path}: a profile file named by a config on a remote "
                              "filesystem must be an absolute local path (or give --profile)")
        return os.path.join(os.path.dirname(config_path), name)
    return name


def profile_name(argv: Iterable[str]) -> tuple[Optional[str], list[str]]:
    """``(profile, argv without --profile)``: the profile named by ``--profile``, or else by the
    ``profile:`` key of the ``--config`` file (None: no profile)."""
    name, rest = split_profile_arg(argv)
    return (name if name is not None else _profile_from_config(arg_value(rest, "config"))), rest


def expand(value: Any, env: Mapping[str, str]) -> tuple[Any, list[str]]:
    """``value`` with ``${VAR}`` / ``${VAR:-default}`` expanded; ``(None, [missing vars])`` when a
    variable without a default is unset or empty."""
    if isinstance(value, str):
        missing = []

        def sub(m):
            got = env.get(m.group(1))
            if got:
                return got
            if m.group(2) is not None:
                return m.group(2)
            missing.append(m.group(1))
            return ""

        out = _VAR.sub(sub, value)
        return (None, missing) if missing else (out, [])
    if isinstance(value, list):  # an item whose variable is unset is dropped from the list
        return [got for got, miss in (expand(item, env) for item in value) if not miss and got is not None], []
    if isinstance(value, dict):
        return _expand_tree(value, env), []
    return value, []


def _expand_tree(tree: dict, env: Mapping[str, str]) -> dict:
    out = {}
    for key, value in (tree or {}).items():
        if isinstance(value, dict):
            out[key] = _expand_tree(value, env)
            continue
        got, missing = expand(value, env)
        if not missing:
            out[key] = got
    return out


def option_text(value) -> str:
    """An option value as command-line text (lists and mappings as JSON, booleans lower case)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- runners ------------------------------------------------------------------------------------


# Beam 2.62 knows the FnApiRunner only by its full name: "FnApiRunner" is not among
# StandardOptions.KNOWN_RUNNER_NAMES, and Beam's create_runner refuses a short name it does not know.
FN_API_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"


def beam_runner_name(runner):
    """``runner`` as Beam resolves it: ``FnApiRunner`` (any case, or ``fnapi``) spelt in full
    (:data:`FN_API_RUNNER`); any other name or runner object as it is."""
    if isinstance(runner, str) and runner.lower() in ("fnapirunner", "fnapi"):
        return FN_API_RUNNER
    return runner


def runner_family(runner) -> str:
    """``dataflow``, ``flink``, ``direct``, ... for a runner name or class."""
    name = runner if isinstance(runner, str) else type(runner).__name__
    name = (name or "").split(".")[-1].lower()
    name = name[4:] if name.startswith("test") else name
    for family in ("dataflow", "flink", "spark", "prism", "portable"):
        if name.startswith(family):
            return family
    return "direct" if name in ("directrunner", "bundlebaseddirectrunner", "fnapirunner", "switchingdirectrunner") else name


def required_options(profile: Optional[Profile], family: str) -> list[str]:
    """The options that must be set: the profile's ``required`` and the runner family's own."""
    return list(dict.fromkeys(list(profile.required if profile else ()) + list(RUNNER_REQUIRED.get(family, ()))))


def missing_options_error(runner, profile: Optional[Profile], missing: list[str]) -> ConfigError:
    """The one-line error naming the required options that are not set, and where the profile
    would have read them from."""
    where = f"the {profile.name} profile" if profile else f"runner {runner}"
    hints = []
    for name in missing:
        env = profile.placeholders(name) if profile else []
        if env:
            hints.append(f"--{name} from ${' or $'.join(env)}")
    hint = f" (the profile takes {', '.join(hints)}: not set)" if hints else ""
    return ConfigError(f"{where} needs {', '.join('--' + n for n in missing)}: give "
                       f"{'it' if len(missing) == 1 else 'them'} on the command line "
                       f"(e.g. --{missing[0]}=...){hint}")


def check_demo_orders(settings: Settings, runner, profile: Optional[Profile] = None) -> None:
    """Refuse a run under the demo detection order (``demo: true`` in ``default.yaml``) unless it is
    local: a runner of the ``direct`` family (FnApiRunner, DirectRunner) with no profile or the
    ``direct`` one. Anything else scans real uploads, which the demo's stand-in order is no legal
    basis for. Raises ConfigError (one line)."""
    demo = settings.demo_orders()
    if not demo:
        return
    family = runner_family(runner)
    if family in LOCAL_FAMILIES and (profile is None or profile.name == "direct"):
        return
    where = f"the {profile.name} profile" if profile is not None and profile.name != "direct" else f"runner {runner}"
    ids = ", ".join(o.order_id for o in demo)
    raise ConfigError(f"{where} may not run under the demo detection order {ids} (demo: true, not a real order): "
                      "put your detection orders in a --config file (its `orders:` list replaces the demo's)")


def local_paths(settings: Settings, keys: Iterable[str] = STORAGE_KEYS) -> list[str]:
    """``key=value`` of the configured storage paths (``keys``) that are local paths, not URLs."""
    out = []
    for key in keys:
        value = setting(settings, key)
        if isinstance(value, str) and value and "://" not in value:
            out.append(f"{key}={value}")
    return out


# -- masking and the effective options ----------------------------------------------------------


def sensitive(name: str) -> bool:
    """Whether an option or config key names a secret (key, secret, token, password, credential)."""
    return bool(_SENSITIVE.search(name or ""))


def _mask_text(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    return _PAIR_SECRET.sub(lambda m: f"{m.group('name')}{m.group('sep')}{MASK}", text)


def mask(name: str, value):
    """``value`` fit to print: ``****`` when ``name`` names a secret (key, secret, token,
    password, credential; any case, anywhere in the name), else the value with passwords in URLs
    (``scheme://user:****@host``) and secret ``name=value`` pairs inside it masked. None stays None."""
    if value is None:
        return None
    if sensitive(name):
        return MASK
    if isinstance(value, str):
        return _mask_text(value)
    if isinstance(value, (list, tuple)):
        return [mask(name, item) for item in value]
    if isinstance(value, dict):
        return {k: mask(str(k), v) for k, v in value.items()}
    return value


def setting(settings: Settings, key: str):
    """The value of a dotted config key (``sinks.report_dir``); None when a part is unset."""
    value: Any = settings
    for part in key.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def _plain(value):
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def effective_view(runner: Optional[str], set_options: Mapping[str, Any], settings: Settings,
              keys: Iterable[str] = DETECT_KEYS, profile: Optional[Profile] = None) -> dict:
    """What a run uses, masked: ``{"runner", "profile", "pipeline_options", "config"}``.
    ``set_options``: every pipeline option that is set (not at its default), by name;
    ``config``: the values of ``keys`` (dotted config keys)."""
    pipeline_options = {name: mask(name, value) for name, value in sorted(set_options.items())
                        if value is not None and name != "runner"}
    config = {}
    for key in keys:
        if key == "orders":
            config[key] = [o.order_id for o in settings.active_orders()]
            continue
        config[key] = mask(key, _plain(setting(settings, key)))
    return {"runner": runner, "profile": (profile.name if profile else None),
            "pipeline_options": pipeline_options, "config": config}


def format_effective(effective: dict, prog: str = "csadetect") -> str:
    """The stderr block of :func:`effective_view`."""
    profile = effective.get("profile")
    lines = [f"{prog}: effective options ({'profile ' + profile if profile else 'no profile'})",
             f"  runner: {effective.get('runner')}", "  pipeline options:"]
    for name, value in effective.get("pipeline_options", {}).items():
        lines.append(f"    --{name}={option_text(value)}")
    lines.append("  config:")
    for key, value in effective.get("config", {}).items():
        lines.append(f"    {key}: {'null' if value is None else option_text(value)}")
    return "\n".join(lines) + "\n"
