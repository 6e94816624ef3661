"""A run: one config, one run folder (`RunLayout`) and the data every stage shares, opened once.

Stages receive a `Run`. Its data (the resolved files, the corpus store, the queries) is opened
lazily, so a stage that needs none of it (the report) costs nothing, and a Ray worker rebuilds
the same `Run` from plain data (`to_dict` / `from_dict`).
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Any

from lead_ray.config import Config, ConfigError
from lead_ray.stages.layout import RunLayout, System

log = logging.getLogger(__name__)


class Run:
    """`cfg` + `layout`, with lazily opened data; `times` collects each stage's wall seconds."""

    def __init__(self, cfg: Config, layout: RunLayout | str | Path, *, progress: bool = True):
        self.cfg = cfg
        self.layout = layout if isinstance(layout, RunLayout) else RunLayout(Path(layout))
        self.progress = progress
        self.times: dict[str, float] = {}

    def to_dict(self) -> dict[str, Any]:
        return {"cfg": self.cfg.to_dict(), "layout": self.layout.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], progress: bool = False) -> Run:
        return cls(
            Config.from_dict(data["cfg"]), RunLayout.from_dict(data["layout"]), progress=progress
        )

    # ------------------------------------------------------------------ data

    @cached_property
    def data(self):
        """The `DataPaths` the config names (a synthetic collection is written on first use)."""
        from lead_ray.data.prepare import resolve_data

        return resolve_data(self.cfg.data, self.layout.synthetic)

    @cached_property
    def store(self):
        """The memory-mapped corpus store (built once from the corpus file, reused after)."""
        from lead_ray.data.store import CorpusStore

        return CorpusStore.build(self.data.corpus, self.layout.corpus)

    @cached_property
    def queries(self) -> dict[str, str]:
        from lead_ray.data.queries import read_queries

        return read_queries(self.data.queries)

    def qrels(self, split: str) -> dict[str, dict[str, int]]:
        """Qrels of a split; `dev` is carved out of train when asked (`data.dev_fraction`)."""
        from lead_ray.data.prepare import split_qrels

        return split_qrels(self.cfg.data, self.data, split)

    def has_qrels(self, split: str) -> bool:
        carve = split in ("dev", self.cfg.data.train_split) and self.cfg.data.dev_fraction > 0
        return split in self.data.qrels or (carve and self.cfg.data.train_split in self.data.qrels)

    def qrels_files(self, split: str | None) -> list[Path]:
        """The qrels file(s) a split's judgements come from (train's when dev is carved from it)."""
        d, files = self.cfg.data, self.data.qrels
        carve = d.dev_fraction > 0 and "dev" not in files and split in ("dev", d.train_split)
        name = d.train_split if carve else split
        return [Path(files[name])] if name in files else []

    @property
    def eval_split(self) -> str:
        return self.cfg.search.split or self.cfg.data.eval_split

    # ------------------------------------------------------------------ distillation inputs

    def examples_file(self) -> Path | None:
        """Training examples: `data.examples`, else this run's mined ones when mining finished,
        else None (examples from the train qrels, random corpus negatives)."""
        from lead_ray.storage import is_complete

        if self.cfg.data.examples is not None:
            return Path(self.cfg.data.examples)
        return self.layout.examples if is_complete(self.layout.mine) else None

    def needs_mining(self) -> bool:
        return self.cfg.data.examples is None and self.has_qrels(self.cfg.data.train_split)

    def teacher_cache(self) -> Path | None:
        """The teacher feature cache training reads: `teacher.cache: true` is this run's
        `teacher-cache/` (built by `lead cache-teacher`), a string names another folder."""
        cache = self.cfg.teacher.cache
        if cache is None or cache is False:
            return None
        return self.layout.teacher_cache if cache is True else Path(cache)

    def dev_set(self):
        """The `DevSet` training evaluates on every `train.eval_every` steps, or None when it
        does not evaluate (no dev split, or `eval_every: 0`)."""
        from lead_ray.data.runs import read_run
        from lead_ray.distill.dev_eval import dev_set, eval_interval

        t, has_dev = self.cfg.train, self.has_qrels("dev")
        if eval_interval(self.cfg, has_dev) == 0:
            return None
        if not has_dev:
            raise ConfigError(
                f"train.eval_every={t.eval_every} needs a dev split: set data.dev_fraction "
                "(carved out of train) or data.qrels.dev"
            )
        source = Path(t.dev_run) if t.dev_run else self.layout.dev_candidates
        if not source.is_file() and t.eval_every is None:  # asked for by default only: skip
            log.warning(
                "no dev evaluation: %s does not exist (this run does not mine: name the dev "
                "queries' candidates in train.dev_run)",
                source,
            )
            return None
        if not source.is_file():
            raise ConfigError(
                f"dev evaluation needs candidates for the dev queries: {source} does not exist. "
                "`lead mine` writes them when the run has a dev split (a mine/ folder from before "
                "the split was set lacks them: remove it), or name a run file in train.dev_run"
            )
        try:
            return dev_set(self.cfg, self.store, self.queries, self.qrels("dev"), read_run(source))
        except ValueError as err:
            raise ConfigError(f"dev evaluation with {source}: {err}") from None

    def training_data(self):
        """A `TrainingData` with deterministic batches over this run's examples."""
        from lead_ray.data.prepare import training_data

        return training_data(self.cfg, self.data, self.store, self.queries, self.examples_file())

    # ------------------------------------------------------------------ systems

    def system(self, name: str | Path) -> System:
        """A system by name (see `RunLayout.system`); `student` is `student-best` when training
        kept one and `train.select` is best."""
        return self.layout.system(name, best=self.cfg.train.select == "best")

    def is_dual_encoder(self, system: System) -> bool:
        """Whether a system's model is a dual encoder (indexable); other kinds re-rank."""
        from lead_ray.models.build import read_meta

        if system.name in ("student", "student-init", "student-best", "student-last"):
            return True  # students are dual encoders
        if system.name in ("teacher", "teacher-init") and not system.folder.is_dir():
            return self.cfg.teacher.kind == "dual_encoder"  # not saved yet: the config says
        return (read_meta(str(system.folder)) or {}).get("kind", "dual_encoder") == "dual_encoder"

    def mining_system(self) -> System:
        """The dual encoder that mines negatives: `mine.model` (teacher: the initial teacher when
        it is a dual encoder, else the untrained student; student; or a folder)."""
        choice = self.cfg.mine.model
        if choice == "teacher":
            de = self.cfg.teacher.kind == "dual_encoder"
            return self.system("teacher-init" if de else "student-init")
        if choice == "student":
            return self.system("student-init")
        return self.system(Path(choice))

    def evaluated_systems(self) -> list[str]:
        """What the pipeline evaluates: the student before and after training, and the teacher
        (before and after, when it trained)."""
        names = ["student", "student-init"]
        if self.layout.trained_model("teacher").is_dir():
            names.append("teacher-init")
        return [*names, "teacher"]

    def encode_system(self, model: str | Path | None = None) -> str:
        """The system `lead encode` / `index` / `search` work on: `--system`, else `encode.model`
        (`student`, `teacher`, or a model folder)."""
        choice = str(model) if model is not None else self.cfg.encode.model
        if choice == "student" and not self.layout.trained_model("student").is_dir():
            raise ConfigError(
                f"encode.model=student: {self.layout.trained_model('student')} does not exist yet "
                f"(run `lead train --out {self.layout.root}` first), or pass --system FOLDER"
            )
        return choice
