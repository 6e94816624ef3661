"""Joining or starting Ray: one place for the options every verb uses."""

from __future__ import annotations

import os

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


def require_local_resources(cfg: Config, kind: str, need: float, what: str) -> None:
    """A local Ray cannot grow: refuse work that would wait for resources forever."""
    import ray

    if cfg.ray.address is not None:
        return  # an autoscaling cluster may add nodes
    have = ray.cluster_resources().get(kind, 0)
    if need > have:
        raise ConfigError(
            f"{what} need {need:g} {kind}s; this Ray has {have:g} "
            "(set ray.num_cpus, or ask for less)"
        )
