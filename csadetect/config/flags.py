"""Command-line flag spelling, in one place (issue 13 §6): dash/underscore normalisation and the
nearest known name for a misspelt flag or config key.

csadetect's own commands document dashes (``--public-key``), the pipeline commands (``run``,
``feedback``, ``demo``'s pass-through) Beam's underscores (``--public_key``); either spelling is
accepted everywhere: :func:`normalise` rewrites a flag to the spelling its parser knows.
:func:`suggest` gives the ``(did you mean ...?)`` hint for a name nobody knows. Plain Python, no
argparse or Beam: the command line (:mod:`csadetect.cli.main`) and the pipelines' options
(:mod:`csadetect.pipelines.options`) hand in the names they know.
"""
from __future__ import annotations

import difflib
from typing import Collection, Iterable, Optional

# Set by ``csadetect --verbose``: TensorFlow's start-up messages (CUDA, oneDNN) are shown, not
# kept off stderr (:func:`csadetect.models.loader.import_tensorflow`). An environment variable, so
# that a pipeline's worker processes inherit it.
VERBOSE_ENV = "CSADETECT_VERBOSE"


def flag_name(arg: str) -> Optional[str]:
    """The name of a long flag (``--name`` or ``--name=value`` -> ``name``); None for anything else
    (values, ``-x``, a bare ``--``)."""
    if not arg.startswith("--") or len(arg) <= 2:
        return None
    return arg[2:].split("=", 1)[0] or None


def respell(name: str, known: Collection[str]) -> str:
    """``name`` as ``known`` spells it when it differs only in dashes and underscores (``public-key``
    <-> ``public_key``); ``name`` itself when it is known as given or not known in any spelling."""
    if name in known:
        return name
    for other in (name.replace("-", "_"), name.replace("_", "-")):
        if other in known:
            return other
    return name


def normalise(argv: Iterable[str], known: Collection[str]) -> list[str]:
    """``argv`` with every long flag respelled as ``known`` spells it (:func:`respell`); values,
    short flags and everything after a bare ``--`` stay as they are."""
    out: list[str] = []
    rest = False
    for arg in argv:
        name = None if rest else flag_name(arg)
        if arg == "--":
            rest = True
        if name is not None:
            fixed = respell(name, known)
            if fixed != name:
                arg = "--" + fixed + arg[2 + len(name):]
        out.append(arg)
    return out


def suggest(name: str, known: Iterable[str], prefix: str = "--") -> str:
    """`` (did you mean --closest?)`` for a misspelt ``name``, or ``""`` when nothing is close.
    Dashes and underscores count as the same character."""
    known = list(known)
    by_key = {k.replace("-", "_"): k for k in known}
    close = difflib.get_close_matches(name.replace("-", "_"), list(by_key), n=1, cutoff=0.6)
    return f" (did you mean {prefix}{by_key[close[0]]}?)" if close else ""
