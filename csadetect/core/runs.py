"""Runs: every pipeline run writes under its own run id, so nothing one run writes is overwritten,
mixed with or mistaken for another run's (docs/data.md, "Runs").

A *run id* is a safe id (:mod:`csadetect.core.ids`) made of the start time and a random part,
``20261202T233000Z-3fa1c2`` (:func:`new_run_id`), or one the operator gives (``--run_id``). It is
one directory level under each configured store: ``<report_dir>/<RUN_ID>/``,
``<dead_letter_dir>/<RUN_ID>/``, ``<stats_dir>/<RUN_ID>/``, ``<review_dir>/<RUN_ID>/``
(:func:`run_dir`, on any Beam filesystem through :mod:`csadetect.core.fs`); the feedback pipeline's
runs likewise under ``<feedback.out_dir>/`` and ``<feedback.notifications_dir>/``. A run never
writes into a run directory that already holds records (:func:`start_run`, :func:`check_fresh`).

Readers take every run (the store's top level, which holds what earlier layouts and jobs outside a
run wrote, plus every run directory: :func:`pattern`) or one chosen run (:func:`choose`, whose
one-line error names the runs there are). :func:`remove_temp_dirs` removes the empty temporary
folders Beam's file writes leave behind.
"""
from __future__ import annotations

import os
import secrets
from datetime import datetime
from typing import Iterable, Optional

from csadetect.core import fs
from csadetect.core.ids import SAFE_ID_RULE, is_safe_id
from csadetect.core.timeutil import as_utc, utc_now

TEMP_PREFIXES = (".temp",)  # Beam fileio's ".temp<uuid>" and the sinks' ".temp-beam-<uuid>"


class RunError(ValueError):
    """A bad, unknown or already used run id; the message is one line."""


def new_run_id(now: Optional[datetime] = None) -> str:
    """A fresh run id: the UTC start time and 6 random hex digits, ``20261202T233000Z-3fa1c2``."""
    return f"{as_utc(now or utc_now()):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def check_run_id(value, what: str = "run id") -> str:
    """``value`` when it is a safe id; else :class:`RunError` (one line, the value not quoted)."""
    if not is_safe_id(value):
        raise RunError(f"{what} must be {SAFE_ID_RULE}")
    return value


def run_dir(base: str, run_id: str) -> str:
    """The directory of run ``run_id`` under the store ``base`` (local path or any Beam filesystem)."""
    return fs.join(str(base), check_run_id(run_id))


def _visible(name: str) -> bool:
    return bool(name) and not name.startswith(".")


def holds_records(directory: str) -> bool:
    """Whether ``directory`` holds any file (hidden temporary files and folders do not count)."""
    if not fs.via_beam(directory):
        if not os.path.isdir(directory):
            return False
        for _root, dirs, files in os.walk(directory):
            dirs[:] = [d for d in dirs if _visible(d)]
            if any(_visible(f) for f in files):
                return True
        return False
    try:
        found = list(fs.match(fs.join(directory, "**")))
    except Exception:  # noqa: BLE001 - a prefix that does not exist holds nothing
        return False
    prefix = directory.rstrip("/") + "/"
    return any(all(_visible(part) for part in m.path[len(prefix):].split("/")) for m in found)


def check_fresh(bases: Iterable[Optional[str]], run_id: str) -> None:
    """Refuse (:class:`RunError`) when run ``run_id``'s directory under any of ``bases`` already
    holds records: a run never writes into an earlier run's directory."""
    for base in bases:
        if base and holds_records(run_dir(base, run_id)):
            raise RunError(f"run {run_id} already holds records in {run_dir(base, run_id)}: a run never writes "
                           "into an earlier run's directory (give a new --run_id, or none for a fresh one)")


def start_run(bases: Iterable[Optional[str]], run_id: Optional[str] = None, check: bool = True) -> str:
    """The id of a run about to start: ``run_id`` checked as a safe id, or a new one; with ``check``,
    refused (:class:`RunError`) when its directory under any of ``bases`` already holds records."""
    run_id = check_run_id(run_id, "--run_id") if run_id else new_run_id()
    if check:
        check_fresh(bases, run_id)
    return run_id


def list_runs(base: Optional[str]) -> list:
    """The run ids under the store ``base`` (its visible sub-directories with safe-id names), sorted."""
    if not base:
        return []
    base = str(base)
    if not fs.via_beam(base):
        if not os.path.isdir(base):
            return []
        return sorted(n for n in os.listdir(base) if is_safe_id(n) and os.path.isdir(os.path.join(base, n)))
    try:
        found = list(fs.match(fs.join(base, "*", "**")))
    except Exception:  # noqa: BLE001 - a prefix that does not exist has no runs
        return []
    prefix = base.rstrip("/") + "/"
    names = {m.path[len(prefix):].split("/", 1)[0] for m in found if m.path.startswith(prefix)}
    return sorted(n for n in names if is_safe_id(n))


def choose(base: str, run_id: str, what: str = "store") -> str:
    """The directory of the chosen run under ``base``; :class:`RunError` naming the runs there are
    when it does not exist."""
    check_run_id(run_id, "--run")
    runs = list_runs(base)
    if run_id not in runs:
        shown = ", ".join(runs[-20:]) + (f" (and {len(runs) - 20} earlier)" if len(runs) > 20 else "")
        raise RunError(f"no run {run_id} in {what} {base}; available runs: {shown or 'none'}")
    return run_dir(base, run_id)


def pattern(base: str, suffix: str, run_id: Optional[str] = None) -> str:
    """A Beam file pattern for the files ending in ``suffix`` (e.g. ``.jsonl``) of every run under
    ``base`` (its top level and every run directory: ``<base>/**.jsonl``), or of one run."""
    if run_id:
        return fs.join(run_dir(base, run_id), "*" + suffix)
    return fs.join(str(base), "**" + suffix)


def run_of(base: str, path: str) -> Optional[str]:
    """The run id of a file under ``base`` (``<base>/<RUN_ID>/<file>``); None at the top level."""
    base = str(base).rstrip("/").rstrip(os.sep)
    rest = str(path)[len(base):].lstrip("/").lstrip(os.sep) if str(path).startswith(base) else ""
    parts = rest.replace(os.sep, "/").split("/")
    return parts[0] if len(parts) == 2 and is_safe_id(parts[0]) else None


def temp_dir(base: str, unique: str) -> str:
    """Where a file sink under ``base`` keeps its temporary files: a hidden folder no reader
    opens, removed by :func:`remove_temp_dirs` once empty."""
    return fs.join(str(base), f".temp-beam-{unique}")


def remove_empty_dir(path: str) -> bool:
    """Remove the local folder ``path`` if it is empty (object stores have no empty folders)."""
    if fs.via_beam(path):
        return False
    try:
        os.rmdir(path)
        return True
    except OSError:  # missing, or not empty: left alone
        return False


def remove_temp_dirs(bases: Iterable[Optional[str]]) -> list:
    """Remove the empty temporary folders (``.temp*``) Beam's file writes left under each of
    ``bases`` and its run directories (local paths). Returns the folders removed."""
    removed = []
    for base in bases:
        if not base or fs.via_beam(base) or not os.path.isdir(base):
            continue
        parents = [base] + [os.path.join(base, r) for r in list_runs(base)]
        for parent in parents:
            for name in sorted(os.listdir(parent)):
                path = os.path.join(parent, name)
                if name.startswith(TEMP_PREFIXES) and os.path.isdir(path) and remove_empty_dir(path):
                    removed.append(path)
    return removed
