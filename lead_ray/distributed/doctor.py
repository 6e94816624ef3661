"""`lead doctor`: what this machine or Ray cluster offers, what a config needs, and a verdict.

Facts are plain data: per node its CPUs, GPUs and memory, and the software a run depends on
(torch + CUDA + bf16, the faiss build, DeepSpeed and its C++ ops, read the way `ds_report`
reads them, without building anything). On a cluster the software is probed on every live
node by a zero-CPU Ray task pinned to it. `check` compares a config's needs with the facts; it
is pure, so it is tested on facts written by hand as well as on this machine's.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from lead_ray.config import Config

DS_JIT_SECONDS = {"deepspeed_shm_comm": 35, "cpu_adam": 45, "fused_adam": 47}  # measured, cold


@dataclass
class Node:
    host: str
    cpus: float
    gpus: float
    memory_gb: float
    software: dict[str, Any] = field(default_factory=dict)  # probe_software() on that node
    custom: dict[str, float] = field(default_factory=dict)  # custom Ray resources, e.g. spot


@dataclass
class Facts:
    ray: str  # Ray version of this process
    address: str  # "this machine (no Ray started)" or the cluster's GCS address
    nodes: list[Node]
    growth: dict[str, Any] | None = None  # a cluster's autoscaler (session.Growth as a dict)

    @property
    def cpus(self) -> float:
        return sum(n.cpus for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n.gpus for n in self.nodes)

    def total(self, kind: str) -> float:
        """The cluster's total of Ray resource `kind` (CPU, GPU or a custom one)."""
        if kind in ("CPU", "GPU"):
            return self.cpus if kind == "CPU" else self.gpus
        return sum(n.custom.get(kind, 0.0) for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cpus": self.cpus, "gpus": self.gpus}


@dataclass
class Check:
    ok: bool | None  # True ok, False blocks the run, None a warning
    text: str


# ----------------------------------------------------------------------------- facts


def _cpu_flags() -> set[str]:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    return set()


def _torch_extensions_root() -> str:
    """Where torch caches JIT-built extensions (torch's own rule, without creating folders)."""
    import torch
    from torch.utils.cpp_extension import get_default_build_root

    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return os.environ["TORCH_EXTENSIONS_DIR"]
    v = torch.version
    accel = (
        f"rocm{v.hip.replace('.', '')}"
        if v.hip
        else (f"cu{v.cuda.replace('.', '')}" if v.cuda else "cpu")
    )
    py = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
    return os.path.join(get_default_build_root(), f"{py}_{accel}")


def _deepspeed_ops() -> dict[str, str]:
    """op -> installed | jit-cached | jit | incompatible, for this node's accelerator
    (`ds_report`'s logic; nothing is built)."""
    from deepspeed.accelerator import get_accelerator
    from deepspeed.git_version_info import accelerator_name, installed_ops
    from deepspeed.ops.op_builder.all_ops import ALL_OPS
    from deepspeed.ops.op_builder.builder import probe_is_compatible

    root = _torch_extensions_root()
    ops = {}
    for name, builder in ALL_OPS.items():
        if name == "deepspeed_not_implemented":
            continue
        if installed_ops.get(name) and accelerator_name == get_accelerator()._name:
            ops[name] = "installed"
        elif not probe_is_compatible(builder, False):
            ops[name] = "incompatible"
        else:
            build = os.path.join(root, builder.name)
            cached = os.path.isdir(build) and any(f.endswith(".so") for f in os.listdir(build))
            ops[name] = "jit-cached" if cached else "jit"
    return ops


def probe_software() -> dict[str, Any]:
    """The software facts of the node this runs on; imports only, never builds or downloads."""
    import torch

    sw: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "cuda_gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }
    sw["gpu_names"] = [torch.cuda.get_device_name(i) for i in range(sw["cuda_gpus"])]
    if sw["cuda_gpus"]:
        sw["bf16"], sw["bf16_native"] = (
            torch.cuda.is_bf16_supported(),
            torch.cuda.is_bf16_supported(),
        )
    else:  # torch runs bf16 on any CPU; only AVX512-BF16 / AMX make it fast
        sw["bf16"], sw["bf16_native"] = True, bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())
    try:
        import faiss
    except ImportError:
        sw.update(faiss=None, faiss_gpu=False, faiss_gpus=0)
    else:
        gpu_build = hasattr(faiss, "StandardGpuResources")  # only faiss-gpu builds have it
        sw.update(
            faiss=faiss.__version__,
            faiss_gpu=gpu_build,
            faiss_gpus=faiss.get_num_gpus() if gpu_build else 0,
        )
    # DeepSpeed's logger writes to stdout; keep stdout for the report
    with contextlib.redirect_stdout(sys.stderr):
        try:
            import deepspeed
        except ImportError:
            sw.update(deepspeed=None, ds_accelerator=None, ds_ops={})
        else:
            from deepspeed.accelerator import get_accelerator

            sw.update(
                deepspeed=deepspeed.__version__,
                ds_accelerator=get_accelerator()._name,
                ds_ops=_deepspeed_ops(),
            )
    return sw


def local_facts() -> Facts:
    """This machine, without starting Ray."""
    import ray

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    sw = probe_software()
    node = Node(platform.node(), float(cpus or 1), float(sw["cuda_gpus"]), round(memory, 1), sw)
    return Facts(ray.__version__, "this machine (no Ray started)", [node])


STANDARD = ("CPU", "GPU", "memory", "object_store_memory")  # Ray's own node resources


def cluster_facts() -> Facts:
    """The connected Ray cluster (the caller ran `ray.init`): every live node, probed in place."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    alive = [n for n in ray.nodes() if n["Alive"]]
    here = ray.get_runtime_context().get_node_id()
    probe = ray.remote(num_cpus=0)(probe_software)
    refs = {
        n["NodeID"]: probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote()
        for n in alive
        if n["NodeID"] != here
    }
    found = dict(zip(refs, ray.get(list(refs.values())), strict=True))
    if any(n["NodeID"] == here for n in alive):  # this driver's node: no task needed
        found[here] = probe_software()
    nodes = []
    for n in alive:
        sw = found[n["NodeID"]]
        res = n["Resources"]
        nodes.append(
            Node(
                n["NodeManagerAddress"],
                res.get("CPU", 0.0),
                res.get("GPU", 0.0),
                round(res.get("memory", 0.0) / 2**30, 1),
                sw,
                {k: v for k, v in res.items() if k not in STANDARD and ":" not in k},
            )
        )
    from lead_ray.distributed.session import growth

    gcs = ray.get_runtime_context().gcs_address
    return Facts(ray.__version__, gcs, nodes, asdict(growth()))


# ----------------------------------------------------------------------------- needs and verdict


RESOURCE_STAGES = ("train", "encode", "index", "search")  # what asks Ray for CPUs / GPUs
# the resource-using stages each verb runs (`lead submit --verb` and `lead doctor --verb` take
# the same verbs); a verb not named runs none of them at scale (prepare, report, doctor)
VERB_STAGES = {"mine": ("encode",), "cache-teacher": ("train",), "rerank": ("search",),
               "pipeline": RESOURCE_STAGES, None: RESOURCE_STAGES}  # fmt: skip


def stages_for(verb: str | None) -> tuple[str, ...]:
    """The resource-using stages a verb runs (all of them for `pipeline` or no verb)."""
    if verb in RESOURCE_STAGES:
        return (verb,)
    return VERB_STAGES.get(verb, ())


def needs(cfg: Config, verb: str | None = None) -> dict[str, dict[str, float]]:
    """Stage -> the CPUs and GPUs it asks Ray (or this process) for at once."""
    t, e = cfg.train, cfg.encode
    workers = t.workers if t.backend == "ray" else 1
    custom = {k: v * workers for k, v in t.worker_resources.items()} if t.backend == "ray" else {}
    table = {
        "train": {"cpus": float(workers), "gpus": float(workers if t.use_gpu else 0), **custom},
        "encode": {"cpus": e.actors * e.cpus_per_actor, "gpus": e.actors * e.num_gpus},
        "index": {"cpus": 0.5, "gpus": 1.0 if cfg.index.gpu else 0.0},
        "search": {"cpus": 0.5, "gpus": 0.0},
    }
    return {s: table[s] for s in stages_for(verb)}


def _software_checks(
    cfg: Config, stages: tuple[str, ...], sws: list[dict[str, Any]]
) -> list[Check]:
    t = cfg.train
    checks = []
    if "train" in stages or "encode" in stages:
        wants_gpu = ("train" in stages and t.use_gpu) or (
            "encode" in stages and cfg.encode.num_gpus > 0
        )
        if wants_gpu and not any(sw["cuda"] for sw in sws):
            checks.append(
                Check(
                    False,
                    "GPUs are requested (train.use_gpu / encode.num_gpus) but "
                    "no node has a CUDA build of torch with a visible GPU",
                )
            )
    if "train" in stages and t.precision == "bf16":
        gpu_sws = [sw for sw in sws if sw["cuda"]]
        if t.use_gpu and gpu_sws and not all(sw["bf16"] for sw in gpu_sws):
            checks.append(
                Check(False, "train.precision=bf16 but a GPU here lacks bf16 (needs Ampere+)")
            )
        elif t.use_gpu and gpu_sws:
            checks.append(Check(True, "bf16 supported by the GPUs"))
        elif not t.use_gpu and not all(sw["bf16_native"] for sw in sws):
            checks.append(
                Check(
                    None,
                    "bf16 on this CPU is emulated (no AVX512-BF16/AMX): it runs, slower than fp32",
                )
            )
        elif not t.use_gpu:
            checks.append(Check(True, "bf16 native on the CPUs"))
    if "train" in stages and t.deepspeed.stage > 0:
        checks += _deepspeed_checks(cfg, sws)
    if "index" in stages and cfg.index.gpu:
        if not all(sw["faiss_gpu"] for sw in sws):
            checks.append(
                Check(
                    False,
                    "index.gpu=true but faiss is a CPU build here "
                    "(install the `gpu` extra, faiss-gpu, instead of faiss-cpu)",
                )
            )
        elif not all(sw["faiss_gpus"] for sw in sws):
            checks.append(Check(False, "index.gpu=true: faiss-gpu is installed but sees no GPU"))
        else:
            checks.append(Check(True, "faiss-gpu sees a GPU"))
    return checks


def _deepspeed_checks(cfg: Config, sws: list[dict[str, Any]]) -> list[Check]:
    if not all(sw["deepspeed"] for sw in sws):
        return [
            Check(
                False,
                f"train.deepspeed.stage={cfg.train.deepspeed.stage} but DeepSpeed is not installed",
            )
        ]
    versions = sorted({sw["deepspeed"] for sw in sws})
    checks = [
        Check(True, f"DeepSpeed {', '.join(versions)} for ZeRO stage {cfg.train.deepspeed.stage}")
    ]
    ops = ["cpu_adam"] if cfg.train.deepspeed.offload_optimizer else []
    if not cfg.train.use_gpu and any(sw["ds_accelerator"] == "cpu" for sw in sws):
        ops.append("deepspeed_shm_comm")  # DeepSpeed on CPU builds it on every initialize
    for op in ops:
        states = {sw["ds_ops"].get(op, "missing") for sw in sws}
        if states & {"incompatible", "missing"}:
            checks.append(
                Check(False, f"DeepSpeed op {op} cannot be built here ({sorted(states)})")
            )
        elif "jit" in states:
            checks.append(
                Check(
                    None,
                    f"DeepSpeed op {op} will be JIT-built on first use "
                    f"(~{DS_JIT_SECONDS.get(op, 40)} s, cached afterwards)",
                )
            )
        else:
            checks.append(Check(True, f"DeepSpeed op {op} ready ({'/'.join(sorted(states))})"))
    return checks


def check(
    cfg: Config, facts: Facts, *, verb: str | None = None, cluster: bool = False
) -> list[Check]:
    """The verdict lines for running `verb` (default: the whole pipeline) of `cfg` on `facts`.

    Resource shortfalls block a run on one machine and on a cluster without an autoscaler, or
    beyond what the autoscaler's node types can ever add; within those they are warnings (the
    autoscaler adds nodes when the run asks for them).
    """
    from lead_ray.distributed.session import Growth

    stages = stages_for(verb)
    checks = []
    growth = Growth(**facts.growth) if cluster and facts.growth else Growth(None)
    for stage, need in needs(cfg, verb).items():
        for key, amount in need.items():
            kind = {"cpus": "CPU", "gpus": "GPU"}.get(key, key)
            if amount <= (have := facts.total(kind)):
                continue
            text = f"{stage} needs {amount:g} {kind} at once, {have:g} available"
            reach = growth.reachable(kind, have) if cluster else have
            if reach is not None and amount > reach:
                why = "" if not cluster else (
                    f"; the autoscaler's node types reach at most {reach:g}: never met"
                    if growth.autoscaler else " and the cluster has no autoscaler"
                )  # fmt: skip
                checks.append(Check(False, text + why))
            else:
                limit = "" if reach is None else f", up to {reach:g}"
                checks.append(Check(None, f"{text} now (the autoscaler adds nodes{limit})"))
    if cluster and "train" in stages and cfg.train.backend == "ray":
        checks += _restart_checks(cfg, facts, growth)
    gpu_nodes = [n.software for n in facts.nodes if n.gpus > 0 and n.software]
    sws = gpu_nodes or [n.software for n in facts.nodes if n.software]
    return checks + _software_checks(cfg, stages, sws)


def _restart_checks(cfg: Config, facts: Facts, growth) -> list[Check]:
    """Can Ray Train restart a cluster run that lost a node: checkpoints where every node finds
    them, and restarts enough for the spot / preemptible node types the autoscaler may use."""
    t, checks = cfg.train, []
    if cfg.ray.storage is None and (len(facts.nodes) > 1 or growth.types):
        checks.append(Check(None, (
            "ray.storage is unset: checkpoints go under --out, which every training node must "
            "see at the same path (a shared mount); set ray.storage=s3://... or gs://... so a "
            "worker group restarted on other nodes finds them"
        )))  # fmt: skip
    spot = sorted(name for name, nt in growth.types.items() if nt.get("preemptible"))
    if spot:
        text = (
            f"node types {', '.join(spot)} are spot/preemptible: each preemption restarts the "
            f"workers from the last checkpoint (every {t.checkpoint_every} steps); "
            f"train.max_failures={t.max_failures} allows {t.max_failures}"
        )
        checks.append(Check(True, text) if t.max_failures >= 3 else Check(None, text + (
            " (set train.max_failures=10 or more for spot workers)"
        )))  # fmt: skip
    return checks


def verdict(checks: list[Check]) -> str:
    if any(c.ok is False for c in checks):
        return "NOT READY"
    return "READY (with warnings)" if any(c.ok is None for c in checks) else "READY"


def format_report(
    facts: Facts,
    checks: list[Check] | None = None,
    config_name: str = "",
    need: dict[str, dict[str, float]] | None = None,
) -> str:
    """The human-readable report `lead doctor` prints (`need`: `needs(cfg)`)."""
    lines = [
        f"Ray {facts.ray} at {facts.address}",
        f"nodes: {len(facts.nodes)}   CPUs: {facts.cpus:g}   GPUs: {facts.gpus:g}",
    ]
    if facts.growth is not None:
        g = facts.growth
        if g["autoscaler"] is None:
            lines.append("autoscaler: unknown here (not on the head)")
        elif not g["autoscaler"]:
            lines.append("autoscaler: none (the cluster keeps these nodes)")
        else:
            cap = "" if g["max_workers"] is None else f" (at most {g['max_workers']} workers)"
            lines.append(f"autoscaler: on{cap}")
            for name, t in g["types"].items():
                res = ", ".join(f"{v:g} {k}" for k, v in t["resources"].items())
                spot = ", spot/preemptible" if t.get("preemptible") else ""
                lines.append(f"  {name}: {res}; {t['min_workers']}-{t['max_workers']} nodes{spot}")
    for n in facts.nodes:
        sw = n.software
        lines.append(f"  {n.host}: {n.cpus:g} CPU, {n.gpus:g} GPU, {n.memory_gb:g} GiB")
        if not sw:
            continue
        gpus = f" ({', '.join(sw['gpu_names'])})" if sw["gpu_names"] else ""
        bf16 = "native" if sw["bf16_native"] else ("emulated" if sw["bf16"] else "no")
        faiss = (
            "none"
            if not sw["faiss"]
            else (
                f"{sw['faiss']} "
                f"{'gpu, ' + str(sw['faiss_gpus']) + ' GPUs' if sw['faiss_gpu'] else 'cpu'}"
            )
        )
        lines.append(f"    torch {sw['torch']}  CUDA {sw['cuda'] or 'none'}{gpus}  bf16 {bf16}")
        lines.append(
            f"    faiss {faiss}  DeepSpeed {sw['deepspeed'] or 'none'}"
            + (f" ({sw['ds_accelerator']})" if sw["deepspeed"] else "")
        )
        if sw["ds_ops"]:
            lines.append("    ops: " + ", ".join(f"{k}={v}" for k, v in sw["ds_ops"].items()))
    if checks is not None:
        lines.append(f"config {config_name}:".rstrip())
        if need:
            lines.append(
                "  needs at once: "
                + "; ".join(
                    f"{stage} {n['cpus']:g} CPU + {n['gpus']:g} GPU" for stage, n in need.items()
                )
            )
        marks = {True: "ok  ", False: "FAIL", None: "warn"}
        lines += [f"  [{marks[c.ok]}] {c.text}" for c in checks] or [
            "  [ok  ] nothing special needed"
        ]
        lines.append(f"verdict: {verdict(checks)}")
    return "\n".join(lines)
