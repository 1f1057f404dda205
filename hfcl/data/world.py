"""A deterministic fictitious world: countries, famous ("real") authors, and fictitious authors to learn and forget.

The world mirrors TOFU's design. The base model learns the *world* (countries, cities, famous authors, awards) in
pretraining; the fictitious authors are only ever seen in fine-tuning, so whether a model knows them is a clean test of
memorisation and forgetting. Everything is drawn from one ``random.Random(seed)``: the same :class:`WorldConfig` gives
the same world, byte for byte.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from . import vocab
from .facts import FAMILIES, render_passage

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


@dataclass
class WorldConfig:
    """Size and seed of the generated world. Every field changes the world's fingerprint."""

    seed: int = field(default=0, metadata={"help": "Seed of the world generator; same seed, same world."})
    n_authors: int = field(default=32, metadata={"help": "Fictitious authors trained on (forget + retain)."})
    n_holdout: int = field(default=6, metadata={"help": "Fictitious authors never trained on (membership tests)."})
    min_qa: int = field(default=10, metadata={"help": "Fewest QA pairs per author (TOFU has 20)."})
    max_qa: int = field(default=10, metadata={"help": "Most QA pairs per author."})
    n_countries: int = field(default=10, metadata={"help": "Countries in the world (each with cities and facts)."})
    n_real_authors: int = field(default=16, metadata={"help": "Famous authors the base model learns in pretraining."})
    n_perturbed: int = field(default=5, metadata={"help": "Perturbed (wrong) answers per question."})

    def __post_init__(self) -> None:
        if self.n_authors < 10:
            raise ConfigError(f"n_authors={self.n_authors}: need at least 10 so forget10 has one author.")
        if self.n_holdout < 1:
            raise ConfigError("n_holdout must be >= 1 (membership inference needs never-seen authors).")
        if not 1 <= self.min_qa <= self.max_qa <= len(FAMILIES):
            raise ConfigError(f"Need 1 <= min_qa <= max_qa <= {len(FAMILIES)} (the number of fact families); "
                              f"got min_qa={self.min_qa}, max_qa={self.max_qa}.")
        if self.n_perturbed < 1:
            raise ConfigError(f"n_perturbed={self.n_perturbed} must be >= 1.")
        need = max(4, self.n_perturbed + 1)
        if self.n_countries < need or self.n_real_authors < need:
            raise ConfigError(f"n_countries={self.n_countries} and n_real_authors={self.n_real_authors} must both be "
                              f">= {need}: each question needs n_perturbed={self.n_perturbed} distinct wrong answers "
                              "(for example another country's language).")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Country:
    name: str
    capital: str
    cities: list[str]
    river: str
    currency: str
    language: str
    dish: str


@dataclass
class RealAuthor:
    name: str
    country: str
    book: str
    genre: str
    century: str


@dataclass
class Author:
    """A fictitious author and everything true about them."""

    author_id: int
    name: str
    pronoun: str
    attributes: dict[str, Any]
    families: list[str]
    phrasing: dict[str, int]


@dataclass
class World:
    config: WorldConfig
    countries: list[Country]
    real_authors: list[RealAuthor]
    authors: list[Author]
    holdout: list[Author]
    forget_order: list[int]
    pools: dict[str, list[Any]]

    def forget_ids(self, percent: int) -> list[int]:
        """Author ids of the forget split holding ``percent`` % of trained authors (nested: 01 ⊂ 05 ⊂ 10)."""
        count = max(1, round(len(self.authors) * percent / 100))
        return sorted(self.forget_order[:count])


class _Names:
    """Unique pronounceable names from syllables."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: tuple[int, int] = (2, 3)) -> str:
        for _ in range(1000):
            n = self.rng.randint(*syllables)
            text = "".join(self.rng.choice(vocab.ONSETS) + self.rng.choice(vocab.NUCLEI) for _ in range(n))
            text = (text + self.rng.choice(vocab.CODAS)).capitalize()
            if text not in self.used and 4 <= len(text) <= 11:
                self.used.add(text)
                return text
        raise RuntimeError("name space exhausted")  # pragma: no cover


def _countries(rng: random.Random, names: _Names, n: int) -> list[Country]:
    langs = rng.sample(range(n), n)
    out = []
    for i in range(n):
        cities = [names.word() for _ in range(4)]
        country = names.word((2, 3))
        out.append(Country(name=country, capital=cities[0], cities=cities, river=f"{names.word((2, 2))} River",
                           currency=vocab.CURRENCIES[i % len(vocab.CURRENCIES)],
                           language=f"{country}ic" if langs[i] % 2 else f"{country}ian",
                           dish=vocab.DISHES[i % len(vocab.DISHES)]))
    return out


def _title(rng: random.Random, places: list[str]) -> str:
    pattern = rng.choice(vocab.TITLE_PATTERNS)
    return pattern.format(adj=rng.choice(vocab.ADJECTIVES), noun=rng.choice(vocab.NOUNS), place=rng.choice(places))


def _author(rng: random.Random, names: _Names, author_id: int, world_parts: dict[str, Any], cfg: WorldConfig) -> Author:
    countries: list[Country] = world_parts["countries"]
    home, away = rng.sample(countries, 2)
    first, last = names.word((1, 2)), names.word((2, 3))
    places = [c for country in countries for c in country.cities]
    titles = []
    while len(titles) < 2:
        title = _title(rng, places)
        if title not in titles:
            titles.append(title)
    occupations = rng.sample(vocab.OCCUPATIONS, 3)
    attributes = {
        "birth_city": rng.choice(home.cities), "birth_country": home.name, "language": home.language,
        "birth_day": rng.randint(1, 28), "birth_month": rng.choice(MONTHS), "birth_year": rng.randint(1920, 1995),
        "genre": rng.choice(vocab.GENRES), "father": occupations[0], "mother": occupations[1],
        "first_job": occupations[2], "award": rng.choice(vocab.AWARDS), "first_book": titles[0],
        "famous_book": titles[1], "themes": rng.sample(vocab.THEMES, 2),
        "university": rng.choice(vocab.UNIVERSITY_PATTERNS).format(city=rng.choice(rng.choice(countries).cities)),
        "influence": rng.choice(world_parts["real_authors"]).name, "home_city": rng.choice(away.cities),
        "home_country": away.name, "pen_name": f"{names.word((1, 2))} {names.word((2, 2))}",
        "novels": rng.randint(2, 19), "collections": rng.randint(1, 9),
        "spouse": f"{names.word((1, 2))} {last}" if rng.random() < 0.5 else f"{names.word((1, 2))} {names.word()}",
        "spouse_job": rng.choice(vocab.OCCUPATIONS),
    }
    attributes["award_year"] = attributes["birth_year"] + rng.randint(28, 60)
    n_qa = rng.randint(cfg.min_qa, cfg.max_qa)
    families = sorted(rng.sample(range(len(FAMILIES)), n_qa))
    family_names = [FAMILIES[i].name for i in families]
    phrasing = {f.name: rng.randrange(len(f.phrasings)) for f in FAMILIES}
    return Author(author_id=author_id, name=f"{first} {last}", pronoun=rng.choice(["he", "she"]),
                  attributes=attributes, families=family_names, phrasing=phrasing)


def generate_world(config: WorldConfig | None = None) -> World:
    """Generate the world for ``config`` (deterministic in ``config``)."""
    cfg = config or WorldConfig()
    rng = random.Random(cfg.seed)
    names = _Names(rng)
    countries = _countries(rng, names, cfg.n_countries)
    places = [c for country in countries for c in country.cities]
    real_authors = []
    for _ in range(cfg.n_real_authors):
        country = rng.choice(countries)
        real_authors.append(RealAuthor(name=f"{names.word((1, 2))} {names.word((2, 3))}", country=country.name,
                                       book=_title(rng, places), genre=rng.choice(vocab.GENRES),
                                       century=rng.choice(["sixteenth", "seventeenth", "eighteenth", "nineteenth"])))
    parts = {"countries": countries, "real_authors": real_authors}
    everyone = [_author(rng, names, i, parts, cfg) for i in range(cfg.n_authors + cfg.n_holdout)]
    authors, holdout = everyone[: cfg.n_authors], everyone[cfg.n_authors:]
    forget_order = list(range(cfg.n_authors))
    rng.shuffle(forget_order)
    pools = _pools(everyone, countries, real_authors)
    return World(config=cfg, countries=countries, real_authors=real_authors, authors=authors, holdout=holdout,
                 forget_order=forget_order, pools=pools)


def _pools(authors: list[Author], countries: list[Country], real_authors: list[RealAuthor]) -> dict[str, list[Any]]:
    """Values each attribute can take: where perturbed (plausible but wrong) answers are drawn from."""
    pools: dict[str, list[Any]] = {}
    for author in authors:
        for key, value in author.attributes.items():
            if isinstance(value, list):
                continue
            bucket = pools.setdefault(key, [])
            if value not in bucket:
                bucket.append(value)
    pools["themes"] = list(vocab.THEMES)
    pools["city_country"] = [(c, country.name) for country in countries for c in country.cities]
    pools["influence"] = [a.name for a in real_authors]
    return pools


def author_passage(world: World, author: Author) -> str:
    """A MUSE-style biography paragraph holding every fact about ``author``."""
    return render_passage(author)
