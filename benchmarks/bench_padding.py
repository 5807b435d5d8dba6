"""Grooming detection on chats padded with another language (issue 17, not named by it): the held-out
evaluation split, one writer per conversation padding each message with everyday sentences of a
language the model does not support, read as the release before did and as now.

    python -m benchmarks.bench_padding [--n-eval N] [--out benchmarks/padding.md]

The decoy: the language of a conversation is decided on the text of its first messages as a whole,
and a conversation in a language the model does not support is not scored (the default,
``grooming.unsupported_languages: skip``), so padding is enough to hide a conversation whole. Now
(:mod:`csadetect.models.language`) a run of words the model does not know that reads surely as an
unsupported language is cut from a message when what is left reads as the message's own text
(``without_foreign_runs``, with ``grooming.undo_obfuscation``), and a conversation taken for an
unsupported language is scored when three or more of its sentences are each in a supported one (the
sentence vote of ``detect``).

What it does:

* generates the evaluation split the shipped model was evaluated on (its training seed, its four
  languages), as ``csadetect models evaluate --grooming`` does;
* pads it in each form of :mod:`training.grooming_padding` with the filler of the five held-out
  languages (Spanish, Portuguese, Swedish, Czech, Turkish; one drawn per conversation), and in the
  ``append`` form with the two languages the rules were built against (Polish, Italian);
* scores each version with the shipped model, ``before`` (no cut, no vote: the release before) and
  ``now``, and reports recall, precision against the hard negatives, the median message of the flag
  and the conversations taken for an unsupported language;
* checks the split as it is both ways, and times the cut per message on the split's own messages and
  on padded ones.
"""
from __future__ import annotations

import datetime as dt
import platform
import time
from contextlib import contextmanager
from pathlib import Path

from benchmarks.bench_obfuscation import _f, eval_split_run, us_per_text
from benchmarks.machine import cpu_model, log
from csadetect.models import language as langid
from csadetect.models.grooming import GroomingModel
from csadetect.models.grooming_text import undo_obfuscation
from training import grooming_padding as gp
from training.train_grooming import evaluate_heldout

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "padding.md"
NOTES = """How blind: the rules were written against one probe, the `append` form in Polish and Italian on 200
conversations a language of this split (recall 0.563 as it is; padded, 0.000 in Polish and, with half the messages
padded, 0.201 in Italian). Its figures shaped them: a single known word inside a run (Polish "film"), trimming a
run's ends, what a cut must leave, the sentence vote's probability (0.9 first, then 0.5). The held-out languages'
sentences and the other forms were written after that and first run on 30 conversations a language (120): recall
`append` 0.619, `prepend` 0.595, `wrap` 0.214, `run-on` 0.571, `one` 0.452, `interleaved` 0.238, the seen
languages' `append` 0.619 (0.643 as it is): the only blind figures. After reading them two rules changed: a run is
cut whatever py3langid's probability of its top language, when no supported language gets more than 0.02 (it
needed 0.9 first; Spanish and Portuguese, Czech and Slovak share it), but only in a message that reads as an
unsupported language as a whole; and messages wholly in another language are left out of the windows scored
(`interleaved`). The full split, measured once between the two changes: `append` 0.496, `prepend` 0.475, `wrap`
0.302. So the figures above are not blind. Ordinary text: over the 147,496 distinct messages of the corpus (three
seeds, every split, the written calibration split, four languages) the cut changes none and none reads wholly as
another language (tests check a sample on every run); the split as it is scores the same both ways. Rerun 2026-12-08
with a message of more than 14 words read as up to 4 pieces (`bursts.md`; in both columns, as `before` reads with
the obfuscations undone): `now` append 0.531 -> 0.530, prepend 0.509 -> 0.502, wrap 0.408 -> 0.408 (351 -> 344 not
scored), run-on 0.539 -> 0.536, one sentence 0.454 -> 0.468, interleaved 0.534 -> 0.534, seen 0.545 -> 0.545: padding
that is not cut now fills more rows of a window, and a message padded but still read as a supported language is no
longer read as one diluted bag."""


@contextmanager
def release_before():
    """No cut of foreign runs and no sentence vote: the language decision and the text as before."""
    cut, vote = langid.without_foreign_runs, langid._sentence_vote
    langid.without_foreign_runs = lambda text, known, supported: text
    langid._sentence_vote = lambda texts, supported: None
    try:
        yield
    finally:
        langid.without_foreign_runs, langid._sentence_vote = cut, vote


def _row(m: dict) -> dict:
    return {"recall": m["recall"], "hard": m["precision_hard_negatives"],
            "median": m["latency_messages_until_flag"]["median"], "unsupported": m.get("unsupported_language", 0),
            "by_language": {c: v["recall"] for c, v in m["by_language"].items()}}


def _cost(model: GroomingModel, convs) -> dict:
    known, supported = model._known_words, model.supported_languages
    out = {}
    for form in ("none", "append"):
        texts = [undo_obfuscation(m["text"], known) for c in gp.pad(convs, form) for m in c.messages]
        out[form] = (us_per_text(lambda t: langid.without_foreign_runs(t, known, supported), texts), len(texts))
    return out


def render(results: dict, languages, seed: int, n_convs: int, cost: dict, model: GroomingModel, seconds: float) -> str:
    out = ["# Grooming chats padded with another language (issue 17)", "",
           f"Written by `python -m benchmarks.bench_padding` on {dt.date.today()} ({platform.python_version()}, "
           f"{cpu_model()}), {seconds:.0f} s. Model {model.version}; the evaluation split of seed {seed}, "
           f"{n_convs} conversations ({', '.join(languages)}). One writer per conversation pads every message "
           "(`training/grooming_padding.py`); `before`: the release before (no cut, no sentence vote), `now`: "
           "the default.", "",
           "| padding | filler languages | recall before -> now | precision vs hard negatives | median flag message "
           "| taken for an unsupported language (not scored) | recall now: " + " / ".join(languages) + " |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for (form, which), (before, now) in results.items():
        out.append(f"| {form} | {which} | {_f(before['recall'])} -> **{_f(now['recall'])}** | {_f(before['hard'])} -> "
                   f"{_f(now['hard'])} | {_f(before['median'], 1)} -> {_f(now['median'], 1)} | "
                   f"{before['unsupported']} -> {now['unsupported']} | "
                   + " / ".join(_f(now["by_language"].get(c)) for c in languages) + " |")
    out += ["", f"Cost of the cut (CPU µs per message, best of 3): the split's own messages {cost['none'][0]:.1f} "
            f"({cost['none'][1]} messages), padded (`append`) {cost['append'][0]:.1f}; the sentence vote runs only "
            "for a conversation taken for an unsupported language. `grooming.undo_obfuscation: false` reads "
            "messages as written (no cut either); the vote has no switch: it only scores what would otherwise "
            "not be scored at all.", "", "## Notes", "", NOTES, ""]
    return "\n".join(out)


def main(argv=None) -> int:
    t0 = time.time()
    args, model, convs, seed, languages = eval_split_run(argv, __doc__.split("\n\n")[0], OUT)
    runs = [("none", "-", ())] + [(form, "held out: es, pt, sv, cs, tr", gp.HELD_OUT) for form in gp.FORMS]
    runs.append(("append", "seen: pl, it", gp.SEEN))
    results = {}
    for form, which, filler in runs:
        version = gp.pad(convs, form, filler or gp.HELD_OUT, seed)
        with release_before():
            before = _row(evaluate_heldout(model, version, form))
        now = _row(evaluate_heldout(model, version, form))
        results[(form, which)] = (before, now)
        log(f"{form} ({which}): recall {before['recall']:.3f} -> {now['recall']:.3f}, hard-negative precision "
            f"{before['hard']:.3f} -> {now['hard']:.3f}, unsupported {before['unsupported']} -> {now['unsupported']}")
    cost = _cost(model, convs[:2000])
    Path(args.out).write_text(render(results, languages, seed, len(convs), cost, model, time.time() - t0),
                              encoding="utf-8")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
