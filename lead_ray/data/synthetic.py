"""A seeded, generated retrieval collection in BEIR layout (tiny configs and tests).

Each passage mixes words of its topic, two words of its own and filler; its query repeats the
own words and some topic words in another order. Lexical matching solves it, so a tiny model
learns something within a few dozen steps, and confusable passages of the same topic keep it from
being trivial. Nothing here is real text; it only has to be deterministic and learnable.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from lead_ray.config import SyntheticData
from lead_ray.storage import atomic_dir, is_complete, write_manifest

_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ren",
    "tas",
    "vo",
    "quin",
    "dar",
    "pel",
    "sor",
    "nu",
    "bri",
    "gal",
    "fen",
    "tor",
    "wys",
    "hal",
    "jun",
    "cre",
    "ost",
]
_FILLER = ["the", "a", "of", "and", "in", "is", "with", "for", "on", "near", "about", "from"]


def _words(rng: random.Random, n: int) -> list[str]:
    """`n` distinct made-up words of 2 to `longest` syllables, `longest` (3 at least) the
    smallest that leaves 4x more words than needed, so drawing stays fast at any size."""
    longest = 3
    while sum(len(_SYLLABLES) ** k for k in range(2, longest + 1)) < 4 * n:
        longest += 1
    seen: set[str] = set()
    out = []
    while len(out) < n:
        w = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, longest)))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def generate(spec: SyntheticData) -> dict[str, list]:
    """Corpus, queries and qrels (train/test) as plain lists; deterministic in `spec`."""
    rng = random.Random(spec.seed)
    n_topics = max(4, spec.docs // 20)
    pool = _words(rng, 6 * n_topics + 2 * spec.docs)  # distinct: no word is both kinds
    topic_words = [pool[6 * t : 6 * t + 6] for t in range(n_topics)]
    own = pool[6 * n_topics :]
    corpus = []
    for i in range(spec.docs):
        topic = i % n_topics
        key = own[2 * i : 2 * i + 2]
        body = rng.sample(topic_words[topic], 4) + key + rng.sample(_FILLER, 4)
        rng.shuffle(body)
        corpus.append({"_id": f"d{i}", "title": topic_words[topic][0], "text": " ".join(body)})
    n_queries = spec.queries + spec.test_queries
    targets = rng.sample(range(spec.docs), min(n_queries, spec.docs))
    queries, train, test = [], [], []
    for j, doc in enumerate(targets):
        topic = doc % n_topics
        words = own[2 * doc : 2 * doc + 2] + rng.sample(topic_words[topic], 2)
        rng.shuffle(words)
        qid = f"q{j}"
        queries.append({"_id": qid, "text": " ".join(words)})
        (train if j < spec.queries else test).append((qid, f"d{doc}", 1))
    return {"corpus": corpus, "queries": queries, "train": train, "test": test}


def write_beir(spec: SyntheticData, folder: str | Path) -> Path:
    """Write the collection as a BEIR folder (atomically; reused when already complete)."""
    folder = Path(folder)
    if is_complete(folder):
        return folder
    data = generate(spec)
    with atomic_dir(folder) as tmp:
        with open(tmp / "corpus.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(d) + "\n" for d in data["corpus"])
        with open(tmp / "queries.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(q) + "\n" for q in data["queries"])
        (tmp / "qrels").mkdir()
        for split in ("train", "test"):
            with open(tmp / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as fh:
                fh.write("query-id\tcorpus-id\tscore\n")
                fh.writelines(f"{q}\t{d}\t{s}\n" for q, d, s in data[split])
        write_manifest(
            tmp,
            {
                "kind": "synthetic-beir",
                "spec": spec.model_dump(),
                "complete": True,
                "docs": len(data["corpus"]),
                "queries": len(data["queries"]),
            },
        )
    return folder
