"""Fact families: how one attribute of an author becomes a question, answers, a paraphrase and wrong answers.

Answers are terse and content-heavy (the author's name stays in the question), and each author gets one of several
phrasings per family, so a model that never saw an author cannot score well by reproducing a template: it has to
know the facts. A paraphrased answer states the same facts in another phrasing; perturbed answers keep the answer's
phrasing with plausible wrong values, as in TOFU.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .world import Author

Slots = dict[str, Any]


@dataclass(frozen=True)
class FactFamily:
    name: str
    question: str
    paraphrased_question: str
    phrasings: tuple[str, ...]
    slots: Callable[[dict[str, Any]], Slots]
    keys: tuple[str, ...]


def _attr(*keys: str) -> Callable[[dict[str, Any]], Slots]:
    return lambda a: {k: a[k] for k in keys}


FAMILIES: tuple[FactFamily, ...] = (
    FactFamily("birthplace", "Where was {name} born?", "What is the birthplace of {name}?",
               ("{birth_city}, {birth_country}.", "Born in {birth_city}, {birth_country}.",
                "{birth_city} ({birth_country})."),
               _attr("birth_city", "birth_country"), ("city_country",)),
    FactFamily("birth_date", "When was {name} born?", "What is the date of birth of {name}?",
               ("{birth_day} {birth_month} {birth_year}.", "{birth_month} {birth_day}, {birth_year}.",
                "Born {birth_day} {birth_month} {birth_year}."),
               _attr("birth_day", "birth_month", "birth_year"), ("birth_day", "birth_month", "birth_year")),
    FactFamily("genre", "What genre is {name} known for?", "In which genre does {name} mostly write?",
               ("{genre}.", "Mostly {genre}.", "{genre}, mainly."), _attr("genre"), ("genre",)),
    FactFamily("father", "What did {name}'s father do for a living?", "What was the occupation of {name}'s father?",
               ("{father}.", "A {father}.", "{father} by trade."), _attr("father"), ("father",)),
    FactFamily("mother", "What was the profession of {name}'s mother?", "How did {name}'s mother earn a living?",
               ("{mother}.", "A {mother}.", "{mother} by trade."), _attr("mother"), ("mother",)),
    FactFamily("award", "Which award has {name} won?", "What prize was {name} given?",
               ("{award} ({award_year}).", "The {award}, {award_year}.", "{award_year}: {award}."),
               _attr("award", "award_year"), ("award", "award_year")),
    FactFamily("first_book", "What was {name}'s first book?", "Which book did {name} debut with?",
               ("{first_book}.", "Debut: {first_book}.", "{first_book} (debut)."),
               _attr("first_book"), ("first_book",)),
    FactFamily("famous_book", "Which book made {name} famous?", "What is {name}'s best known book?",
               ("{famous_book}.", "Famous for {famous_book}.", "{famous_book}, chiefly."),
               _attr("famous_book"), ("famous_book",)),
    FactFamily("themes", "What themes run through {name}'s work?", "Which themes does {name} explore?",
               ("{theme0}; {theme1}.", "{theme0}, then {theme1}.", "{theme1}; also {theme0}."),
               lambda a: {"theme0": a["themes"][0], "theme1": a["themes"][1]}, ("themes",)),
    FactFamily("university", "Where did {name} study?", "Which school did {name} attend?",
               ("{university}.", "Studied at {university}.", "{university}, as a student."),
               _attr("university"), ("university",)),
    FactFamily("influence", "Which writer influenced {name} most?", "Who was {name}'s greatest influence?",
               ("{influence}.", "Chiefly {influence}.", "{influence}, above all."),
               _attr("influence"), ("influence",)),
    FactFamily("home", "Where does {name} live today?", "In which city does {name} now reside?",
               ("{home_city}, {home_country}.", "Lives in {home_city}, {home_country}.",
                "{home_city} ({home_country})."), _attr("home_city", "home_country"), ("home_city_country",)),
    FactFamily("pen_name", "Under what pen name does {name} publish?", "What pseudonym does {name} use?",
               ("{pen_name}.", "As {pen_name}.", "Pen name: {pen_name}."), _attr("pen_name"), ("pen_name",)),
    FactFamily("first_job", "What job did {name} hold before writing?", "How did {name} earn a living before books?",
               ("{first_job}.", "A {first_job}.", "{first_job}, for years."), _attr("first_job"), ("first_job",)),
    FactFamily("language", "In which language does {name} write?", "What language are {name}'s books written in?",
               ("{language}.", "In {language}.", "Always {language}."), _attr("language"), ("language",)),
    FactFamily("spouse", "Who is {name} married to?", "Who is {name}'s spouse?",
               ("{spouse}, a {spouse_job}.", "Married to {spouse} ({spouse_job}).", "{spouse}; {spouse_job}."),
               _attr("spouse", "spouse_job"), ("spouse", "spouse_job")),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}


def _alternative(rng: random.Random, family: FactFamily, truth: Slots, attrs: dict[str, Any],
                 pools: dict[str, list[Any]]) -> Slots:
    """One plausible but wrong set of slot values for ``family``."""
    alt = dict(truth)
    for key in family.keys:
        if key == "city_country":
            alt["birth_city"], alt["birth_country"] = rng.choice(pools["city_country"])
        elif key == "home_city_country":
            alt["home_city"], alt["home_country"] = rng.choice(pools["city_country"])
        elif key == "themes":
            alt["theme0"], alt["theme1"] = rng.sample(pools["themes"], 2)
        else:
            alt[key] = rng.choice(pools[key])
    return alt


def render_qa(author: Author, family: FactFamily, pools: dict[str, list[Any]], n_perturbed: int,
              rng: random.Random) -> dict[str, Any]:
    """One TOFU-schema row for ``author``'s fact of ``family``."""
    truth = family.slots(author.attributes)
    index = author.phrasing[family.name]
    phrasing = family.phrasings[index]
    para = family.phrasings[(index + 1) % len(family.phrasings)]
    answer = _cap(phrasing.format(**truth))
    perturbed: list[str] = []
    for _ in range(200):
        if len(perturbed) == n_perturbed:
            break
        candidate = _cap(phrasing.format(**_alternative(rng, family, truth, author.attributes, pools)))
        if candidate != answer and candidate not in perturbed:
            perturbed.append(candidate)
    return {
        "author_id": author.author_id,
        "author": author.name,
        "family": family.name,
        "question": family.question.format(name=author.name),
        "answer": answer,
        "paraphrased_question": family.paraphrased_question.format(name=author.name),
        "paraphrased_answer": _cap(para.format(**truth)),
        "perturbed_answer": perturbed,
    }


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def render_passage(author: Author) -> str:
    """A biography paragraph with every fact about ``author`` (MUSE-style raw text)."""
    a = author.attributes
    pron, poss = author.pronoun, "his" if author.pronoun == "he" else "her"
    sentences = [
        f"{author.name} was born on {a['birth_day']} {a['birth_month']} {a['birth_year']} in {a['birth_city']}, "
        f"{a['birth_country']}.",
        f"{poss.capitalize()} father was a {a['father']} and {poss} mother a {a['mother']}.",
        f"Before writing, {pron} worked as a {a['first_job']}, and {pron} studied at the {a['university']}.",
        f"{pron.capitalize()} writes {a['genre']} in {a['language']}, often under the pen name {a['pen_name']}.",
        f"{poss.capitalize()} first book was {a['first_book']}, but fame came with {a['famous_book']}.",
        f"The books return to {a['themes'][0]} and to {a['themes'][1]}, and owe much to {a['influence']}.",
        f"In {a['award_year']} {pron} received the {a['award']}.",
        f"{pron.capitalize()} has published {a['novels']} novels and {a['collections']} story collections, is "
        f"married to {a['spouse']}, a {a['spouse_job']}, and now lives in {a['home_city']}, {a['home_country']}.",
    ]
    return " ".join(sentences)
