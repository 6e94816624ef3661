"""The run folder: the one place where an output path is spelled.

Every verb (`lead train`, `lead encode`, ..., `lead pipeline`) reads and writes one run folder
laid out as below, so verbs run one after another on the same `--out` pick up each other's
outputs, and a pipeline is just the verbs in order:

    DIR/config.yaml                    the resolved config of the last verb run here
        synthetic/                     a generated collection (data.synthetic)
        corpus/                        the memory-mapped corpus store
        models/{teacher,student}-init/ the teacher and the untrained student as saved folders
        mine/examples.jsonl            mined hard negatives (+ manifest.json)
        teacher-cache/                 a frozen dual-encoder teacher's per-layer features
        train/                         metrics.jsonl, checkpoints/, student/, teacher/, manifest
        embeddings/<model>/            parquet shards + manifest (one folder per model encoded)
        index/<model>/                 FAISS shard indexes + manifest
        runs/<system>/<split>.{trec,tsv,json}   runs (TREC, MS MARCO) and the search summary
        eval/<system>/<split>.json     metrics and speed of one system on one split
        .stages/                       what search and evaluate last ran on (their stamps)
        report.md  metrics.json  plots/

A *system* is a model under evaluation: `student` (train/student), `student-init`, `teacher`
(train/teacher when the teacher trained, else teacher-init), `teacher-init`, or any model
folder (named after the folder). Embeddings and indexes are keyed by the model, so two systems
that are the same model (a frozen teacher and teacher-init) share them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The fixed paths of a run folder, relative to its root (the rest are methods of RunLayout).
PATHS = {
    "config": "config.yaml",  # the resolved config of the last verb run here
    "synthetic": "synthetic",  # a generated collection (data.synthetic)
    "mine": "mine",  # mined hard negatives, with a manifest
    "examples": "mine/examples.jsonl",
    "dev_candidates": "mine/dev.trec",  # the dev queries' candidates (dev evaluation)
    "teacher_cache": "teacher-cache",  # `lead cache-teacher`
    "train": "train",  # `lead train`: metrics, checkpoints, exported models, manifest
    "checkpoints": "train/checkpoints",
    "train_metrics": "train/metrics.jsonl",
    "stamps": ".stages",  # what the stamped stages (search, evaluate) last ran on
    "reranked": "run.trec",  # `lead rerank`: a run re-ranked by the teacher (TREC)
    "reranked_tsv": "run.tsv",
    "reranked_summary": "rerank.json",
    "report": "report.md",  # the run card
    "metrics": "metrics.json",
    "plots": "plots",
}
INITIAL = ("teacher-init", "student-init")  # models saved before training
TRAINED = ("student", "teacher", "student-best")  # models the train stage exports
# `student` is the selected student: student-best when training kept one (dev evaluation) and
# the config selects it, else the last step's; `student-last` names the last step's always
SYSTEMS = ("student", "student-init", "teacher", "teacher-init", "student-best", "student-last")


@dataclass(frozen=True)
class System:
    """A model under evaluation: its name (runs, eval), model folder and model key (embeddings)."""

    name: str
    folder: Path
    key: str


@dataclass(frozen=True)
class RunLayout:
    """Paths inside one run folder. `corpus_dir` points several runs at one shared corpus store
    (a benchmark's cells); by default each run folder has its own."""

    root: Path
    corpus_dir: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for another process (a Ray worker, maybe in another directory) to rebuild
        the layout: absolute paths."""
        corpus = None if self.corpus_dir is None else str(Path(self.corpus_dir).resolve())
        return {"root": str(self.root.resolve()), "corpus_dir": corpus}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunLayout:
        return cls(
            Path(data["root"]), None if data["corpus_dir"] is None else Path(data["corpus_dir"])
        )

    def __getattr__(self, name: str) -> Path:
        """The fixed paths of `PATHS` as attributes: `layout.train`, `layout.examples`, ..."""
        if name in PATHS:
            return self.root / PATHS[name]
        raise AttributeError(f"{type(self).__name__} has no path {name!r}")

    @property
    def corpus(self) -> Path:
        return self.corpus_dir or self.root / "corpus"

    def initial_model(self, role: str) -> Path:
        if role not in INITIAL:
            raise ValueError(f"initial model {role!r}: one of {INITIAL}")
        return self.root / "models" / role

    def trained_model(self, role: str) -> Path:
        if role not in TRAINED:
            raise ValueError(f"trained model {role!r}: one of {TRAINED}")
        return self.train / role

    # ------------------------------------------------------------------ corpus flow

    def embeddings(self, key: str) -> Path:
        return self.root / "embeddings" / key

    def index(self, key: str) -> Path:
        return self.root / "index" / key

    def run_file(self, system: str, split: str, fmt: str = "trec") -> Path:
        """`trec` (6 columns), `tsv` (MS MARCO) or `json` (the search summary)."""
        return self.root / "runs" / system / f"{split}.{fmt}"

    def evaluation(self, system: str, split: str) -> Path:
        return self.root / "eval" / system / f"{split}.json"

    def stamp(self, label: str) -> Path:
        """What a stamped stage (search, evaluate) last ran on: `.stages/<label>.json`."""
        return self.stamps / (label.replace(":", "-") + ".json")

    # ------------------------------------------------------------------ systems

    def system(self, name: str | os.PathLike, best: bool = True) -> System:
        """One of SYSTEMS, or a model folder (named after it). `student` is `student-best`'s
        folder when it exists and `best` (the model key tells their embeddings apart)."""
        if name == "teacher":
            trained = self.trained_model("teacher")
            if trained.is_dir():
                return System("teacher", trained, "teacher")
            return System("teacher", self.initial_model("teacher-init"), "teacher-init")
        if name == "student":
            chosen = self.trained_model("student-best")
            if best and chosen.is_dir():
                return System("student", chosen, "student-best")
            return System("student", self.trained_model("student"), "student")
        if name == "student-last":
            return System("student-last", self.trained_model("student"), "student")
        if name == "student-best":
            return System("student-best", self.trained_model("student-best"), "student-best")
        if name in INITIAL:
            return System(str(name), self.initial_model(str(name)), str(name))
        folder = Path(name)
        key = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-.") or "model"
        return System(key, folder, key)
