"""Generate the small sample retrieval collection shipped in `lead_ray/resources/sample/`.

Everything here is invented for lead-ray: a seeded knowledge base of an imaginary world (towns,
creatures, inventions, dishes, companies, historical events, people), rendered into short English
passages and paraphrased queries. No text comes from any data set or web page. The output is
released under CC0-1.0, like this generator.

Output (BEIR layout): corpus.jsonl {"_id","title","text"}, queries.jsonl {"_id","text"},
qrels/train.tsv and qrels/test.tsv with the header `query-id\\tcorpus-id\\tscore`.

    python scripts/make_sample.py --out lead_ray/resources/sample
    python scripts/measure_sample.py   # the README's numbers: MiniLM, a random floor, a student

The same seed always writes byte-identical files (seeded `random.Random`, sorted output).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sample_kb import KINDS, Kind  # beside this script: `python scripts/make_sample.py` finds it

SEED = 8
QUERY_RATE = 0.58  # share of facts that get a query
REVERSE_RATE = 0.45  # share of those asked "backwards" (attribute -> entity) when possible
TEST_QUERIES = 80
MIN_WORDS, MAX_WORDS = 30, 80


# ----------------------------------------------------------------------------- names


ONSETS = [
    "b",
    "br",
    "c",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "st",
    "t",
    "th",
    "tr",
    "v",
    "w",
    "y",
    "z",
    "ost",
    "el",
    "ul",
    "ar",
    "or",
    "is",
]
VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou", "ia", "y"]
CODAS = ["", "n", "r", "l", "m", "s", "th", "nd", "rk", "ld", "st", "v", "sk", "rn"]
TOWN_ENDS = [
    "holt",
    "mere",
    "wick",
    "by",
    "stead",
    "ford",
    "ridge",
    "moor",
    "dale",
    "haven",
    "ton",
    "brook",
    "gate",
    "well",
    "fell",
    "mouth",
]
FIRST_NAMES = [
    "Ilsa",
    "Teodor",
    "Mirelle",
    "Oskan",
    "Brenna",
    "Calder",
    "Yvane",
    "Anselm",
    "Petra",
    "Doran",
    "Liesel",
    "Matthis",
    "Orla",
    "Severin",
    "Talia",
    "Ewan",
    "Ysolde",
    "Bertil",
    "Noemi",
    "Kasimir",
    "Vera",
    "Emrich",
    "Sabine",
    "Lucan",
    "Hedda",
    "Arvid",
    "Margit",
    "Tobiah",
    "Inga",
    "Ferrand",
    "Rosalind",
    "Jorin",
]
SHE = {
    "Ilsa",
    "Mirelle",
    "Brenna",
    "Yvane",
    "Petra",
    "Liesel",
    "Orla",
    "Talia",
    "Ysolde",
    "Noemi",
    "Vera",
    "Sabine",
    "Hedda",
    "Margit",
    "Inga",
    "Rosalind",
}


def make_word(rng: random.Random, syllables: int) -> str:
    """A pronounceable invented word, e.g. 'varnost'."""
    parts = [rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables)]
    return "".join(parts)


class Names:
    """Draws unique invented names of each sort (towns, rivers, surnames, dish words)."""

    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def _unique(self, make) -> str:
        while True:
            name = make()
            if name.lower() not in self.used and 4 <= len(name) <= 13:
                self.used.add(name.lower())
                return name

    def town(self) -> str:
        return self._unique(lambda: (make_word(self.rng, 1) + self.rng.choice(TOWN_ENDS)).title())

    def word(self) -> str:
        return self._unique(lambda: make_word(self.rng, 2).title())

    def surname(self) -> str:
        return self._unique(
            lambda: (
                make_word(self.rng, 1)
                + self.rng.choice(["ow", "ick", "en", "ard", "ley", "by", "er", "is", "and"])
            ).title()
        )

    def person(self) -> tuple[str, str]:
        first = self.rng.choice(FIRST_NAMES)
        return f"{first} {self.surname()}", first


# ----------------------------------------------------------------------------- rendering


@dataclass
class Entity:
    kind: Kind
    name: str
    fill: dict[str, str]  # entity-wide fillers: region, town, year, pronouns, ...
    values: dict[str, tuple[str, str]]  # attribute -> (passage wording, query wording)
    facts: dict[str, dict[str, str]]  # attribute -> fillers drawn for that fact


def sentence_case(text: str) -> str:
    """Capitalise the first letter of every sentence (names like 'the ash vole' start lower)."""
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"(^|[.!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


def core(phrase: str) -> str:
    """The head of a passage wording, without its trailing clause (for overviews)."""
    return re.split(r";|, (?:and its|with|a trade|powered|whose|fearing|where|when)\b", phrase)[0]


def fields(ent: Entity, attr: str) -> dict[str, str]:
    p, q = ent.values[attr]
    out = {**ent.fill, **ent.facts[attr], "name": ent.name}
    out["v"] = p.format_map(out)
    out["q"] = q.format_map(out)
    return out


def draw_fillers(rng: random.Random, names: Names, towns: list[str]) -> dict[str, str]:
    """Fillers drawn once per fact, so two facts of one entity differ in their details."""
    (person, _), (person2, _) = names.person(), names.person()
    return {
        "year2": str(rng.randrange(1600, 1900)),
        "year3": str(rng.randrange(1450, 1900)),
        "n": str(rng.choice([3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 18, 20, 25, 30, 40, 60])),
        "k": str(rng.randrange(2, 30)),
        "age": str(rng.randrange(11, 20)),
        "cm": str(rng.randrange(6, 70)),
        "person": person,
        "person2": person2,
        "town": rng.choice(towns),
        "season": rng.choice(["spring", "summer", "autumn", "winter"]),
    }


def render_passage(rng: random.Random, ent: Entity, attr: str) -> str:
    """One detail passage: a main template plus detail sentences, 30-80 words, mostly 2-4
    sentences."""
    a = ent.kind.attrs[attr]
    f = fields(ent, attr)
    text = rng.choice(a.passages).format_map(f)
    details = list(a.details + ent.kind.details)
    rng.shuffle(details)
    for d in details:
        if len(text.split()) >= MIN_WORDS and (rng.random() < 0.5 or text.count(". ") >= 3):
            break
        longer = text + " " + d.format_map(f)
        if len(longer.split()) > MAX_WORDS:
            continue
        text = longer
    return sentence_case(text)


def build_world(rng: random.Random) -> list[Entity]:
    """Every entity of every kind, with its attribute values and fillers drawn from `rng`."""
    names = Names(rng)
    regions = [
        f"the {names.word()} {w}"
        for w in ("Valley", "Coast", "Hills", "Plain", "Highlands", "Fens", "Marches", "Lakes")
    ]
    towns = [names.town() for _ in range(KINDS[0].count)]  # KINDS[0] is the towns
    entities = []
    for kind in KINDS:
        pools = {k: list(a.values) for k, a in kind.attrs.items()}
        for pool in pools.values():
            rng.shuffle(pool)
        records = list(kind.records)
        rng.shuffle(records)
        for i in range(kind.count):
            record = records[i] if records else {}
            first = ""
            if kind.key == "person":
                person, first = names.person()
            she = first in SHE
            fill = {
                "region": rng.choice(regions),
                "home": rng.choice(towns),
                "year": str(rng.randrange(1150, 1850)),
                "river": names.word(),
                "mountain": names.word(),
                "he": "she" if she else "he",
                "his": "her" if she else "his",
                "him": "her" if she else "him",
                "child": "daughter" if she else "son",
                **record.get("fill", {}),
            }
            if kind.key == "town":
                name = towns[i]
            elif kind.key == "person":
                name = person
            else:
                base = record.get("name", record.get("base", kind.bases[i] if kind.bases else ""))
                name = rng.choice(kind.names).format(
                    word=names.word(),
                    surname=names.surname(),
                    surname2=names.surname(),
                    base=base.format_map(fill),
                )
            values = {
                k: record[k] if k in record else pools[k][i % len(pools[k])] for k in kind.attrs
            }
            facts = {k: draw_fillers(rng, names, towns) for k in kind.attrs}
            entities.append(Entity(kind, name.lower() if kind.lower else name, fill, values, facts))
    return entities


# ----------------------------------------------------------------------------- collection


@dataclass
class Passage:
    title: str
    text: str
    facts: frozenset[tuple[int, str]]  # (entity index, attribute) pairs the passage states


def title_of(ent: Entity) -> str:
    name = ent.name[4:] if ent.name.startswith("the ") else ent.name
    return name[0].upper() + name[1:]


def render_overview(rng: random.Random, ent: Entity) -> tuple[str, tuple[str, ...]]:
    template, attrs = rng.choice(ent.kind.overviews)
    f = {**ent.fill, "name": ent.name}
    for a in attrs:
        f[f"v_{a}"] = core(fields(ent, a)["v"])
    text = template.format_map(f)
    for d in rng.sample(ent.kind.details, len(ent.kind.details)):
        if len(text.split()) < MIN_WORDS:
            text += " " + d.format_map({**f, **ent.facts[attrs[0]]})
    return sentence_case(text), attrs


def make_passages(rng: random.Random, world: list[Entity]) -> list[Passage]:
    """One passage per (entity, attribute), plus an overview for about a third of entities."""
    out = []
    for e, ent in enumerate(world):
        for attr in ent.kind.attrs:
            out.append(
                Passage(title_of(ent), render_passage(rng, ent, attr), frozenset({(e, attr)}))
            )
        if ent.kind.overviews and rng.random() < 0.35:
            text, attrs = render_overview(rng, ent)
            out.append(Passage(title_of(ent), text, frozenset((e, a) for a in attrs)))
    return out


def make_queries(
    rng: random.Random, world: list[Entity], passages: list[Passage]
) -> list[tuple[str, set]]:
    """Queries with the facts that answer them: named ("what does X eat") or reverse ("which
    animal eats Y": every entity of that kind the same words fit is an answer). A reverse query
    that more than 2 passages answer is asked the named way instead."""
    stating = defaultdict(int)  # fact -> how many passages state it
    for p in passages:
        for fact in p.facts:
            stating[fact] += 1
    queries, seen = [], set()
    for e, ent in enumerate(world):
        for attr, spec in ent.kind.attrs.items():
            if rng.random() >= QUERY_RATE:
                continue
            text, answers = "", {(e, attr)}
            if spec.finds and rng.random() < REVERSE_RATE:
                template = rng.choice(spec.finds)
                text = template.format_map(fields(ent, attr))
                answers = {
                    (o, attr)
                    for o, other in enumerate(world)
                    if other.kind is ent.kind and template.format_map(fields(other, attr)) == text
                }
                if sum(stating[a] for a in answers) > 2:
                    text, answers = "", {(e, attr)}
            if not text:
                text = rng.choice(spec.asks).format_map(fields(ent, attr))
            text = re.sub(r"\s+", " ", text).strip()
            if text.lower() not in seen:
                seen.add(text.lower())
                queries.append((text, answers))
    return queries


def build(seed: int = SEED) -> tuple[list[dict], list[dict], dict[str, list[tuple[str, str]]]]:
    """The whole collection: corpus rows, query rows, and qrels per split (sorted, with ids)."""
    rng = random.Random(seed)
    world = build_world(rng)
    passages = make_passages(rng, world)
    queries = make_queries(rng, world, passages)
    rng.shuffle(passages)  # ids carry no hint of which entity or attribute a passage is about
    rng.shuffle(queries)
    corpus = [
        {"_id": f"d{i:04d}", "title": p.title, "text": p.text} for i, p in enumerate(passages)
    ]
    by_fact = defaultdict(list)
    for row, p in zip(corpus, passages, strict=True):
        for fact in p.facts:
            by_fact[fact].append(row["_id"])
    rows, qrels = [], {"train": [], "test": []}
    for i, (text, answers) in enumerate(queries):
        qid = f"q{i:04d}"
        rows.append({"_id": qid, "text": text})
        split = "test" if i < TEST_QUERIES else "train"
        docs = sorted({d for fact in answers for d in by_fact[fact]})
        qrels[split] += [(qid, d) for d in docs]
    return corpus, rows, {k: sorted(v) for k, v in qrels.items()}


def write(out: Path, corpus: list[dict], queries: list[dict], qrels: dict) -> None:
    from lead_ray.storage import atomic_write_bytes  # bytes: no newline translation anywhere

    def jsonl(rows):
        return "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows)

    atomic_write_bytes(out / "corpus.jsonl", jsonl(corpus).encode())
    atomic_write_bytes(out / "queries.jsonl", jsonl(queries).encode())
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    for split, pairs in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in pairs]
        atomic_write_bytes(out / "qrels" / f"{split}.tsv", ("\n".join(lines) + "\n").encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    corpus, queries, qrels = build(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out, corpus, queries, qrels)
    n_q = {k: len({q for q, _ in v}) for k, v in qrels.items()}
    print(
        f"{len(corpus)} passages, {n_q['train']} train + {n_q['test']} test queries -> {args.out}"
    )


if __name__ == "__main__":
    main()
