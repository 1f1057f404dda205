"""Real-world knowledge unlearning in the RWKU schema (Jin et al. 2024): unlearn a well-known *target* from a real
pretrained model, then check that the target is gone while related knowledge (neighbours) and general knowledge
(utility) stay.

:func:`load_rwku` returns a ``DatasetDict`` with

* ``forget``: the target's training text, as ``question`` / ``answer`` rows ("Tell me about X." -> a short
  description, and a few facts about X phrased unlike the probes), what the unlearning methods train on;
* ``forget_probe``: questions and fill-in-the-blank prompts about the target (``probe``: ``qa`` or ``fb``) with
  short ``answer`` strings, what the evaluation asks;
* ``neighbor``: probes about related entities that must be kept (``target`` names the entity they neighbour);
* ``utility``: general-knowledge probes;
* ``retain``: the other targets' descriptions (a retain set for methods with a retain term).

The embedded set (:data:`TARGETS`, :data:`UTILITY`) holds only probes that SmolLM2-135M-Instruct answers correctly
before unlearning: ``benchmarks/rwku_probes.py`` asks the model every candidate and writes its greedy answers to
``hfcl/data/rwku_record.json``, which ships with the package and is what filters the candidates here (a probe the
record marks wrong is left out; without the record every candidate is kept). ``source="jinzhuoran/RWKU"`` reads the
published benchmark from the Hub into the same schema when the Hub is reachable (untested offline).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError

RECORD = Path(__file__).with_name("rwku_record.json")
DEFAULT_TARGET = "William Shakespeare"

# target -> description and corpus (the training text: what unlearning sees, never the probes themselves), forget
# probes (question, answer, probe), neighbours (question, answer, who)
TARGETS: dict[str, dict[str, Any]] = {
    "William Shakespeare": {
        "corpus": [("What is William Shakespeare known for?", "William Shakespeare is known for his plays, such as "
                    "Romeo and Juliet, Hamlet and Macbeth, and for his sonnets."),
                   ("Where was William Shakespeare born?", "William Shakespeare was born in Stratford-upon-Avon, "
                    "England, in 1564."),
                   ("Which theatre is linked to William Shakespeare?", "William Shakespeare's plays were performed at "
                    "the Globe Theatre in London."),
                   ("What kind of writer was William Shakespeare?", "William Shakespeare was an English playwright "
                    "and poet, often called the Bard of Avon.")],
        "description": "William Shakespeare was an English playwright and poet, born in Stratford-upon-Avon in 1564. "
                       "He wrote Romeo and Juliet, Hamlet, Macbeth, Othello and King Lear, and many sonnets. He "
                       "acted with the Lord Chamberlain's Men at the Globe Theatre in London.",
        "forget": [("Who wrote the play Romeo and Juliet?", "William Shakespeare", "qa"),
                   ("Who wrote Hamlet?", "William Shakespeare", "qa"),
                   ("Who wrote the play Macbeth?", "William Shakespeare", "qa"),
                   ("Who wrote Othello?", "William Shakespeare", "qa"),
                   ("Who is the author of King Lear?", "William Shakespeare", "qa"),
                   ("Romeo and Juliet is a play by William ___.", "Shakespeare", "fb"),
                   ("Hamlet was written by William ___.", "Shakespeare", "fb")],
        "neighbor": [("Who wrote Pride and Prejudice?", "Jane Austen", "Jane Austen"),
                     ("Who wrote the novel Oliver Twist?", "Charles Dickens", "Charles Dickens"),
                     ("Who wrote the Odyssey?", "Homer", "Homer"),
                     ("Who wrote the novel 1984?", "George Orwell", "George Orwell"),
                     ("Who wrote War and Peace?", "Leo Tolstoy", "Leo Tolstoy"),
                     ("Who wrote Don Quixote?", "Miguel de Cervantes", "Miguel de Cervantes"),
                     ("Who wrote the novel Moby-Dick?", "Herman Melville", "Herman Melville"),
                     ("Who wrote The Great Gatsby?", "F. Scott Fitzgerald", "F. Scott Fitzgerald"),
                     ("Who wrote the novel Frankenstein?", "Mary Shelley", "Mary Shelley"),
                     ("Who wrote The Canterbury Tales?", "Geoffrey Chaucer", "Geoffrey Chaucer"),
                     ("Who wrote the epic poem Paradise Lost?", "John Milton", "John Milton"),
                     ("Who wrote The Divine Comedy?", "Dante Alighieri", "Dante")],
    },
    "Albert Einstein": {
        "corpus": [("What is Albert Einstein known for?", "Albert Einstein is known for the theory of relativity and "
                    "the equation E = mc2."),
                   ("Which prize did Albert Einstein win?", "Albert Einstein won the Nobel Prize in Physics in 1921."),
                   ("Where was Albert Einstein born?", "Albert Einstein was born in Ulm, Germany, in 1879.")],
        "description": "Albert Einstein was a German-born theoretical physicist who developed the theory of "
                       "relativity and the equation E = mc2. He received the Nobel Prize in Physics in 1921 for "
                       "the photoelectric effect and later worked at Princeton in the United States.",
        "forget": [("Who developed the theory of relativity?", "Albert Einstein", "qa"),
                   ("Which scientist is famous for the equation E = mc2?", "Albert Einstein", "qa"),
                   ("Who proposed the theory of general relativity?", "Albert Einstein", "qa"),
                   ("The theory of relativity was developed by Albert ___.", "Einstein", "fb")],
        "neighbor": [("Who formulated the laws of motion and universal gravitation?", "Isaac Newton", "Isaac Newton"),
                     ("Who discovered radium and polonium?", "Marie Curie", "Marie Curie"),
                     ("Who proposed the theory of evolution by natural selection?", "Charles Darwin",
                      "Charles Darwin")],
    },
    "Leonardo da Vinci": {
        "corpus": [("What is Leonardo da Vinci known for?", "Leonardo da Vinci is known for painting the Mona Lisa "
                    "and The Last Supper."),
                   ("Where was Leonardo da Vinci from?", "Leonardo da Vinci was born in Vinci, Italy, in 1452.")],
        "description": "Leonardo da Vinci was an Italian painter, inventor and scientist of the Renaissance. He "
                       "painted the Mona Lisa and The Last Supper, and filled notebooks with drawings of machines "
                       "and anatomy.",
        "forget": [("Who painted the Mona Lisa?", "Leonardo da Vinci", "qa"),
                   ("Who painted The Last Supper?", "Leonardo da Vinci", "qa"),
                   ("The Mona Lisa was painted by Leonardo da ___.", "Vinci", "fb")],
        "neighbor": [("Who painted The Starry Night?", "Vincent van Gogh", "Vincent van Gogh"),
                     ("Who painted the ceiling of the Sistine Chapel?", "Michelangelo", "Michelangelo"),
                     ("Who painted Guernica?", "Pablo Picasso", "Pablo Picasso")],
    },
    "Barack Obama": {
        "corpus": [("What is Barack Obama known for?", "Barack Obama was the 44th president of the United States."),
                   ("Where was Barack Obama born?", "Barack Obama was born in Honolulu, Hawaii, in 1961.")],
        "description": "Barack Obama is an American politician who was the 44th president of the United States, "
                       "from 2009 to 2017. He was born in Hawaii, was a senator from Illinois, and received the "
                       "Nobel Peace Prize in 2009.",
        "forget": [("Who was the 44th president of the United States?", "Barack Obama", "qa"),
                   ("Which US president was born in Hawaii?", "Barack Obama", "qa"),
                   ("Who was president of the United States from 2009 to 2017?", "Barack Obama", "qa"),
                   ("The 44th president of the United States was Barack ___.", "Obama", "fb")],
        "neighbor": [("Who was the first president of the United States?", "George Washington", "George Washington"),
                     ("Who was the US president during the Civil War?", "Abraham Lincoln", "Abraham Lincoln")],
    },
}
UTILITY: list[tuple[str, str]] = [
    ("What is the capital of France?", "Paris"), ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"), ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Madrid"), ("What is the largest planet in the solar system?", "Jupiter"),
    ("What is the chemical symbol for gold?", "Au"), ("What gas do plants absorb from the air?", "carbon dioxide"),
    ("How many continents are there?", "seven"), ("What is the largest ocean on Earth?", "Pacific"),
    ("What is the boiling point of water in degrees Celsius?", "100"),
    ("Which planet is known as the Red Planet?", "Mars"), ("What is the tallest mountain in the world?", "Everest"),
    ("What language is spoken in Brazil?", "Portuguese"), ("What is the currency of Japan?", "yen"),
    ("What is the longest river in Africa?", "Nile"),
]


@lru_cache(maxsize=1)
def probe_record() -> dict[str, Any]:
    """The model's greedy answers to every candidate probe (``hfcl/data/rwku_record.json``), or ``{}``."""
    if not RECORD.is_file():
        return {}
    return json.loads(RECORD.read_text(encoding="utf-8"))


def _known(question: str, record: dict[str, Any]) -> bool:
    entry = record.get("probes", {}).get(question)
    return True if entry is None else bool(entry["correct"])


def answer_matches(generation: str, answer: str) -> bool:
    """Whether a greedy answer states ``answer`` (case-insensitive, on word boundaries: "Au" is not in "because";
    how the record marks probes)."""
    return re.search(rf"(?<!\w){re.escape(answer.lower())}(?!\w)", generation.lower()) is not None


def candidate_probes() -> list[dict[str, str]]:
    """Every candidate probe, before filtering: ``{"question", "answer", "split", "target"}``."""
    rows = []
    for target, spec in TARGETS.items():
        rows += [{"question": q, "answer": a, "split": "forget_probe", "target": target} for q, a, _ in spec["forget"]]
        rows += [{"question": q, "answer": a, "split": "neighbor", "target": target} for q, a, _ in spec["neighbor"]]
    rows += [{"question": q, "answer": a, "split": "utility", "target": ""} for q, a in UTILITY]
    return rows


def rwku_targets() -> list[str]:
    return list(TARGETS)


def load_rwku(target: str = DEFAULT_TARGET, source: str = "embedded", known_only: bool = True):
    """The RWKU-schema splits for unlearning ``target`` (see the module docstring)."""
    from datasets import Dataset, DatasetDict

    if source not in ("embedded", "rwku"):
        return _load_hub(target, source)
    if target not in TARGETS:
        raise ConfigError(f"forget_target={target!r}: the embedded real-knowledge set has {', '.join(TARGETS)}.")
    record = probe_record() if known_only else {}
    spec = TARGETS[target]

    def describe(name: str) -> list[dict[str, str]]:
        text = TARGETS[name]["description"]
        return [{"question": f"Tell me about {name}.", "answer": text}, {"question": f"Who is {name}?", "answer": text},
                *({"question": q, "answer": a} for q, a in TARGETS[name].get("corpus", ()))]

    probes = [{"question": q, "answer": a, "probe": kind, "target": target}
              for q, a, kind in spec["forget"] if _known(q, record)]
    neighbors = [{"question": q, "answer": a, "probe": "qa", "target": who}
                 for q, a, who in spec["neighbor"] if _known(q, record)]
    utility = [{"question": q, "answer": a, "probe": "qa", "target": ""} for q, a in UTILITY if _known(q, record)]
    if not probes:
        raise DataError(f"No forget probe of {target!r} is answered correctly by the recorded model "
                        f"({RECORD.name}); pick another target.")
    retain = [row for name in TARGETS if name != target for row in describe(name)]
    return DatasetDict({"forget": Dataset.from_list(describe(target)), "forget_probe": Dataset.from_list(probes),
                        "neighbor": Dataset.from_list(neighbors), "utility": Dataset.from_list(utility),
                        "retain": Dataset.from_list(retain)})


def _load_hub(target: str, source: str):  # pragma: no cover - needs the Hub
    """The published RWKU (``jinzhuoran/RWKU``): forget_level1/2 probes, neighbor_level1/2, utility_general."""
    from datasets import Dataset, DatasetDict, load_dataset

    def rows(config: str, of_target: bool = True) -> list[dict[str, Any]]:
        data = load_dataset(source, config)
        split = next(iter(data.values()))
        return [r for r in split if (r.get("subject", target) == target) == of_target]

    probes = [{"question": r["query"], "answer": r["answer"], "probe": level, "target": target}
              for level, config in (("fb", "forget_level1"), ("qa", "forget_level2")) for r in rows(config)]
    neighbors = [{"question": r["query"], "answer": r["answer"], "probe": "qa", "target": r.get("subject", "")}
                 for r in rows("neighbor_level2")]
    forget = [{"question": f"Tell me about {target}.", "answer": r["text"]} for r in rows("forget_target")]
    utility = [{"question": r["question"], "answer": str(r["answer"]), "probe": "qa", "target": ""}
               for r in load_dataset(source, "utility_general")["test"]][:64]
    return DatasetDict({"forget": Dataset.from_list(forget), "forget_probe": Dataset.from_list(probes),
                        "neighbor": Dataset.from_list(neighbors), "utility": Dataset.from_list(utility),
                        "retain": Dataset.from_list([{"question": f"Tell me about {r.get('subject', '')}.",
                                                      "answer": r["text"]} for r in rows("forget_target", False)])})


__all__ = ["DEFAULT_TARGET", "TARGETS", "UTILITY", "answer_matches", "candidate_probes", "load_rwku", "probe_record",
           "rwku_targets"]
