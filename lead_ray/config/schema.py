"""The config schema: one frozen pydantic section per stage, nested in `Config`.

Every field with its default and a comment is the reference for the YAML files. Nothing here
imports torch or ray, and nothing is computed at import time; Ray workers receive
`config.to_dict()` and rebuild it with `Config.from_dict`.
"""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MINILM_ALIASES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "@minilm")


class ConfigError(ValueError):
    """A config file, override or value that cannot be used; the message names where."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- models


class BuildSpec(Section):
    """A random-init BERT encoder built in code (tests, tiny configs); no download."""

    layers: int = Field(2, ge=1)
    hidden: int = Field(64, ge=8)
    heads: int = Field(2, ge=1)
    intermediate: int = Field(128, ge=8)
    max_position: int = Field(512, ge=16)
    tokenizer: str = "all-MiniLM-L6-v2"  # folder (or alias); the vocabulary size follows it
    seed: int = 0


class ModelSource(Section):
    """Where an encoder's weights come from: exactly one of `path`, `init_from`, `build`."""

    path: str | None = None  # Hugging Face folder, or the packaged MiniLM alias
    init_from: Literal["teacher"] | None = None  # copy the teacher's embeddings + lower layers
    layers: int | None = Field(None, ge=1)  # keep only the first N blocks (path or init_from)
    build: BuildSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        given = [x for x in (self.path, self.init_from, self.build) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of path, init_from, build")
        if self.build is not None and self.layers is not None:
            raise ValueError("`layers` goes inside `build` for a model built in code")
        return self


class ColBERTOptions(Section):
    """Late-interaction knobs. Defaults follow the LEAD code (docs/method.md); a colbert-ai or
    PyLate checkpoint brings its own conventions (markers, lengths, projection), which these
    settings override only where given explicitly."""

    dim: int | None = None  # linear projection of token states; None = no projection (LEAD)
    normalize: bool = True  # L2-normalise the final layer's token vectors (LEAD: yes)
    normalize_layers: bool = False  # L2-normalise intermediate layers' tokens (LEAD: no)
    query_augmentation: bool = True  # pad queries with [MASK] to max_query_length (LEAD: yes)
    attend_to_mask: bool = True  # those [MASK]s are attended (LEAD: yes; colbert-ai, PyLate: no)
    markers: bool = True  # mark queries / documents with a [Q] / [D] token
    marker_tokens: tuple[str, str] = ("[unused1]", "[unused2]")  # query, document (LEAD's)
    marker_position: Literal["replace_cls", "after_cls"] = "replace_cls"  # LEAD vs colbert-ai
    mask_punctuation: bool = False  # document punctuation is never matched (colbert-ai, PyLate)


class EncoderConfig(Section):
    # a folder, a Hugging Face Hub id `org/name[@revision]` (from its cache; HF_HUB_OFFLINE and
    # HF_TOKEN as usual), the packaged MiniLM alias, or {init_from | build | path: ...}
    model: str | ModelSource
    # "auto": what the model folder's sentence-transformers files declare, else "cls"
    pooling: Literal["auto", "cls", "mean", "max", "lasttoken"] = "auto"
    # L2-normalise pooled vectors (cosine similarity); None: as the folder declares (a
    # sentence-transformers model that ends in Normalize is cosine, else dot)
    normalize: bool | None = None
    # multiplies scores before any softmax over candidates (training, KD); None: 20 for cosine
    # (the sentence-transformers contrastive default), 1 otherwise
    scale: float | None = Field(None, gt=0)
    # text put before every query / passage; None: the folder's prompts (sentence-transformers
    # `prompts`: query; document, passage or corpus), "" for none
    query_prompt: str | None = None
    passage_prompt: str | None = None
    shared_towers: bool = True  # one backbone for queries and passages
    max_query_length: int = Field(32, ge=4)
    max_doc_length: int = Field(128, ge=8)
    tokenizer: str | None = None  # a different tokenizer than the model's own (liberal KD)

    @property
    def source(self) -> ModelSource:
        return ModelSource(path=self.model) if isinstance(self.model, str) else self.model


class TeacherConfig(EncoderConfig):
    kind: str = "dual_encoder"  # lead_ray/models/registry.py: dual_encoder, colbert, cross_encoder
    trainable: bool = True  # the paper trains the teacher jointly
    # start the kind's head (a cross-encoder's classifier, a ColBERT projection) at random when
    # the folder has none; otherwise a missing head is an error naming its tensors
    new_head: bool = False
    colbert: ColBERTOptions = ColBERTOptions()
    # a frozen dual encoder's per-layer vectors read from a feature cache (`lead cache-teacher`)
    # instead of a forward pass each step: true = the run's teacher-cache/, or a folder
    cache: bool | str | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        from lead_ray.models.registry import KINDS

        if kind not in KINDS:
            raise ValueError(f"unknown teacher kind {kind!r}; known: {', '.join(KINDS)}")
        return kind

    @model_validator(mode="after")
    def _cache_frozen(self) -> TeacherConfig:
        if self.cache not in (None, False) and (self.trainable or self.kind != "dual_encoder"):
            raise ValueError(
                "a cached teacher must be a frozen dual encoder "
                "(kind: dual_encoder, trainable: false)"
            )
        return self


class StudentConfig(EncoderConfig):
    model: str | ModelSource = ModelSource(init_from="teacher", layers=2)


# ----------------------------------------------------------------------------- method


class LossWeights(Section):
    contrastive: float = Field(1.0, ge=0)  # student CE vs the positive
    teacher: float = Field(1.0, ge=0)  # teacher CE (only while the teacher trains)
    response: float = Field(1.0, ge=0)  # KD on final scores
    layer: float = Field(1.0, ge=0)  # LEAD layer-score KD


class LeadConfig(Section):
    layers: int | Literal["all"] = 5  # K pairs; capped by the shallower model
    selection: Literal["random", "last", "skip", "depth", "map"] = "random"
    map: list[tuple[int, int]] | None = None  # explicit (student_layer, teacher_layer) pairs
    resample_every: int = Field(10, ge=1)  # optimizer steps between random draws
    temperature: float = Field(1.0, gt=0)  # divides teacher scores only (LEAD code)
    layer_temperature: float = Field(10.0, gt=0)  # tau_w of the layer re-weighting
    reweight: bool = True
    teacher_kd_grad: bool = True  # KD terms also train the teacher (LEAD code: not detached)
    weights: LossWeights = LossWeights()

    @model_validator(mode="after")
    def _map_given(self) -> LeadConfig:
        if self.selection == "map" and not self.map:
            raise ValueError("selection 'map' needs `map: [[student_layer, teacher_layer], ...]`")
        return self


# ----------------------------------------------------------------------------- training


class DeepSpeedConfig(Section):
    stage: Literal[0, 1, 2, 3] = 0  # 0 = plain DDP (no DeepSpeed)
    config: str | None = None  # a DeepSpeed JSON whose keys override the generated ones
    offload_optimizer: bool = False


class TrainConfig(Section):
    steps: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)  # queries per micro-batch per worker
    negatives: int = Field(1, ge=0)  # hard negatives per query
    in_batch: bool = True  # other queries' passages are candidates (DE/ColBERT teachers)
    gather: bool = True  # with several workers, gather candidates across workers
    # How gathered candidates carry gradients across workers. per_rank (the official LEAD code):
    # a passage gets gradient only from the loss of the worker that encoded it, and the
    # workers' gradients are averaged. global_batch: every worker's loss reaches every passage,
    # so an update is exactly the gradient of the mean loss over the global batch and does not
    # change with the worker count (one worker with W*B queries gives the same update): choose
    # it when workers come and go (autoscaling, a restart on fewer nodes).
    gradients: Literal["per_rank", "global_batch"] = "per_rank"
    # micro-batches per optimizer step: the loss of each is divided by grad_accum and their
    # gradients summed before one clipped update (the official 12-layer CE run uses 10); the
    # candidate pool stays one micro-batch (gathered over the workers)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(2e-5, gt=0)
    teacher_lr: float | None = None  # default: same as lr
    weight_decay: float = Field(0.0, ge=0)
    warmup: float = Field(0.1, ge=0)  # a fraction of steps (< 1) or a step count (>= 1)
    grad_clip: float = Field(2.0, ge=0)  # 0 disables clipping
    precision: Literal["fp32", "bf16"] = "fp32"
    seed: int = 888
    checkpoint_every: int = Field(100, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    export_every_checkpoint: bool = False  # also write a HF student folder at each checkpoint
    log_every: int = Field(1, ge=1)
    backend: Literal["local", "ray"] = "local"
    workers: int = Field(2, ge=1)
    use_gpu: bool = False
    deepspeed: DeepSpeedConfig = DeepSpeedConfig()
    max_failures: int = Field(1, ge=0)  # worker-group restarts (a lost node, a preemption)
    # custom Ray resources each Ray Train worker also asks for, e.g. {spot: 1}: the workers run
    # only on node types that declare them (cluster/aws.yaml's spot types)
    worker_resources: dict[str, float] = {}
    threads: int | None = None  # torch intra-op threads per process (None: torch default)
    # dev evaluation: every `eval_every` optimizer steps (and at the last step) the student
    # re-ranks each dev query's first-stage candidates (the mining model's top `eval_depth`, or
    # `dev_run`); None = every `checkpoint_every` steps when the run has a dev split, 0 = never
    eval_every: int | None = Field(None, ge=0)
    eval_depth: int = Field(100, ge=1)
    eval_queries: int | None = Field(None, ge=1)  # at most this many dev queries (the first)
    eval_metric: str = "nDCG@10"  # what `student-best` maximises (an ir-measures name)
    dev_run: str | None = None  # a run file with the dev queries' candidates (TREC or MS MARCO)
    early_stop: int = Field(0, ge=0)  # stop after this many evaluations without a gain; 0: never
    select: Literal["best", "last"] = "best"  # the student later stages use (with a dev split)

    @field_validator("worker_resources")
    @classmethod
    def _custom_only(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if name in ("CPU", "GPU", "memory"):
                raise ValueError(f"{name}: set by train.workers / train.use_gpu, not here")
            if amount <= 0:
                raise ValueError(f"{name}: {amount:g} must be above 0")
        return value


# ----------------------------------------------------------------------------- data


class SyntheticData(Section):
    """A seeded generated collection (tiny configs and tests): topic words shared by a query and
    its positive passage, so a model can learn something in a few steps."""

    docs: int = Field(400, ge=10)
    queries: int = Field(160, ge=4)
    test_queries: int = Field(40, ge=0)
    seed: int = 0


class QrelsPaths(Section):
    train: str | None = None
    dev: str | None = None
    test: str | None = None


class DataConfig(Section):
    beir: str | None = None  # a BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv
    corpus: str | None = None  # tsv | jsonl | parquet (overrides the BEIR corpus)
    queries: str | None = None  # tsv | jsonl | parquet (overrides the BEIR queries)
    qrels: QrelsPaths = QrelsPaths()
    examples: str | None = None  # training examples (jsonl | parquet | MS MARCO id triples)
    synthetic: SyntheticData | None = None
    train_split: str = "train"
    eval_split: str = "test"
    dev_fraction: float = Field(0.0, ge=0, lt=1)  # carve a dev split out of train (model selection)
    split_seed: int = 0  # which train queries go to dev; never tied to train.seed
    title: bool = True  # prepend the title to the passage text ("title [SEP] text")

    @model_validator(mode="after")
    def _some_source(self) -> DataConfig:
        if self.synthetic is None and self.beir is None and self.corpus is None:
            raise ValueError("give `beir`, `corpus` (+ queries/qrels) or `synthetic`")
        return self


class MineConfig(Section):
    model: Literal["teacher", "student"] | str = "teacher"
    k: int = Field(100, ge=1)  # retrieve top-k per training query
    keep: int = Field(30, ge=1)  # keep the first `keep` non-positives as negatives
    skip: int = Field(0, ge=0)  # skip the top-`skip` non-positives (likely false negatives)


class EncodeConfig(Section):
    model: Literal["student", "teacher"] | str = "student"
    batch_size: int = Field(64, ge=1)
    max_length: int | None = None  # default: the model's max_doc_length
    shard_rows: int = Field(100_000, ge=1)
    dtype: Literal["float32", "float16"] = "float32"  # how vectors are stored
    # how the encoder computes: fp32, or bf16 / fp16 autocast (GPU; where the device supports it)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    actors: int = Field(1, ge=1)  # Ray Data encoder actors
    num_gpus: float = Field(0.0, ge=0)  # per actor
    cpus_per_actor: float = Field(0.5, gt=0)
    device: str | None = None  # torch device for local encoding (default: cuda if present)
    doc_mode: Literal["firstp", "maxp"] = "firstp"
    maxp_stride: int = Field(0, ge=0)  # MaxP: token overlap between passages of a document
    maxp_passages: int = Field(4, ge=1)  # MaxP: windows kept per document (the first ones)
    threads: int | None = Field(None, ge=1)  # torch threads per encoder process/actor
    memory_limit_gb: float | None = None  # the planner refuses plans above this


class IndexConfig(Section):
    factory: str = "Flat"  # any faiss index_factory string: Flat, HNSW32, IVF4096,PQ64 ...
    metric: Literal["ip", "l2"] = "ip"
    train_sample: int = Field(100_000, ge=1)
    gpu: bool = False
    merge: bool = False  # also merge the shard indexes into one (IVF: on-disk merge)
    nprobe: int | None = None
    ef_search: int | None = None


class SearchConfig(Section):
    k: int = Field(100, ge=1)
    # a ColBERT / cross-encoder system re-ranks the top `rerank_depth` of another system's run
    first_stage: str = "student"
    rerank_depth: int = Field(100, ge=1)
    batch_size: int = Field(256, ge=1)
    split: str | None = None  # default: data.eval_split
    exact_check: bool = True  # report ANN recall@k against exact search when the index is ANN
    parallel: bool = False  # search shards in parallel Ray tasks


class EvaluateConfig(Section):
    metrics: list[str] = ["nDCG@10", "RR@10", "R@100", "AP"]
    trec_dl: bool = False  # relevance >= 2 counts for AP and recall (TREC DL convention)


class TrackConfig(Section):
    """Where training metrics go besides train/metrics.jsonl (written by rank 0 / the driver)."""

    tensorboard: bool = True  # event files in train/tensorboard (`tensorboard --logdir`)
    mlflow: bool = False
    mlflow_uri: str | None = None  # a tracking server; None: a file store in train/mlruns
    wandb: bool = False
    wandb_mode: Literal["online", "offline"] = "online"  # offline: files in train/wandb only
    project: str | None = None  # MLflow experiment / W&B project (default: the config's name)


class RayConfig(Section):
    address: str | None = None  # None: start a local Ray; "auto" or ray://host:port: join
    num_cpus: int | None = None  # local Ray only
    storage: str | None = None  # Ray Train storage path (local dir or s3://, gs://)


class Config(Section):
    name: str = "lead"
    data: DataConfig
    teacher: TeacherConfig
    student: StudentConfig = StudentConfig()
    lead: LeadConfig = LeadConfig()
    train: TrainConfig = TrainConfig()
    mine: MineConfig = MineConfig()
    encode: EncodeConfig = EncodeConfig()
    index: IndexConfig = IndexConfig()
    search: SearchConfig = SearchConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    track: TrackConfig = TrackConfig()
    ray: RayConfig = RayConfig()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON types only): what is saved next to outputs and sent to workers."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> Config:
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            from lead_ray.config.load import format_errors

            raise ConfigError(format_errors(err, source, None)) from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)
