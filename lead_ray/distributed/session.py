"""Joining or starting Ray: one place for the options every verb uses."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lead_ray.config import Config, ConfigError


def start_ray(cfg: Config) -> bool:
    """Join `ray.address`, or start a local Ray (no dashboard); returns True when this call
    started it. A Ray the caller already initialised (a test session, a joined cluster) is kept."""
    import ray

    # Ray Train V2 polls workers every 2 s by default, and every report() waits for a poll.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    if ray.is_initialized():
        return False
    local = cfg.ray.address is None
    ray.init(
        address=cfg.ray.address,
        num_cpus=cfg.ray.num_cpus if local else None,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
    )
    return True


@dataclass
class Growth:
    """How far the connected Ray can grow.

    `types`: the autoscaler's worker node types {name: {"resources", "min_workers",
    "max_workers", "preemptible"}} when its config is readable here; empty when unknown.
    `autoscaler`: True when an autoscaler with a config runs, False when the head's monitor runs
    without one (the cluster keeps the nodes it has), None when this process is not on the head
    (a Ray client) and cannot tell. `lead submit` jobs and `lead doctor --address http://...`
    run on the head.
    """

    autoscaler: bool | None
    types: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_workers: int | None = None  # the config's cluster-wide cap

    def reachable(self, kind: str, now: float) -> float | None:
        """The most of resource `kind` the cluster can ever hold (None: unknown, unbounded)."""
        if self.autoscaler is False:
            return now
        if not self.types:
            return None
        per_type = sorted(
            ((float(t.get("resources", {}).get(kind, 0)), int(t.get("max_workers", 0)))
             for t in self.types.values()),
            reverse=True,
        )  # fmt: skip
        budget, total = self.max_workers, 0.0
        for size, count in per_type:  # the largest nodes first, within the cluster's cap
            n = count if budget is None else min(count, budget)
            total += size * n
            budget = None if budget is None else budget - n
        return now + total  # the nodes up now (the head's included) stay


def autoscaler_config_path(gcs_address: str) -> Path | None | bool:
    """The autoscaling config of the autoscaler serving `gcs_address`, read from its monitor
    process's command line: a path, False when the monitor runs without one, None when no
    such process runs here (not the head)."""
    import psutil

    port = gcs_address.rsplit(":", 1)[-1]
    for proc in psutil.process_iter(["cmdline"]):
        args = proc.info.get("cmdline") or []
        if not any(a.endswith("autoscaler/_private/monitor.py") for a in args):
            continue
        if not any(a.startswith("--gcs-address=") and a.endswith(f":{port}") for a in args):
            continue
        for a in args:
            if a.startswith("--autoscaling-config="):
                return Path(a.split("=", 1)[1])
        return False
    return None


def preemptible(node_config: dict[str, Any]) -> bool:
    """Whether a launcher node type's instances may be taken back by the cloud at any time: AWS
    spot (`InstanceMarketOptions.MarketType: spot`), GCP Spot or preemptible VMs (`scheduling`:
    `provisioningModel: SPOT` or `preemptible: true`, a mapping or a list of them), Azure Spot
    (`azure_arm_parameters.priority: Spot`).

    >>> preemptible({"InstanceMarketOptions": {"MarketType": "spot"}})
    True
    >>> preemptible({"scheduling": [{"onHostMaintenance": "TERMINATE"}, {"preemptible": True}]})
    True
    >>> preemptible({"InstanceType": "g5.2xlarge"})
    False
    """
    market = (node_config.get("InstanceMarketOptions") or {}).get("MarketType", "")
    scheduling = node_config.get("scheduling") or {}
    merged: dict[str, Any] = {}
    for part in scheduling if isinstance(scheduling, list) else [scheduling]:
        merged.update(part or {})
    azure = (node_config.get("azure_arm_parameters") or {}).get("priority", "")
    return (
        str(market).lower() == "spot"
        or merged.get("preemptible") is True
        or str(merged.get("provisioningModel", "")).upper() == "SPOT"
        or str(azure).lower() == "spot"
    )


def growth() -> Growth:
    """The connected Ray's autoscaler (the caller ran `ray.init`): its worker node types and
    limits, read on the head from the config its monitor was started with (`ray start
    --autoscaling-config`; `ray up` heads use `~/ray_bootstrap_config.yaml`)."""
    import ray

    path = autoscaler_config_path(ray.get_runtime_context().gcs_address)
    if not path:
        return Growth(None if path is None else False)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}  # JSON is YAML
    except (OSError, yaml.YAMLError):
        return Growth(True)  # an autoscaler runs; what it may add is unknown
    head = config.get("head_node_type")
    types = {
        name: {
            "resources": dict(t.get("resources") or {}),
            "min_workers": int(t.get("min_workers", 0)),
            "max_workers": int(t.get("max_workers", 0)),
            "preemptible": preemptible(t.get("node_config") or {}),
        }
        for name, t in (config.get("available_node_types") or {}).items()
        if name != head
    }
    cap = config.get("max_workers")
    return Growth(True, types, None if cap is None else int(cap))


def require_resources(cfg: Config, kind: str, need: float, what: str) -> None:
    """Refuse work that would wait for resources forever: more than a local Ray or a cluster
    without an autoscaler has, or more than the autoscaler's node types can ever add. An
    autoscaler whose limits are not readable here gets the benefit of the doubt."""
    import ray

    have = ray.cluster_resources().get(kind, 0)
    if need <= have:
        return
    if cfg.ray.address is None and not os.environ.get("RAY_ADDRESS"):
        raise ConfigError(
            f"{what} need {need:g} {kind}s; this Ray has {have:g} "
            "(set ray.num_cpus, or ask for less)"
        )
    g = growth()
    reach = g.reachable(kind, have)
    if reach is not None and need > reach:
        raise ConfigError(
            f"{what} need {need:g} {kind}s; this cluster has {have:g} and "
            + (f"its autoscaler can reach {reach:g}" if g.autoscaler else "no autoscaler")
            + " (ask for less, or add node types / raise max_workers in the cluster config)"
        )
