"""Runner profiles and the effective options of a pipeline run (issue 6).

A *profile* is a YAML file: ``config/<name>.yaml`` (``direct``, ``dataflow``, ``flink``) or any path
given to ``--profile``. It holds

``pipeline_options``
    Beam pipeline option name -> value (``runner: DataflowRunner``, ``streaming: true``,
    ``experiments: [a, b]``, ``transform_name_mapping: {Old: New}``). ``${VAR}`` and
    ``${VAR:-default}`` expand from the environment; an option whose variable is unset (and has
    no default) is left unset, and ``required`` says whether that is an error.
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
``--config`` file. Options given on the command line always win over the profile's. Without a
profile nothing changes: the runner stays pinned to the FnApiRunner (batch) or the DirectRunner
(streaming).

:func:`effective_options` and :func:`format_effective` give the block both pipelines print to
stderr at start: the runner, every pipeline option that is set and the key config values, with
anything secret masked by :func:`mask`.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from csadetect.config.settings import CONFIG_DIR, ConfigError, Settings, load_settings

MASK = "****"
SENSITIVE_WORDS = ("key", "secret", "token", "password", "passwd", "credential")
PROFILE_KEYS = ("description", "pipeline_options", "required", "settings")
# Options a runner cannot start without, checked before the graph is built.
RUNNER_REQUIRED = {"dataflow": ("project", "region", "temp_location")}
PORTABLE_FAMILIES = ("flink", "spark", "portable")
# Key config values printed at start, per pipeline.
DETECT_KEYS = (
    "indicators.path", "indicators.public_key", "indicators.poll_seconds",
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
    "indicators.path", "sinks.report_dir", "sinks.review_dir", "sinks.dead_letter_dir", "stores.stats_dir",
    "retention.log_dir", "feedback.out_dir", "feedback.notifications_dir",
)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SENSITIVE = re.compile("|".join(SENSITIVE_WORDS), re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<pw>[^@/\s]*)@")
_PAIR_SECRET = re.compile(
    r"(?P<name>[A-Za-z0-9_.-]*(?:" + "|".join(SENSITIVE_WORDS) + r")[A-Za-z0-9_.-]*)(?P<sep>=)(?P<value>[^,;&\s\"'}]+)",
    re.IGNORECASE,
)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


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


# -- profiles -----------------------------------------------------------------------------------


def _read_profile_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"profile file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"profile {path} must hold a mapping at the top level")
    return data


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
    return Profile(name=name, path=str(path), description=str(data.get("description") or ""),
                   pipeline_options=clean, required=tuple(r.lstrip("-") for r in required), settings=settings)


# -- the command line ---------------------------------------------------------------------------


def _beam_parser():
    """Every pipeline option known in this process (as Beam parses them)."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    import csadetect.pipelines.detect  # noqa: F401  both pipelines' options: one profile serves both
    import csadetect.pipelines.feedback  # noqa: F401

    # "resolve": run as `python -m csadetect.pipelines.detect`, the module exists twice (``__main__`` and
    # ``csadetect.pipelines.detect``), so its options class does too, and both define the same options
    parser = _BeamArgumentParser(allow_abbrev=False, conflict_handler="resolve")
    seen = {}
    for cls in PipelineOptions.__subclasses__():
        seen.setdefault(cls.__qualname__ if cls.__module__ == "__main__" else str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    return parser


def _action(parser, name: str):
    return parser._option_string_actions.get("--" + name)  # pylint: disable=protected-access


def _unknown_option(parser, profile: Profile, name: str) -> ConfigError:
    known = [s[2:] for s in parser._option_string_actions if s.startswith("--")]  # pylint: disable=protected-access
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"profile {profile.name}: unknown pipeline option {name!r}{hint}")


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


def _config_arg(argv: list[str]) -> Optional[str]:
    path = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config="):
            path = arg.split("=", 1)[1]
    return path or None


def _profile_from_config(config_path: Optional[str]) -> Optional[str]:
    """The ``profile:`` key of the ``--config`` file (a path is relative to that file)."""
    if not config_path or not os.path.isfile(config_path):
        return None  # load_settings reports a missing config file later, with its own message
    try:
        with open(config_path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError):
        return None
    name = data.get("profile") if isinstance(data, dict) else None
    if not name:
        return None
    name = str(name)
    if _looks_like_path(name) and not os.path.isabs(name):
        beside = os.path.join(os.path.dirname(config_path), name)
        if os.path.exists(beside):
            return beside
    return name


def _dests(parser, argv: list[str]) -> set[str]:
    """Destinations of the options given in ``argv`` (``--no_use_public_ips`` sets ``use_public_ips``)."""
    dests = set()
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            name = arg[2:].split("=", 1)[0]
            action = _action(parser, name)
            dests.add(action.dest if action else name)
    return dests


def _expand(value: Any, env) -> tuple[Any, list[str]]:
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
        return [got for got, miss in (_expand(item, env) for item in value) if not miss and got is not None], []
    if isinstance(value, dict):
        return _expand_tree(value, env), []
    return value, []


def _expand_tree(tree: dict, env) -> dict:
    out = {}
    for key, value in (tree or {}).items():
        if isinstance(value, dict):
            out[key] = _expand_tree(value, env)
            continue
        got, missing = _expand(value, env)
        if not missing:
            out[key] = got
    return out


def _as_bool(profile: Profile, name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"profile {profile.name}: {name} is a flag, give true or false (got {value!r})")


def _flags(parser, profile: Profile, name: str, action, value) -> list[str]:
    """Command-line arguments that set option ``name`` (parsed by ``action``) to ``value``."""
    if action.nargs == 0:  # a flag: store_true / store_false / store_const
        on = _as_bool(profile, name, value)
        if on:
            return ["--" + name]
        # off: the option that stores the opposite value into the same dest, if there is one
        for other in parser._actions:  # pylint: disable=protected-access
            if other.dest == action.dest and other.nargs == 0 and other.const != action.const:
                longs = [s for s in other.option_strings if s.startswith("--")]
                if longs:
                    return [longs[0]]
        if not action.default or action.default == (not action.const):
            return []  # off is the default already
        raise ConfigError(f"profile {profile.name}: {name} cannot be switched off (leave it out of the profile)")
    if isinstance(value, dict):
        return [f"--{name}={json.dumps(value, sort_keys=True)}"]
    if isinstance(value, list):
        if action.nargs is None and type(action).__name__ not in ("_AppendAction", "_CommaSeparatedListAction",
                                                                   "_DictUnionAction"):
            raise ConfigError(f"profile {profile.name}: {name} takes one value, not a list")
        return [f"--{name}={_text(item)}" for item in value]
    if isinstance(value, bool):
        if value:
            return [f"--{name}=True"]
        return [] if not action.default else [f"--{name}=False"]
    return [f"--{name}={_text(value)}"]


def _loose_flags(name: str, value) -> list[str]:
    """Arguments for an option Beam's Python SDK does not define (a job server's own)."""
    if isinstance(value, bool):
        return ["--" + name] if value else []
    if isinstance(value, list):
        return [f"--{name}={_text(item)}" for item in value]
    return [f"--{name}={_text(value)}"]


def _runner_arg(argv: list[str]) -> Optional[str]:
    runner = None
    for i, arg in enumerate(argv):
        if arg == "--runner" and i + 1 < len(argv):
            runner = argv[i + 1]
        elif arg.startswith("--runner="):
            runner = arg.split("=", 1)[1]
    return runner


def _text(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def apply_profile(argv: Iterable[str], profile: Optional[Profile], env=None) -> list[str]:
    """``argv`` with the profile's pipeline options added in front of it, except those the command
    line already sets (the command line wins); ``--profile`` itself is removed. ``${VAR}``
    placeholders expand from ``env`` (default: the environment); an option whose variable is unset
    is left out. Raises ConfigError for an option name Beam does not know."""
    _, argv = split_profile_arg(argv)
    if profile is None:
        return argv
    env = os.environ if env is None else env
    parser = _beam_parser()
    given = _dests(parser, argv)
    runner, _ = _expand(_runner_arg(argv) or profile.pipeline_options.get("runner") or "", env)
    # a portable runner's job server adds its own options (Flink: checkpointing_interval, ...)
    loose = runner_family(runner or "") in PORTABLE_FAMILIES
    extra: list[str] = []
    for name, raw in profile.pipeline_options.items():
        action = _action(parser, name)
        if action is None and not loose:
            raise _unknown_option(parser, profile, name)
        if (action.dest if action else name) in given or raw is None:
            continue
        value, missing = _expand(raw, env)
        if missing or value is None:
            continue
        extra += _flags(parser, profile, name, action, value) if action else _loose_flags(name, value)
    for name in profile.required:
        if _action(parser, name) is None and not loose:
            raise _unknown_option(parser, profile, name)
    return extra + argv


def resolve_profile(argv: Optional[Iterable[str]]) -> tuple[list[str], Optional[Profile]]:
    """For a pipeline's ``run(argv)``: the profile named by ``--profile`` (or by the ``profile:``
    key of the ``--config`` file) applied to ``argv``. Without one, ``argv`` is returned unchanged
    and the profile is None."""
    argv = list(sys.argv[1:] if argv is None else argv)
    name, rest = split_profile_arg(argv)
    if name is None:
        name = _profile_from_config(_config_arg(rest))
    if name is None:
        return rest, None
    profile = load_profile(name)
    return apply_profile(rest, profile), profile


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


def runner_family(runner) -> str:
    """``dataflow``, ``flink``, ``direct``, ... for a runner name or class."""
    name = runner if isinstance(runner, str) else type(runner).__name__
    name = (name or "").split(".")[-1].lower()
    name = name[4:] if name.startswith("test") else name
    for family in ("dataflow", "flink", "spark", "prism", "portable"):
        if name.startswith(family):
            return family
    return "direct" if name in ("directrunner", "bundlebaseddirectrunner", "fnapirunner", "switchingdirectrunner") else name


def check_options(options, profile: Optional[Profile] = None) -> None:
    """Validate the pipeline options before the graph is built: the profile's ``required``
    options and the runner's own (Dataflow: project, region, temp_location on Cloud Storage) are
    set, and a ``--setup_file`` exists. Raises ConfigError naming what is missing."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, SetupOptions, StandardOptions

    runner = options.view_as(StandardOptions).runner
    family = runner_family(runner)
    values = options.get_all_options(drop_default=True, retain_unknown_options=True)  # set, not defaulted
    parser = _beam_parser()
    needed = list(profile.required if profile else ()) + list(RUNNER_REQUIRED.get(family, ()))
    missing = []
    for name in dict.fromkeys(needed):
        action = _action(parser, name)
        if values.get(action.dest if action else name) in (None, "", []):
            missing.append(name)
    if missing:
        where = f"the {profile.name} profile" if profile else f"runner {runner}"
        hints = []
        for name in missing:
            env = profile.placeholders(name) if profile else []
            if env:
                hints.append(f"--{name} from ${' or $'.join(env)}")
        hint = f" (the profile takes {', '.join(hints)}: not set)" if hints else ""
        raise ConfigError(f"{where} needs {', '.join('--' + n for n in missing)}: give "
                          f"{'it' if len(missing) == 1 else 'them'} on the command line "
                          f"(e.g. --{missing[0]}=...){hint}")
    if family == "dataflow":
        gcp = options.view_as(GoogleCloudOptions)
        for name in ("temp_location", "staging_location"):
            value = getattr(gcp, name)
            if value and not str(value).startswith("gs://"):
                raise ConfigError(f"runner {runner} needs --{name} on Cloud Storage (gs://BUCKET/...), got {value!r}")
    setup_file = options.view_as(SetupOptions).setup_file
    if setup_file and not os.path.isfile(setup_file):
        raise ConfigError(f"--setup_file {setup_file} not found (run from the repository root, or give its path)")


def local_storage(options, settings: Settings, keys: Iterable[str] = STORAGE_KEYS) -> list[str]:
    """``key=value`` of the configured storage paths that are local although the runner's workers
    are remote (Dataflow): each worker would read or write its own disk."""
    from apache_beam.options.pipeline_options import StandardOptions

    if runner_family(options.view_as(StandardOptions).runner) != "dataflow":
        return []
    out = []
    for key in keys:
        value = _setting(settings, key)
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


def _setting(settings: Settings, key: str):
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


def effective_options(options, settings: Settings, keys: Iterable[str] = DETECT_KEYS,
                      profile: Optional[Profile] = None) -> dict:
    """What a run uses, masked: ``{"runner", "profile", "pipeline_options", "config"}``.
    ``pipeline_options``: every option that is set (not at its default), by name;
    ``config``: the values of ``keys`` (dotted config keys)."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    runner = runner if isinstance(runner, str) or runner is None else type(runner).__name__
    set_options = options.get_all_options(drop_default=True, retain_unknown_options=True)
    pipeline_options = {name: mask(name, value) for name, value in sorted(set_options.items())
                        if value is not None and name != "runner"}
    config = {}
    for key in keys:
        if key == "orders":
            active = settings.active_orders()
            config[key] = [o.order_id for o in active]
            continue
        config[key] = mask(key, _plain(_setting(settings, key)))
    return {"runner": runner, "profile": (profile.name if profile else None),
            "pipeline_options": pipeline_options, "config": config}


def format_effective(effective: dict, prog: str = "csadetect") -> str:
    """The stderr block of :func:`effective_options`."""
    profile = effective.get("profile")
    lines = [f"{prog}: effective options ({'profile ' + profile if profile else 'no profile'})",
             f"  runner: {effective.get('runner')}", "  pipeline options:"]
    for name, value in effective.get("pipeline_options", {}).items():
        lines.append(f"    --{name}={_text(value)}")
    lines.append("  config:")
    for key, value in effective.get("config", {}).items():
        lines.append(f"    {key}: {'null' if value is None else _text(value)}")
    return "\n".join(lines) + "\n"


def print_effective(options, settings: Settings, keys: Iterable[str] = DETECT_KEYS,
                    profile: Optional[Profile] = None, prog: str = "csadetect", stream=None) -> dict:
    """Write the effective options to stderr as one block; returns them."""
    effective = effective_options(options, settings, keys, profile)
    stream = stream or sys.stderr
    stream.write(format_effective(effective, prog))
    stream.flush()
    return effective


def add_profile_argument(parser) -> None:
    """``--profile`` for a pipeline's ``--help`` (the option itself is read by :func:`resolve_profile`)."""
    known = ", ".join(available_profiles()) or "none"
    parser.add_argument("--profile", default=None, metavar="NAME|PATH",
                        help=f"runner profile: one of {known} (config/NAME.yaml) or a YAML file; "
                             "command-line options win over the profile's")


def help_options(options_cls):
    """An options class for ``pipeline_main``'s ``--help``: ``options_cls``'s options plus ``--profile``."""

    class _WithProfile:
        @classmethod
        def _add_argparse_args(cls, parser):
            options_cls._add_argparse_args(parser)  # pylint: disable=protected-access
            add_profile_argument(parser)

    return _WithProfile
