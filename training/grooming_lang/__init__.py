"""Per-language phrase material for the synthetic grooming corpus (``training.grooming_corpus``).

Each language is one module written natively in that language (its own phrasing, chat slang,
school years, names, apps and places), not a translation of the English banks: ``nl`` (Dutch),
``de`` (German), ``fr`` (French). English lives in ``training.grooming_banks`` (re-exported by ``training.grooming_corpus``). Every
module defines the same banks — ``SLOTS``, ``GROOMER``, ``CHILD_REPLY``, ``CHITCHAT``,
``BENIGN_FAMILIES``, ``SLANG``, ``SYNONYMS``, ``PREFIX``, ``SUFFIX`` and ``EVAL_ONLY_FAMILIES`` —
with the same split rules: every bank has ``"train"`` phrasings (every fourth one reserved for
the calibration split) and ``"eval"`` phrasings held out for evaluation, and two benign families
exist only in the evaluation split. ``extra_nl``, ``extra_de`` and ``extra_fr`` hold issue 17's
fifth-round training phrasings, used only with ``extra_phrasings=1``; ``extra2_en``, ``extra2_nl``,
``extra2_de`` and ``extra2_fr`` the ninth round's, added to those with ``extra_phrasings=2``
(:func:`with_extra`; ``training.grooming_banks.language``). ``calib_en``, ``calib_nl``, ``calib_de`` and
``calib_fr`` hold issue 17's eleventh-round calibration-only phrasings, slot values, slang, affixes and two
calibration-only families, written apart from both the training and the evaluation wording; used only for
a *written* calibration split (:func:`with_calibration`; ``training.grooming_corpus.generate``).

Nothing here is sexual: grooming lines show only the risk patterns (age questions, flattery,
exclusivity, risk assessment, secrecy, isolation, private channels, gifts, selfie/camera
requests, meeting requests); the hard negatives share their words.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

SPLITS = ("train", "calibration", "eval")


@dataclass(frozen=True)
class Family:
    """A benign conversation family: lines of role A and role B per bank ("train"/"eval")."""
    name: str
    lines_a: dict
    lines_b: dict
    minor: bool = True
    splits: tuple = SPLITS


@dataclass(frozen=True)
class Language:
    """One language's banks (see the module docstring)."""
    code: str
    name: str
    slots: dict
    groomer: dict
    child_reply: dict
    chitchat: dict
    families: list
    slang: dict
    synonyms: dict
    prefix: dict
    suffix: dict
    eval_only_families: tuple
    word_re: re.Pattern = field(default=re.compile(r"[a-zß-ÿ']+"))


def with_extra(lang: Language, extra) -> Language:
    """``lang`` with an ``extra_<code>`` module's phrasings (``GROOMER``, ``CHILD_REPLY``, ``CHITCHAT``,
    ``FAMILIES``) appended after each bank's "train" phrasings; "eval" phrasings are unchanged."""
    def more(bank: dict, lines: list) -> dict:
        return {**bank, "train": list(bank["train"]) + list(lines)} if lines else bank

    families = [dataclasses.replace(f, lines_a=more(f.lines_a, extra.FAMILIES.get(f.name, {}).get("a", [])),
                                    lines_b=more(f.lines_b, extra.FAMILIES.get(f.name, {}).get("b", [])))
                for f in lang.families]
    return dataclasses.replace(
        lang, groomer={k: more(v, extra.GROOMER.get(k, [])) for k, v in lang.groomer.items()},
        child_reply={k: more(v, extra.CHILD_REPLY.get(k, [])) for k, v in lang.child_reply.items()},
        chitchat=more(lang.chitchat, extra.CHITCHAT), families=families)


def from_module(module, code: str, name: str) -> Language:
    """A :class:`Language` from a phrase module's upper-case banks."""
    return Language(code, name, module.SLOTS, module.GROOMER, module.CHILD_REPLY, module.CHITCHAT,
                    module.BENIGN_FAMILIES, module.SLANG, module.SYNONYMS, module.PREFIX, module.SUFFIX,
                    tuple(module.EVAL_ONLY_FAMILIES))


def with_calibration(lang: Language, calib) -> Language:
    """``lang`` with its held-out ("eval") material replaced by a ``calib_<code>`` module's: every
    bank's, family's, slot's, slang table's and affix list's "eval" entry becomes the calibration-only
    one, and the module's ``CALIBRATION_ONLY_FAMILIES`` replace the evaluation-only families. The
    corpus builds the written calibration split from it the way it builds the evaluation split, so
    that split is as far from training as the evaluation split is, and shares none of its wording.
    Training ("train") material is unchanged."""
    def held(bank: dict, lines) -> dict:
        return {**bank, "eval": list(lines)}

    families = [dataclasses.replace(f, lines_a=held(f.lines_a, calib.FAMILIES[f.name]["a"]),
                                    lines_b=held(f.lines_b, calib.FAMILIES[f.name]["b"]),
                                    splits=tuple(dict.fromkeys(f.splits + ("eval",))))
                for f in lang.families if f.name in calib.FAMILIES]
    families += [Family(name, {"train": [], "eval": list(lines["a"])}, {"train": [], "eval": list(lines["b"])},
                        splits=("eval",)) for name, lines in calib.CALIBRATION_ONLY_FAMILIES.items()]
    slang = {**lang.slang, "eval": {k: list(v) for k, v in calib.SLANG.items()}}
    return dataclasses.replace(
        lang, slots={k: held(v, calib.SLOTS[k]) for k, v in lang.slots.items()},
        groomer={k: held(v, calib.GROOMER[k]) for k, v in lang.groomer.items()},
        child_reply={k: held(v, calib.CHILD_REPLY[k]) for k, v in lang.child_reply.items()},
        chitchat=held(lang.chitchat, calib.CHITCHAT), families=families, slang=slang,
        prefix=held(lang.prefix, calib.PREFIX), suffix=held(lang.suffix, calib.SUFFIX),
        eval_only_families=tuple(calib.CALIBRATION_ONLY_FAMILIES))
