"""The pipelines' Beam options: :class:`DetectOptions` (``csadetect run``), :class:`FeedbackOptions`
(``csadetect feedback``), and runner profiles applied to them (``--profile``).

Both options classes live here, so one profile serves both pipelines and nothing here imports a
pipeline. They share ``--config``, ``--public_key``, ``--verdict_subscription`` and
``--window_seconds`` (same dest, type and default); Beam parses every ``PipelineOptions`` class of
the process with one parser, so whichever class comes first defines a shared option.

The profile files, their validation and the effective-options block are plain config work in
:mod:`csadetect.config.profiles`; this module adds what needs Beam: the options Beam knows
(:func:`known_options`), a profile turned into command-line arguments (:func:`apply_profile`),
the checks before a graph is built (:func:`check_options`), the command line's flags checked
against them (:func:`check_flags`: a misspelt flag stops the run with one line and the nearest
name; ``--public-key`` and ``--public_key`` both work), their values (:func:`check_values`: a
value argparse refuses; :func:`check_values_of`: seconds, Pub/Sub paths, streaming-only options in
a batch run) and the block printed at start (:func:`print_effective`). :func:`launch` runs these
checks, and refuses the demo detection order anywhere but on this machine
(:func:`csadetect.config.profiles.check_demo_orders`).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import os
import shutil
import sys
from typing import Callable, Iterable, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, SetupOptions, StandardOptions

from csadetect.config.flags import normalise, suggest
from csadetect.config.profiles import (
    DETECT_KEYS, PORTABLE_FAMILIES, STORAGE_KEYS, Profile, arg_value, available_profiles, beam_runner_name,
    check_demo_orders, effective_view, expand, format_effective, given_options, load_profile, local_paths,
    missing_options_error, option_text, profile_name, profile_settings, required_options, runner_family,
    split_profile_arg,
)
from csadetect.config.settings import ConfigError, Settings
from csadetect.core import fs, runs
from csadetect.pipelines.progress import run_and_watch
from csadetect.pipelines.sources import add_input_args, check_pubsub_path

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


RUN_ID_HELP = ("this run's id, a safe id (default: a new one); its directory under each output directory must "
               "hold no records yet")


def _shared(parser, *args, **kwargs) -> None:
    """An option both pipelines define: the second definition finds the first already there."""
    try:
        parser.add_argument(*args, **kwargs)
    except argparse.ArgumentError:  # the other options class defined it (same dest, type, default)
        pass


class DetectOptions(PipelineOptions):
    """The detection pipeline's options (:mod:`csadetect.pipelines.detect`)."""

    command = "csadetect run"  # what errors about its flags call it
    scans = True  # it scans uploads: only under a real detection order (check_demo_orders)

    @classmethod
    def _add_argparse_args(cls, parser):
        _shared(parser, "--config", default=None, help="YAML config merged over csadetect/config/default.yaml")
        add_input_args(parser)  # --input_*, --read_via, --kafka_*, --expansion_service (csadetect/pipelines/sources.py)
        parser.add_argument("--indicators", default=None, help="indicator snapshot dir (overrides config)")
        _shared(parser, "--public_key", default=None, help="Ed25519 public key of the snapshots (overrides config)")
        parser.add_argument("--report_dir", default=None, help="report files directory (overrides config)")
        parser.add_argument("--report_topic", default=None, help="projects/P/topics/T for reports")
        parser.add_argument("--review_topic", default=None, help="projects/P/topics/T for hits awaiting review")
        parser.add_argument("--review_dir", default=None, help="directory for hits awaiting review")
        parser.add_argument("--dead_letter_dir", default=None, help="dead-letter files directory")
        parser.add_argument("--dead_letter_topic", default=None, help="projects/P/topics/T for dead letters")
        parser.add_argument("--poll_seconds", type=float, default=None, help="indicator snapshot poll interval")
        _shared(parser, "--verdict_subscription", default=None,
                help="projects/P/subscriptions/S of reviewer verdicts (overrides review.verdict_subscription)")
        parser.add_argument("--signing_key", default=None, help="provider Ed25519 private key (overrides reports.signing_key)")
        parser.add_argument("--evidence_key", default=None, help="provider X25519 evidence key (overrides reports.evidence_key)")
        parser.add_argument("--centre_public_key", default=None, help="EU Centre X25519 public key (overrides config)")
        parser.add_argument("--stats_dir", default=None, help="id-free stats for the transparency report (overrides config)")
        _shared(parser, "--run_id", default=None, help=RUN_ID_HELP)
        _shared(parser, "--window_seconds", type=int, default=60, help="file window in streaming mode")


class FeedbackOptions(PipelineOptions):
    """The feedback pipeline's options (:mod:`csadetect.pipelines.feedback`)."""

    command = "csadetect feedback"
    scans = False  # it reads reports and verdicts, no uploads

    @classmethod
    def _add_argparse_args(cls, parser):
        _shared(parser, "--config", default=None, help="YAML config merged over csadetect/config/default.yaml")
        parser.add_argument("--report_glob", default=None,
                            help="JSON Lines report files (default: <sinks.report_dir>/**.jsonl, every run)")
        parser.add_argument("--report_subscription", default=None,
                            help="projects/P/subscriptions/S of reports (one JSON report per message; streaming)")
        parser.add_argument("--verdict_glob", default=None,
                            help="JSON Lines files of EU Centre verdicts (default: feedback.verdict_glob)")
        _shared(parser, "--verdict_subscription", default=None,
                help="projects/P/subscriptions/S of EU Centre verdicts (default: feedback.subscription; streaming)")
        parser.add_argument("--out_dir", default=None, help="precision, alerts and examples (default: feedback.out_dir)")
        parser.add_argument("--notifications_dir", default=None,
                            help="notification files (default: feedback.notifications_dir)")
        parser.add_argument("--notifications_topic", default=None, help="projects/P/topics/T for notifications")
        parser.add_argument("--precision_floor", type=float, default=None,
                            help="alert below this precision (default: config)")
        parser.add_argument("--min_verdicts", type=int, default=None,
                            help="verdicts needed before an alert (default: config)")
        parser.add_argument("--now", default=None,
                            help="RFC 3339 time used as 'now' (batch tests); default: the real time")
        _shared(parser, "--public_key", default=None,
                help="provider Ed25519 public key: reports whose signature does not verify are dropped")
        _shared(parser, "--window_seconds", type=int, default=60, help="file window in streaming mode")
        _shared(parser, "--run_id", default=None, help=RUN_ID_HELP)
        parser.add_argument("--precision_every_seconds", type=float, default=0.0,
                            help="streaming: re-emit precision at most this often (0 = on every verdict)")
        parser.add_argument("--unknown_grace_seconds", type=float, default=600.0,
                            help="streaming: how long a verdict waits for its report before it counts as unknown")


# -- the options Beam knows ---------------------------------------------------------------------


def known_options() -> dict[str, argparse.Action]:
    """Every pipeline option known in this process, by name, as Beam parses them: the parser
    ``PipelineOptions.get_all_options`` builds from every options class, taken from its public
    ``add_extra_args_fn`` hook."""
    parsers = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=parsers.append)
    return {s[2:]: action for action in parsers[0]._actions  # pylint: disable=protected-access
            for s in action.option_strings if s.startswith("--")}


PIPELINES = (DetectOptions, FeedbackOptions)


def own_options(options_cls) -> set[str]:
    """The option names ``options_cls`` itself defines (without Beam's)."""
    parser = argparse.ArgumentParser(add_help=False)
    options_cls._add_argparse_args(parser)  # pylint: disable=protected-access
    return {s[2:] for action in parser._actions for s in action.option_strings  # pylint: disable=protected-access
            if s.startswith("--")}


def check_flags(argv: Iterable[str], options_cls, runner: Optional[str] = None,
                actions: Optional[dict] = None) -> None:
    """Refuse a flag in ``argv`` (the command line, before a profile's options are added) that no
    options class of this process defines, or that only the other csadetect pipeline defines,
    with the nearest known name: ``unknown option --report_dirr for csadetect run (did you mean
    --report_dir?)``. Beam's own options (``--runner``, ``--project``, ``--streaming``, Dataflow's
    and Flink's) pass. On a portable runner (Flink, Spark) a flag Beam's Python SDK does not know
    goes on to the job server, which has options of its own (``--checkpointing_interval``): it is
    logged, not refused. Raises ConfigError (one line)."""
    actions = known_options() if actions is None else actions
    command = getattr(options_cls, "command", "the pipeline")
    own = own_options(options_cls)
    theirs = {other: own_options(other) - own for other in PIPELINES if other is not options_cls}
    elsewhere = set().union(*theirs.values()) if theirs else set()
    candidates = (set(actions) - elsewhere) | {"profile"}
    portable = runner_family(runner or "") in PORTABLE_FAMILIES
    for name in dict.fromkeys(given_options(argv)):
        if (name in actions and name not in elsewhere) or name == "profile":
            continue
        if name in elsewhere:
            owner = next(getattr(o, "command", o.__name__) for o, names in theirs.items() if name in names)
            raise ConfigError(f"--{name} is not an option of {command} (it is one of {owner}); "
                              f"see {command} --help")
        if portable:
            logging.getLogger(__name__).warning("--%s is not a Beam Python option: passed on to the %s job server",
                                                name, runner)
            continue
        raise ConfigError(f"unknown option --{name} for {command}{suggest(name, candidates)}; "
                          f"see {command} --help (Beam's pipeline options are accepted too)")


def check_values(argv: Iterable[str], options_cls) -> None:
    """Parse ``argv`` as Beam will, but a value argparse refuses (``--window_seconds abc``, a
    choice not offered) is one line, ``csadetect run: argument --window_seconds: invalid int
    value: 'abc'; see csadetect run --help``, not Beam's usage block and its own exit.
    Raises ConfigError."""
    command = getattr(options_cls, "command", "the pipeline")

    def refuse(message):
        raise ConfigError(f"{command}: {str(message).splitlines()[0]}; see {command} --help")

    def hook(parser):
        parser.error = refuse

    PipelineOptions(list(argv)).get_all_options(add_extra_args_fn=hook, retain_unknown_options=True)


# seconds: finite, and more than 0 (POSITIVE_SECONDS) or 0 or more (NON_NEGATIVE_SECONDS)
POSITIVE_SECONDS = ("window_seconds", "poll_seconds", "unknown_grace_seconds")
NON_NEGATIVE_SECONDS = ("precision_every_seconds", "progress_seconds")  # 0: on every update / no progress lines
STREAMING_ONLY = ("window_seconds", "precision_every_seconds", "unknown_grace_seconds")  # batch runs ignore them
SUBSCRIPTION_OPTIONS = ("verdict_subscription", "report_subscription")  # --input_subscription: sources.Source
TOPIC_OPTIONS = ("report_topic", "review_topic", "dead_letter_topic", "notifications_topic")


def check_values_of(options: PipelineOptions, given: Iterable[str] = (),
                    actions: Optional[dict[str, argparse.Action]] = None) -> None:
    """The pipelines' own option values, before anything loads: seconds that are negative, zero
    where zero means nothing, or not finite (``--window_seconds 0``, ``--poll_seconds -1``,
    ``--unknown_grace_seconds nan``); a Pub/Sub path Beam would refuse only while the graph is
    built (``--report_topic reports``); and an option that only a streaming run reads, given on
    the command line (``given``: its argv, before the profile) without ``--streaming``, which
    the run would ignore without a word. An empty path (``--report_topic=``) switches an output
    off and passes. Raises ConfigError (one line, naming the option)."""
    values = options.get_all_options(retain_unknown_options=True)
    for name in POSITIVE_SECONDS + NON_NEGATIVE_SECONDS:
        value = values.get(name)
        if value is None:
            continue
        floor_ok = value > 0 if name in POSITIVE_SECONDS else value >= 0
        if not (math.isfinite(value) and floor_ok):
            rule = "more than 0" if name in POSITIVE_SECONDS else "0 or more"
            raise ConfigError(f"--{name} must be {rule} seconds, not {value!r}")
    for names, kind in ((SUBSCRIPTION_OPTIONS, "subscriptions"), (TOPIC_OPTIONS, "topics")):
        for name in names:
            if values.get(name):
                check_pubsub_path(f"--{name}", str(values[name]), kind)
    if not options.view_as(StandardOptions).streaming:
        actions = actions if actions is not None else known_options()
        named = {_dest(actions, n) for n in given_options(given)}
        ignored = [f"--{n}" for n in STREAMING_ONLY if n in named]
        if ignored:
            raise ConfigError(f"{', '.join(ignored)} only apply with --streaming (a batch run would ignore "
                              f"{'them' if len(ignored) > 1 else 'it'})")


def _dest(actions: dict, name: str) -> str:
    """The dest of option ``name`` (``--no_use_public_ips`` sets ``use_public_ips``)."""
    return actions[name].dest if name in actions else name


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


def _flags(actions: dict, profile: Profile, name: str, value) -> list[str]:
    """Command-line arguments that set option ``name`` to ``value``."""
    action = actions[name]
    if action.nargs == 0:  # a flag: store_true / store_false / store_const
        if _as_bool(profile, name, value):
            return ["--" + name]
        # off: the option that stores the opposite value into the same dest, if there is one
        for other, opposite in actions.items():
            if opposite.dest == action.dest and opposite.nargs == 0 and opposite.const != action.const:
                return ["--" + other]
        if not action.default or action.default == (not action.const):
            return []  # off is the default already
        raise ConfigError(f"profile {profile.name}: {name} cannot be switched off (leave it out of the profile)")
    if isinstance(value, dict):
        return [f"--{name}={option_text(value)}"]
    if isinstance(value, list):
        if action.nargs is None and type(action).__name__ not in ("_AppendAction", "_CommaSeparatedListAction",
                                                                   "_DictUnionAction"):
            raise ConfigError(f"profile {profile.name}: {name} takes one value, not a list")
        return [f"--{name}={option_text(item)}" for item in value]
    if isinstance(value, bool):
        if value:
            return [f"--{name}=True"]
        return [] if not action.default else [f"--{name}=False"]
    return [f"--{name}={option_text(value)}"]


def _loose_flags(name: str, value) -> list[str]:
    """Arguments for an option Beam's Python SDK does not define (a job server's own)."""
    if isinstance(value, bool):
        return ["--" + name] if value else []
    if isinstance(value, list):
        return [f"--{name}={option_text(item)}" for item in value]
    return [f"--{name}={option_text(value)}"]


# -- profiles -----------------------------------------------------------------------------------


def apply_profile(argv: Iterable[str], profile: Optional[Profile], env=None) -> list[str]:
    """``argv`` with the profile's pipeline options added in front of it, except those the command
    line already sets (the command line wins); ``--profile`` itself is removed. ``${VAR}``
    placeholders expand from ``env`` (default: the environment); an option whose variable is unset
    is left out. Raises ConfigError for an option name Beam does not know."""
    _, argv = split_profile_arg(argv)
    if profile is None:
        return argv
    env = os.environ if env is None else env
    actions = known_options()
    given = {_dest(actions, name) for name in given_options(argv)}
    runner, _ = expand(arg_value(argv, "runner") or profile.pipeline_options.get("runner") or "", env)
    # a portable runner's job server adds its own options (Flink: checkpointing_interval, ...)
    if runner_family(runner or "") not in PORTABLE_FAMILIES:
        profile.check_option_names(actions)
    extra: list[str] = []
    for name, raw in profile.pipeline_options.items():
        if _dest(actions, name) in given or raw is None:
            continue
        value, missing = expand(raw, env)
        if missing or value is None:
            continue
        extra += _flags(actions, profile, name, value) if name in actions else _loose_flags(name, value)
    return extra + argv


def resolve_profile(argv: Optional[Iterable[str]]) -> tuple[list[str], Optional[Profile]]:
    """For a pipeline's ``run(argv)``: the profile named by ``--profile`` (or by the ``profile:``
    key of the ``--config`` file) applied to ``argv``. Without one, ``argv`` is returned unchanged
    and the profile is None."""
    name, rest = profile_name(sys.argv[1:] if argv is None else argv)
    if name is None:
        return rest, None
    profile = load_profile(name)
    return apply_profile(rest, profile), profile


def check_options(options: PipelineOptions, profile: Optional[Profile] = None) -> None:
    """Validate the pipeline options before the graph is built: the profile's ``required``
    options and the runner's own (Dataflow: project, region, temp_location on Cloud Storage) are
    set, and a ``--setup_file`` exists. Raises ConfigError naming what is missing."""
    runner = options.view_as(StandardOptions).runner
    family = runner_family(runner)
    values = options.get_all_options(drop_default=True, retain_unknown_options=True)  # set, not defaulted
    actions = known_options()
    missing = [name for name in required_options(profile, family)
               if values.get(_dest(actions, name)) in (None, "", [])]
    if missing:
        raise missing_options_error(runner, profile, missing)
    if options.view_as(StandardOptions).streaming and isinstance(runner, str) and \
            runner.split(".")[-1].lower() == "fnapirunner":
        raise ConfigError("--streaming runs on the DirectRunner on this machine: the FnApiRunner runs batch "
                          "pipelines only (drop --runner FnApiRunner)")
    if family == "dataflow":
        gcp = options.view_as(GoogleCloudOptions)
        for name in ("temp_location", "staging_location"):
            value = getattr(gcp, name)
            if value and not str(value).startswith("gs://"):
                raise ConfigError(f"runner {runner} needs --{name} on Cloud Storage (gs://BUCKET/...), got {value!r}")
    setup_file = options.view_as(SetupOptions).setup_file
    if setup_file and not os.path.isfile(setup_file):
        raise ConfigError(f"--setup_file {setup_file} not found (run from the repository root, or give its path)")


def local_storage(options: PipelineOptions, settings: Settings, keys: Iterable[str] = STORAGE_KEYS) -> list[str]:
    """``key=value`` of the configured storage paths that are local although the runner's workers
    are remote (Dataflow): each worker would read or write its own disk."""
    if runner_family(options.view_as(StandardOptions).runner) != "dataflow":
        return []
    return local_paths(settings, keys)


# -- the effective options ----------------------------------------------------------------------


def effective_options(options: PipelineOptions, settings: Settings, keys: Iterable[str] = DETECT_KEYS,
                      profile: Optional[Profile] = None) -> dict:
    """What a run uses, masked (:func:`csadetect.config.profiles.effective_view`): the runner,
    every pipeline option that is set (not at its default) and the values of ``keys``."""
    runner = options.view_as(StandardOptions).runner
    runner = runner if isinstance(runner, str) or runner is None else type(runner).__name__
    set_options = options.get_all_options(drop_default=True, retain_unknown_options=True)
    return effective_view(runner, set_options, settings, keys, profile)


def print_effective(options: PipelineOptions, settings: Settings, keys: Iterable[str] = DETECT_KEYS,
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


@dataclasses.dataclass
class Launch:
    """What a pipeline's ``run`` starts from: Beam's options, the pipeline's own view of them, the
    standard options (runner pinned), the runner profile and the validated settings."""

    options: PipelineOptions
    opts: PipelineOptions
    std: StandardOptions
    profile: Optional[Profile]
    settings: Settings


def launch(argv, options_cls, effective_settings: Callable, save_main_session: bool = False,
           quiet: Iterable[str] = ("apache_beam.io.fileio", "apache_beam.runners.worker.statecache")) -> Launch:
    """The common start of both pipelines' ``run``: logging to stderr, flags spelt as Beam knows
    them and unknown ones refused (:func:`check_flags`), the runner profile applied
    (``--profile NAME|PATH``; the command line wins), the runner pinned (FnApiRunner for batch,
    DirectRunner for streaming: never Beam's Prism download; ``FnApiRunner`` handed to Beam by its
    full name, :func:`~csadetect.config.profiles.beam_runner_name`), the runner's required options checked
    before any graph, the configuration with the command line's overrides
    (``effective_settings(settings, opts)``), and, for the detection pipeline, no demo detection
    order off this machine."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in quiet:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    actions = known_options()
    argv = normalise(sys.argv[1:] if argv is None else argv, actions)  # --public-key -> --public_key
    _, given = split_profile_arg(argv)
    argv, profile = resolve_profile(argv)
    check_flags(given, options_cls, arg_value(argv, "runner"), actions)  # a misspelt flag stops here
    check_values(argv, options_cls)  # a value argparse refuses: one line, not Beam's usage block
    options = PipelineOptions(argv)
    opts = options.view_as(options_cls)
    setup = options.view_as(SetupOptions)
    setup.save_main_session = save_main_session
    if setup.pickle_library in (None, "default"):
        # cloudpickle, as Beam's own default is from 2.65 on: it pickles what a lambda of a module
        # run as __main__ (python -m csadetect.pipelines.detect) refers to, so a worker in another
        # process (Flink, Dataflow) can run it; Beam 2.62's default (dill) does not
        setup.pickle_library = "cloudpickle"
    std = options.view_as(StandardOptions)
    std.runner = beam_runner_name(std.runner or ("DirectRunner" if std.streaming else "FnApiRunner"))
    check_options(options, profile)  # e.g. Dataflow's project, region, temp_location
    check_values_of(options, given, actions)  # seconds, Pub/Sub paths, streaming-only options in a batch run
    settings = effective_settings(profile_settings(opts.config, profile), opts)
    if getattr(options_cls, "scans", False):
        check_demo_orders(settings, std.runner, profile)  # real scanning needs the operator's own orders
    return Launch(options, opts, std, profile, settings)


def start_run(command: str, bases: Iterable[Optional[str]], run_id: Optional[str], runner: Optional[str]) -> str:
    """The run id of a pipeline about to start (``--run_id``, or a new one), printed on stderr as
    ``<command>: run id <ID>``; a given id whose directory under any of ``bases`` already holds
    records is refused with one line (:func:`csadetect.core.runs.start_run`), and so is a local
    directory among ``bases`` that is a file (or lies under one): the run would fail only when it
    writes its first record, at the end of a batch run. On Dataflow a new id
    is not checked against the bucket from here: it is new by construction."""
    for base in bases:
        blocked = fs.blocking_file(base)
        if blocked:
            what = "is a file" if blocked == os.path.abspath(base) else f"lies under {blocked}, a file"
            raise ConfigError(f"output directory {base} {what}, not a directory")
    run_id = _run_id(bases, run_id, bool(run_id) or runner_family(runner or "") != "dataflow")
    print(f"{command}: run id {run_id}", file=sys.stderr, flush=True)
    return run_id


def graph_run_id(run_id: Optional[str]) -> str:
    """The run a graph is built under (``build_pipeline`` of either pipeline): ``run_id`` checked as a
    safe id, or a new one; :func:`start_run` has checked its directories when ``run`` builds it."""
    return _run_id((), run_id, False)


def _run_id(bases: Iterable[Optional[str]], run_id: Optional[str], check: bool) -> str:
    try:
        return runs.start_run(bases, run_id, check)
    except runs.RunError as exc:  # one line, as every refusal before the graph
        raise ConfigError(str(exc)) from None


@contextlib.contextmanager
def new_pipeline(options: PipelineOptions):
    """A Beam pipeline for a ``run()``, whose local temp folder (``beam-pipeline-temp*``, made when
    the pipeline is made) is removed however the block ends. Beam removes it only at the end of
    ``Pipeline.run``, so a graph that fails to build or a check that refuses before the run left
    one behind per call."""
    pipeline = beam.Pipeline(options=options)
    try:
        yield pipeline
    finally:
        shutil.rmtree(pipeline.local_tempdir, ignore_errors=True)


def run_and_wait(pipeline, std: StandardOptions):
    """Run the pipeline and wait for it, unless ``--no_wait_until_finish`` (a Flex Template
    launcher must not wait): the Pub/Sub resources of the graph checked first, a line of counters
    every ``--progress_seconds`` while it runs, and Ctrl-C / SIGTERM cancelling it cleanly
    (:func:`csadetect.pipelines.progress.run_and_watch`)."""
    return run_and_watch(pipeline, std, wait=not getattr(std, "no_wait_until_finish", False))
