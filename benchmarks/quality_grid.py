"""The SciFact quality grid: budgets (hyper-parameters) and cells (config overrides).

A cell is one trained student (or one teacher warm-up): a name, the teacher it learns from and
a list of `--set`-style overrides applied on top of `configs/scifact-quality.yaml`. `{seed}` in
an override is replaced by the run's seed. Methods map to loss weights exactly as in the issue:
(a) contrastive only = weights {response: 0, layer: 0}; (b) + response KD = {layer: 0};
(c) LEAD = the defaults (K = the student's depth, tau 1, tau_w 10, re-weighting, random sorted
pairs re-drawn every 10 steps).

A budget fixes the hyper-parameters every cell of a results table shares (steps, learning
rates, re-ranking depth, training backend) and which cells and seeds run by default; `--cells`
and `--seeds` pick other subsets with the same hyper-parameters, so extra cells stay comparable.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

METHODS = {
    "contrastive": ["lead.weights.response=0", "lead.weights.layer=0"],
    "response": ["lead.weights.layer=0"],
    "lead": [],
}
RANDOM_INIT = [
    "student.model={build: {layers: 2, hidden: 384, heads: 12, intermediate: 1536, seed: {seed}}}"
]
OWN_TOKENIZER = [
    "student.model={build: {layers: 2, hidden: 384, heads: 12, intermediate: 1536, "
    "seed: {seed}, tokenizer: {tokenizer}}}",
    "student.tokenizer={tokenizer}",
]
# A warm-up trains the teacher alone: only its own contrastive loss has a weight, and the
# throw-away student is a tiny random model (it receives no gradient).
WARMUP = [
    "teacher.trainable=true",
    "lead.weights.contrastive=0",
    "lead.weights.response=0",
    "lead.weights.layer=0",
    "lead.weights.teacher=1",
    "student.model={build: {layers: 1, hidden: 32, heads: 2, intermediate: 64}}",
]
TEACHER_KINDS = ("de", "colbert", "ce")
KIND_NAMES = {"de": "dual_encoder", "colbert": "colbert", "ce": "cross_encoder"}


@dataclass(frozen=True)
class Budget:
    name: str
    steps: int  # student optimizer steps
    lr: float  # student learning rate
    warmup_steps: int  # teacher warm-up optimizer steps
    warmup_lr: float
    rerank_depth: int  # ColBERT / cross-encoder teachers re-rank the DE teacher's top-k
    cells: tuple[str, ...]  # default cell patterns
    seeds: tuple[int, ...] = (1, 2, 3)
    overrides: tuple[str, ...] = ()  # applied to every cell (device, threads, backend)


BUDGETS = {
    # The core comparison on 2 CPU cores in about an hour: DE teacher (warmed up, frozen,
    # features cached), student from the teacher's lower layers, methods a/b/c, 3 seeds.
    "small": Budget(
        "small",
        steps=300,
        lr=1e-4,
        warmup_steps=100,
        warmup_lr=5e-5,
        rerank_depth=20,
        cells=("de/teacher-init/contrastive", "de/teacher-init/response", "de/teacher-init/lead"),
    ),
    # A minute-long end-to-end check of the driver's plumbing (tests): the numbers mean nothing.
    "smoke": Budget(
        "smoke",
        steps=3,
        lr=1e-4,
        warmup_steps=3,
        warmup_lr=1e-4,
        rerank_depth=5,
        cells=("de/teacher-init/contrastive", "de/teacher-init/response", "de/teacher-init/lead"),
        seeds=(1, 2),
    ),
    # The whole grid for one GPU (benchmarks/quality_gpu.sh): every teacher kind, both inits,
    # every ablation, 3 seeds, 10x the steps, ray backend with one GPU worker.
    "full": Budget(
        "full",
        steps=3000,
        lr=5e-5,
        warmup_steps=2000,
        warmup_lr=2e-5,
        rerank_depth=100,
        cells=("*",),
        overrides=(
            "train.backend=ray",
            "train.workers=1",
            "train.use_gpu=true",
            "encode.batch_size=256",
        ),
    ),
}


@dataclass(frozen=True)
class Cell:
    name: str  # "<teacher>/<student init>/<method>[-<variant>]" or "teacher/<kind>"
    teacher: str  # de | colbert | ce
    overrides: tuple[str, ...] = ()
    warmup: bool = False  # a teacher warm-up, not a student
    cached_teacher: bool = False  # the frozen DE teacher answered from its feature cache
    note: str = ""

    def settings(self, seed: int, tokenizer: str = "") -> list[str]:
        return [
            o.replace("{seed}", str(seed)).replace("{tokenizer}", tokenizer) for o in self.overrides
        ]


def _students(teacher: str) -> list[Cell]:
    cached = teacher == "de"
    return [
        Cell(f"{teacher}/{init}/{method}", teacher, tuple(start + weights), cached_teacher=cached)
        for init, start in (("teacher-init", []), ("random-init", RANDOM_INIT))  # grouped in tables
        for method, weights in METHODS.items()
    ]


ABLATIONS = [
    Cell(
        "de/teacher-init/lead-noreweight",
        "de",
        ("lead.reweight=false",),
        cached_teacher=True,
        note="re-weighting off: plain sum of the K layer KLs",
    ),
    Cell(
        "de/teacher-init/lead-last",
        "de",
        ("lead.selection=last",),
        cached_teacher=True,
        note="last K layers of each model: student (0,1) <-> teacher (4,5)",
    ),
    Cell(
        "de/teacher-init/lead-skip",  # measured as `skip` before it became the official map
        "de",
        ("lead.selection=depth",),
        cached_teacher=True,
        note="same relative depth: student (0,1) <-> teacher (2,5)",
    ),
    Cell(
        "de/teacher-init/lead-k1",
        "de",
        ("lead.layers=1",),
        cached_teacher=True,
        note="K = 1 random pair (K = all = 2 is the default for a 2-layer student)",
    ),
    # A "why" cell, not in the paper: with K = 2 = the student's depth, random pairs always put
    # the student's last block under a layer term whose target is a *random* teacher block,
    # while response KD pulls the same block toward the teacher's final scores.
    Cell(
        "de/teacher-init/lead-inner",
        "de",
        ("lead.selection=map", "lead.map=[[0, 2]]", "lead.layers=1"),
        cached_teacher=True,
        note="layer term on the student's inner block only: student 0 <-> teacher 2 (same relative "
        "depth); the last block learns from the final scores alone (response KD)",
    ),
    Cell(
        "de/teacher-init/lead-joint",
        "de",
        ("teacher.trainable=true",),
        note="teacher trained jointly (the paper's setting): live teacher, its own CE, mutual KD",
    ),
    Cell(
        "de/own-tokenizer/contrastive",
        "de",
        tuple(OWN_TOKENIZER + METHODS["contrastive"]),
        cached_teacher=True,
        note="random-init student with its own WordPiece vocabulary (trained on "
        "SciFact train), without KD",
    ),
    Cell(
        "de/own-tokenizer/response",
        "de",
        tuple(OWN_TOKENIZER + METHODS["response"]),
        cached_teacher=True,
        note="the same student with response KD only",
    ),
    Cell(
        "de/own-tokenizer/lead",
        "de",
        tuple(OWN_TOKENIZER),
        cached_teacher=True,
        note="the same student with LEAD",
    ),
    # A "why" cell for ColBERT: MaxSim over raw token states (the official layer scores) spreads
    # ~60x wider per query than the cosine final score, so every layer target is one-hot at tau 1.
    Cell(
        "colbert/teacher-init/lead-normlayers",
        "colbert",
        ("teacher.colbert.normalize_layers=true",),
        note="ColBERT layer scores from L2-normalised token states (cosine MaxSim, like its "
        "final score)",
    ),
]


# Half the teacher's depth (3 of 6 blocks), each student picked on dev: evaluated every 50 steps
# (re-ranking each dev query's top 30 from the un-tuned MiniLM) and the best step kept.
THREE_LAYERS = [
    "student.model={init_from: teacher, layers: 3}",
    "lead.layers=3",
    "train.eval_every=50",
    "train.eval_depth=30",
    "train.select=best",
]
HALF_DEPTH = [
    Cell(
        f"de/teacher-init-3l/{method}",
        "de",
        tuple(THREE_LAYERS + weights),
        cached_teacher=True,
        note="3-layer student (half the teacher), the best dev step kept",
    )  # fmt: skip
    for method, weights in METHODS.items()
]


def all_cells() -> list[Cell]:
    warmups = [
        # the cross-encoder starts a new head (the LEAD code's linear on [CLS]) on MiniLM
        Cell(
            f"teacher/{k}",
            k,
            (
                f"teacher.kind={KIND_NAMES[k]}",
                *WARMUP,
                *(["teacher.new_head=true"] if k == "ce" else []),
            ),
            warmup=True,
        )
        for k in TEACHER_KINDS
    ]
    students = [c for k in TEACHER_KINDS for c in _students(k)]
    return warmups + students + ABLATIONS + HALF_DEPTH


def select_cells(patterns: list[str] | tuple[str, ...]) -> list[Cell]:
    """Cells whose name matches any glob pattern, in grid order; the teachers they need first."""
    cells = all_cells()
    chosen = [c for c in cells if any(fnmatch.fnmatch(c.name, p) for p in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatch(c.name, p) for c in cells)]
    if unknown:
        raise SystemExit(f"no cell matches {unknown}; cells: {[c.name for c in cells]}")
    needed = {c.teacher for c in chosen}
    warm = [c for c in cells if c.warmup and c.teacher in needed and c not in chosen]
    return warm + chosen


@dataclass
class RunRecord:
    """What one (cell, seed) produced; the rows behind docs/results.md."""

    cell: str
    seed: int
    dev: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    steps: int = 0
    settings: list[str] = field(default_factory=list)  # the overrides on top of the base config
