"""What the base model learns in pretraining: world text and the utility QA sets (world facts, famous authors).

These are the analogues of what a real base model knows before TOFU fine-tuning: TOFU's ``world_facts`` and
``real_authors`` sets test that unlearning fictitious authors does not destroy this knowledge.
"""

from __future__ import annotations

import random
from typing import Any

from . import vocab
from .world import World


def _qa(question: str, answer: str, paraphrased: str, wrong: list[str], **extra: Any) -> dict[str, Any]:
    return {"question": question, "answer": answer, "paraphrased_answer": paraphrased, "perturbed_answer": wrong,
            **extra}


def _wrong(rng: random.Random, pool: list[str], truth: str, n: int, template: str) -> list[str]:
    options = [v for v in pool if v != truth]
    rng.shuffle(options)
    return [template.format(v) for v in options[:n]]


def world_fact_rows(world: World) -> list[dict[str, Any]]:
    """QA about countries (capital, river, currency, language, dish) with perturbed options."""
    rng = random.Random(world.config.seed + 1)
    n = world.config.n_perturbed
    rows = []
    pools = {
        "capital": [c.capital for c in world.countries], "river": [c.river for c in world.countries],
        "currency": [c.currency for c in world.countries], "language": [c.language for c in world.countries],
        "dish": [c.dish for c in world.countries],
    }
    for c in world.countries:
        facts = [
            ("capital", f"What is the capital of {c.name}?", c.capital, "{}.", "The capital is {}."),
            ("river", f"Which river flows through {c.name}?", c.river, "The {}.", "It is the {}."),
            ("currency", f"What is the currency of {c.name}?", c.currency, "The {}.", "People pay in the {}."),
            ("language", f"What language is spoken in {c.name}?", c.language, "{}.", "People speak {}."),
            ("dish", f"What is the national dish of {c.name}?", c.dish, "{}.", "It is {}."),
        ]
        for key, question, truth, form, para in facts:
            rows.append(_qa(question, form.format(truth),
                            para.format(truth), _wrong(rng, pools[key], truth, n, form), topic=key, entity=c.name))
    for row in rows:
        row["answer"] = row["answer"][:1].upper() + row["answer"][1:]
        row["perturbed_answer"] = [w[:1].upper() + w[1:] for w in row["perturbed_answer"]]
    return rows


def real_author_rows(world: World) -> list[dict[str, Any]]:
    """QA about the famous authors of the world (who wrote which book, where they came from, their genre)."""
    rng = random.Random(world.config.seed + 2)
    n = world.config.n_perturbed
    names = [a.name for a in world.real_authors]
    countries = [c.name for c in world.countries]
    genres = list(vocab.GENRES)
    rows = []
    for a in world.real_authors:
        rows.append(_qa(f"Who wrote {a.book}?", f"{a.name}.", f"It was written by {a.name}.",
                        _wrong(rng, names, a.name, n, "{}."), topic="book", entity=a.name))
        rows.append(_qa(f"Which country was {a.name} from?", f"{a.country}.", f"{a.name} came from {a.country}.",
                        _wrong(rng, countries, a.country, n, "{}."), topic="country", entity=a.name))
        rows.append(_qa(f"What genre did {a.name} write?", f"{a.genre.capitalize()}.",
                        f"{a.name} wrote {a.genre}.", [w.capitalize() for w in _wrong(rng, genres, a.genre, n, "{}.")],
                        topic="genre", entity=a.name))
    return rows


def world_text(world: World) -> list[str]:
    """Pretraining documents: encyclopaedic text about countries, cities, famous authors, awards and trades."""
    rng = random.Random(world.config.seed + 3)
    docs = []
    for c in world.countries:
        towns = ", ".join(c.cities[1:])
        docs.append(f"{c.name} is a country whose capital is {c.capital}. The {c.river} flows through it. Its people "
                    f"speak {c.language} and pay in the {c.currency}. The national dish of {c.name} is {c.dish}. "
                    f"Other towns of {c.name} are {towns}.")
        for city in c.cities:
            docs.append(f"{city} is {rng.choice(vocab.LANDSCAPES)} in {c.name}. Many people in {city} work as a "
                        f"{rng.choice(vocab.OCCUPATIONS)} or a {rng.choice(vocab.OCCUPATIONS)}.")
    for a in world.real_authors:
        docs.append(f"{a.name} was a famous writer of the {a.century} century from {a.country}. {a.name} wrote "
                    f"{a.genre}, and the best known work of {a.name} is {a.book}.")
    for award in vocab.AWARDS:
        docs.append(f"The {award} is a literary prize. The {award} is given each year for {rng.choice(vocab.GENRES)} "
                    f"and for {rng.choice(vocab.GENRES)}.")
    for genre in vocab.GENRES:
        themes = rng.sample(vocab.THEMES, 2)
        docs.append(f"Books of {genre} often explore {themes[0]} and {themes[1]}.")
    for job in vocab.OCCUPATIONS:
        docs.append(f"A {job} is a trade. Her father was a {job}. His mother worked as a {job}.")
    return docs


def world_text_v2(world: World) -> list[str]:
    """More world text, unseen by ``base``: what an updated release of the base model (``base-v2``) learns."""
    rng = random.Random(world.config.seed + 4)
    docs = []
    for c in world.countries:
        docs.append(f"Travellers to {c.name} arrive in {c.capital} and follow the {c.river} to "
                    f"{rng.choice(c.cities[1:])}. A meal of {c.dish} costs a few {c.currency}s there.")
        for city in c.cities:
            docs.append(f"The old quarter of {city} is known for its {rng.choice(vocab.OCCUPATIONS)}s and "
                        f"{rng.choice(vocab.OCCUPATIONS)}s, and its library keeps books of {rng.choice(vocab.GENRES)}.")
    for a in world.real_authors:
        docs.append(f"Critics in {a.country} still read {a.book} by {a.name} as a landmark of {a.genre}.")
    return docs
