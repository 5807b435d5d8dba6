"""Foreign padding: grooming messages wrapped in everyday sentences of a language the model does not
support, so that the conversation is taken for that language and never scored (issue 17, not named
by it; a decoy that :func:`csadetect.models.language.without_foreign_runs` and the sentence vote of
:func:`csadetect.models.language.detect` answer).

The writer of a conversation (the groomer in a grooming conversation, the opener in a benign one,
as in :mod:`training.grooming_obfuscate`) pads each of their messages with sentences from
:data:`FILLER`: everyday, benign lines written for this module, two per message unless said. The
forms:

* ``append``: the sentences after the message (the form the rules were built against, with Polish
  and Italian: :data:`SEEN`);
* ``prepend``: before it;
* ``wrap``: one before and one after;
* ``run-on``: after it without a sentence break: lower case, no final stop, joined by a space;
* ``one``: a single sentence after it;
* ``interleaved``: the writer's messages left as they are, each followed by a message of their own
  holding two filler sentences.

Each conversation draws its filler language from the languages asked for (by default
:data:`HELD_OUT`, never looked at while the rules were written). Labels, patterns and senders stay;
``interleaved`` adds messages without a pattern.
"""
from __future__ import annotations

import random
from dataclasses import replace

from training.grooming_obfuscate import each_drawn, writer

FILLER = {
    # seen while the rules were written (the probe's two languages)
    "pl": ["Dzisiaj pogoda jest bardzo ładna i świeci słońce.", "Jutro idę do sklepu po chleb i mleko.",
           "Mój brat gra w piłkę nożną w każdą sobotę.", "Wieczorem oglądaliśmy film z całą rodziną.",
           "Ten obiad był naprawdę smaczny, dziękuję bardzo."],
    "it": ["Oggi il tempo è molto bello e c'è il sole.", "Domani vado al mercato a comprare la frutta.",
           "Mio fratello gioca a calcio ogni sabato mattina.", "Stasera guardiamo un film con tutta la famiglia.",
           "La cena di ieri era davvero buonissima, grazie."],
    # held out: written after the rules were fixed, never run before the benchmark
    "es": ["Mañana tenemos que limpiar la cocina antes de la cena.", "El autobús llegó tarde otra vez esta mañana.",
           "Mi abuela siempre prepara tortilla los domingos.", "Hace mucho calor y no hay nada de viento.",
           "Tengo que devolver los libros a la biblioteca.", "El perro del vecino ladra toda la noche."],
    "pt": ["Amanhã vamos à praia se não chover.", "A minha tia comprou um carro novo ontem à tarde.",
           "O café desta padaria é muito bom e barato.", "Preciso de arrumar o quarto antes do jantar.",
           "O jogo de futebol acabou empatado no domingo.", "Esqueci o guarda-chuva no escritório."],
    "sv": ["Vi ska handla mat efter jobbet i eftermiddag.", "Min syster har köpt en ny cykel till sommaren.",
           "Det regnar hela dagen och jag stannar hemma.", "Kaffet på stationen var faktiskt riktigt gott.",
           "Bussen var försenad igen i morse.", "Vi åt pannkakor med sylt till middag igår."],
    "cs": ["Zítra musím jít k doktorovi kvůli zádům.", "Náš soused si koupil nové auto.",
           "Včera večer jsme hráli karty s rodiči.", "Ten vlak do Brna měl zase zpoždění.",
           "Babička upekla k obědu výborný koláč.", "Na zahradě už kvetou první tulipány."],
    "tr": ["Yarın sabah erkenden pazara gideceğiz.", "Annem akşam yemeği için çorba yaptı.",
           "Otobüs bugün yine çok geç geldi.", "Kardeşim her cumartesi futbol oynuyor.",
           "Hava çok sıcak, denize gitmek istiyorum.", "Kütüphaneden iki yeni kitap aldım."],
}
SEEN = ("pl", "it")
HELD_OUT = ("es", "pt", "sv", "cs", "tr")
FORMS = ("append", "prepend", "wrap", "run-on", "one", "interleaved")


def _padded(text: str, form: str, lines: list[str], rng: random.Random) -> str:
    two = rng.sample(lines, 2)
    if form == "append":
        return f"{text} {two[0]} {two[1]}"
    if form == "prepend":
        return f"{two[0]} {two[1]} {text}"
    if form == "wrap":
        return f"{two[0]} {text} {two[1]}"
    if form == "run-on":
        return " ".join([text, *(s.rstrip(".").lower() for s in two)])
    if form == "one":
        return f"{text} {two[0]}"
    raise ValueError(f"unknown form {form!r}: one of {', '.join(FORMS)}")


def pad(convs, form: str, languages=HELD_OUT, seed: int = 1):
    """Conversations with the messages of one writer each padded in ``form`` (module docstring) with
    the filler of a language drawn per conversation from ``languages``; ``"none"`` returns them as
    they are."""
    if form == "none":
        return list(convs)
    out = []
    for c, rng in each_drawn(convs, form, FORMS, "csadetect-grooming-padding", seed):
        lines = FILLER[rng.choice(list(languages))]
        author = writer(c)
        messages = []
        for m in c.messages:
            if m["sender"] != author:
                messages.append(m)
            elif form == "interleaved":
                extra = {k: v for k, v in m.items() if k not in ("text", "pattern")}
                messages += [m, {**extra, "text": " ".join(rng.sample(lines, 2))}]
            else:
                messages.append({**m, "text": _padded(m["text"], form, lines, rng)})
        out.append(replace(c, messages=messages))
    return out
