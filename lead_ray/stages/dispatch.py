"""Run one stage, in this process or on Ray: the one place that decides where a stage runs.

`run_stage(run, "encode", system="student")` picks the stage's Ray implementation when the
config asks for it (`Stage.on_ray`) or the caller forces it (`ray=True`), starting or joining
Ray first; otherwise its local one. It runs `prepare` first when a stage needs it and it is not
complete (and `mine` before the teacher cache), skips a stamped stage whose inputs and settings
did not change, and records the wall time in `run.times`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lead_ray.stages.graph import Stage, Target, label, stage
from lead_ray.stages.run import Run

log = logging.getLogger(__name__)


def _resolve(ref: str) -> Callable[..., Any]:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def target_of(run: Run, st: Stage, system: str | Path | None, split: str | None) -> Target:
    """Fill in a stage's defaults: system `student`, split `search.split` / `data.eval_split`."""
    system = str(system or "student") if st.per_system else None
    split = (split or run.eval_split) if st.per_split else None
    return Target(system, split)


def runs_on_ray(run: Run, st: Stage, ray: bool | None) -> bool:
    return st.ray is not None and (st.on_ray(run.cfg) if ray is None else ray)


def run_stage(
    run: Run,
    name: str,
    system: str | Path | None = None,
    split: str | None = None,
    *,
    ray: bool | None = None,
) -> dict[str, Any]:
    """Run stage `name` for `system` / `split` (where it applies) and return its result.

    Args:
        system: a system name (`student`, `teacher`, ...) or a model folder.
        ray: force (True) or forbid (False) the Ray implementation; None: as the config says.
    """
    st = stage(name)
    target = target_of(run, st, system, split)
    for need in missing_needs(run, st):
        run_stage(run, need)
    check_needs(run, st, target)
    name = label(run, st, target)
    stamp = stamp_digest(run, st, target) if st.inputs is not None else None
    if stamp is not None and is_stamped(run, st, target, stamp):
        log.info("%s: unchanged since its last run, skipped", name)
        return _read_result(run, st, target)
    fn = _resolve(st.ray if runs_on_ray(run, st, ray) else st.local)
    if runs_on_ray(run, st, ray):
        from lead_ray.distributed.session import start_ray  # only here: the core stays Ray-free

        start_ray(run.cfg)
    t0 = time.perf_counter()
    result = fn(run, target)
    run.times[name] = time.perf_counter() - t0
    if stamp is not None:
        from lead_ray.storage import atomic_write_json

        atomic_write_json(
            run.layout.stamp(name), {"stage": name, "digest": stamp, "seconds": run.times[name]}
        )
    return result


def missing_needs(run: Run, st: Stage) -> list[str]:
    """The upstream stages run first when missing: `prepare` (cheap, and what every corpus stage
    reads), and `mine` (training's examples and dev candidates, the teacher cache) when this run
    mines its examples. Other needs must
    have run (their absence is a clear error from the stage itself)."""
    missing = []
    if "prepare" in st.needs and not prepared(run):
        missing.append("prepare")
    if "mine" in st.needs and run.needs_mining() and run.examples_file() is None:
        missing.append("mine")
    return missing


def check_needs(run: Run, st: Stage, target: Target) -> None:
    """ConfigError naming the verb to run when an upstream stage's outputs for this target are
    missing (the stage itself would fail later, less clearly)."""
    from lead_ray.config import ConfigError

    for need in st.needs:
        upstream = stage(need)
        if need in ("prepare", "mine") or upstream.per_system != st.per_system:
            continue  # run above when missing, or not per system (the report)
        if need == "index" and not run.is_dual_encoder(run.system(target.system)):
            continue  # a re-ranker reads its first stage's run, checked by the search itself
        t = target_of(run, upstream, target.system, target.split)
        missing = [p for p in upstream.outputs(run, t) if not _complete(p)]
        if missing:
            where = f" --system {target.system}" if target.system else ""
            raise ConfigError(
                f"{st.name} needs {need} first: {missing[0]} is missing or incomplete "
                f"(run `lead {need} CONFIG --out {run.layout.root}{where}`)"
            )


def prepared(run: Run) -> bool:
    """The corpus store and the initial models exist for this config."""
    from lead_ray.stages.steps import initial_models_current

    return initial_models_current(run) and _complete(run.layout.corpus)


def _complete(path: Path) -> bool:
    from lead_ray.storage import is_complete

    return is_complete(path) if path.is_dir() else path.is_file()


# ----------------------------------------------------------------------------- stamps


def _fingerprint(path: Path) -> str | None:
    """Content identity of an input: a file's sha256, a stage folder's manifest, a model
    folder's weights (None when missing)."""
    from lead_ray.storage import MANIFEST, fingerprint_folder, sha256_file

    if path.is_file():
        return sha256_file(path)
    if (path / MANIFEST).is_file():
        return sha256_file(path / MANIFEST)
    if path.is_dir():
        return fingerprint_folder(path)
    return None


def _setting(cfg: dict, key: str) -> Any:
    for part in key.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def stamp_digest(run: Run, st: Stage, target: Target) -> str:
    """A digest of a stamped stage's inputs (content) and settings (config values)."""
    cfg = run.cfg.to_dict()
    parts = {
        "inputs": [[str(p), _fingerprint(p)] for p in st.inputs(run, target)],
        "settings": {k: _setting(cfg, k) for k in st.settings},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def is_stamped(run: Run, st: Stage, target: Target, digest: str) -> bool:
    """The stage last ran on exactly these inputs and settings, and its outputs are all there."""
    path = run.layout.stamp(label(run, st, target))
    if not path.is_file() or json.loads(path.read_text(encoding="utf-8")).get("digest") != digest:
        return False
    return all(_complete(p) for p in st.outputs(run, target))


def _read_result(run: Run, st: Stage, target: Target) -> dict[str, Any]:
    """A skipped stamped stage's result: its JSON output (search summary, evaluation)."""
    for path in st.outputs(run, target):
        if path.suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))
    return {}


def status(run: Run, systems: list[str], split: str) -> dict[str, bool]:
    """Which stages of the run folder are complete (`lead pipeline --status`)."""
    out = {}
    for st in (stage(n) for n in ("prepare", "mine", "train")):
        out[st.name] = all(_complete(p) for p in st.outputs(run, Target()))
    for name in systems:
        for st_name in ("encode", "index", "search", "evaluate"):
            st = stage(st_name)
            t = target_of(run, st, name, split)
            if st_name in ("encode", "index") and not run.is_dual_encoder(run.system(name)):
                continue
            out[label(run, st, t)] = all(_complete(p) for p in st.outputs(run, t))
    return out
