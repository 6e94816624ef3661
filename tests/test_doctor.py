"""`lead doctor`: facts of this machine and of a Ray cluster, needs of a config, the verdict."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lead_ray.cli.main import app
from lead_ray.config import load_config
from lead_ray.distributed import doctor as dr

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
runner = CliRunner()


def software(**kw):
    """Software facts as `probe_software` reports them, for a node described by hand."""
    sw = {
        "python": "3.11",
        "torch": "2.13.0",
        "cuda": None,
        "cuda_gpus": 0,
        "gpu_names": [],
        "bf16": True,
        "bf16_native": False,
        "faiss": "1.15.1",
        "faiss_gpu": False,
        "faiss_gpus": 0,
        "deepspeed": "0.19.8",
        "ds_accelerator": "cpu",
        "ds_ops": {"cpu_adam": "jit", "deepspeed_shm_comm": "jit-cached"},
    }
    return {**sw, **kw}


def gpu_cluster() -> dr.Facts:
    gpu_sw = software(
        cuda="12.8",
        cuda_gpus=8,
        gpu_names=["H100"] * 8,
        bf16_native=True,
        faiss_gpu=True,
        faiss_gpus=8,
        ds_accelerator="cuda",
        ds_ops={"cpu_adam": "jit", "fused_adam": "jit"},
    )
    return dr.Facts(
        "2.60.0",
        "10.0.0.1:6379",
        [dr.Node("head", 8, 0, 32, software()), dr.Node("w1", 32, 8, 512, gpu_sw)],
    )


def laptop() -> dr.Facts:
    return dr.Facts("2.60.0", "this machine", [dr.Node("laptop", 2, 0, 24, software())])


def big_gpu_config():
    return load_config(
        TINY,
        [
            "train.backend=ray",
            "train.workers=4",
            "train.use_gpu=true",
            "train.precision=bf16",
            "train.deepspeed.stage=2",
            "index.gpu=true",
            "encode.actors=8",
            "encode.num_gpus=1",
            "ray.storage=s3://bucket/ray",  # checkpoints every node sees
        ],
    )


def test_this_machine_facts_match_the_installed_stack():
    import faiss
    import ray
    import torch

    facts = dr.local_facts()
    (node,) = facts.nodes
    assert facts.ray == ray.__version__
    assert node.cpus == len(os.sched_getaffinity(0))
    sw = node.software
    assert sw["torch"] == torch.__version__
    assert sw["faiss"] == faiss.__version__
    assert sw["faiss_gpu"] == hasattr(faiss, "StandardGpuResources")
    assert sw["cuda_gpus"] == torch.cuda.device_count() == node.gpus
    from deepspeed.ops.op_builder.all_ops import ALL_OPS

    assert set(sw["ds_ops"]) == set(ALL_OPS) - {"deepspeed_not_implemented"}
    assert set(sw["ds_ops"].values()) <= {"installed", "jit-cached", "jit", "incompatible"}


def test_gpu_config_is_ready_on_a_gpu_cluster():
    checks = dr.check(big_gpu_config(), gpu_cluster(), cluster=True)
    assert dr.verdict(checks) == "READY"
    assert not [c for c in checks if c.ok is False]
    assert any("faiss-gpu sees a GPU" in c.text for c in checks)
    assert any(c.ok and c.text == "bf16 supported by the GPUs" for c in checks)


def test_bf16_on_an_old_gpu_blocks_the_run():
    old = software(cuda="12.8", cuda_gpus=4, gpu_names=["V100"] * 4, bf16=False, bf16_native=False)
    facts = dr.Facts("2.60.0", "x", [dr.Node("v100", 32, 4, 200, old)])
    cfg = load_config(TINY, ["train.precision=bf16", "train.use_gpu=true"])
    assert any(c.ok is False and "lacks bf16" in c.text for c in dr.check(cfg, facts, verb="train"))
    cpu = load_config(TINY, ["train.precision=bf16"])  # on this laptop's CPU: runs, slowly
    (warn,) = [c for c in dr.check(cpu, laptop(), verb="train") if "bf16" in c.text]
    assert warn.ok is None and "emulated" in warn.text


def test_gpu_config_is_not_ready_on_a_laptop():
    checks = dr.check(big_gpu_config(), laptop())
    failed = "\n".join(c.text for c in checks if c.ok is False)
    assert dr.verdict(checks) == "NOT READY"
    assert "train needs 4 GPU at once, 0 available" in failed
    assert "encode needs 8 GPU at once, 0 available" in failed
    assert "no node has a CUDA build of torch" in failed
    assert "faiss is a CPU build" in failed


def test_shortfall_on_a_cluster_is_a_warning_the_autoscaler_can_fix():
    cfg = load_config(TINY, ["train.backend=ray", "train.workers=64"])
    checks = dr.check(cfg, gpu_cluster(), verb="train", cluster=True)
    (short,) = [c for c in checks if "needs" in c.text]
    assert short.ok is None and "64 CPU" in short.text and "autoscaler" in short.text
    assert dr.verdict(dr.check(cfg, gpu_cluster(), verb="train", cluster=False)) == "NOT READY"


def _with_growth(facts: dr.Facts, autoscaler, max_gpu_nodes: int = 2) -> dr.Facts:
    gpu8 = {"resources": {"CPU": 32, "GPU": 8}, "min_workers": 0, "max_workers": max_gpu_nodes}
    facts.growth = {"autoscaler": autoscaler, "types": {"gpu8": gpu8} if autoscaler else {},
                    "max_workers": max_gpu_nodes}  # fmt: skip
    return facts


def test_autoscaler_limits_tell_waiting_from_never():
    """8 GPUs up now, a node type of 8 GPUs with at most 2 more nodes: 16 GPU workers wait for
    the autoscaler, 32 can never run; without an autoscaler even 16 cannot."""
    gpu = ["train.backend=ray", "train.use_gpu=true"]
    wait = load_config(TINY, [*gpu, "train.workers=16"])
    never = load_config(TINY, [*gpu, "train.workers=32"])
    (short,) = [c for c in dr.check(wait, _with_growth(gpu_cluster(), True), verb="train",
                                    cluster=True) if "GPU at once" in c.text]  # fmt: skip
    assert short.ok is None and "up to 24" in short.text
    checks = dr.check(never, _with_growth(gpu_cluster(), True), verb="train", cluster=True)
    (short,) = [c for c in checks if "GPU at once" in c.text]
    assert short.ok is False and "reach at most 24: never met" in short.text
    static = dr.check(wait, _with_growth(gpu_cluster(), False), verb="train", cluster=True)
    assert [c.text for c in static if c.ok is False and "no autoscaler" in c.text]
    report = dr.format_report(_with_growth(gpu_cluster(), True), checks, "tiny")
    assert "autoscaler: on (at most 2 workers)" in report and "gpu8: 32 CPU, 8 GPU; 0-2" in report


def test_reachable_resources_respect_the_cluster_cap():
    from lead_ray.distributed.session import Growth

    types = {
        "big": {"resources": {"CPU": 4}, "min_workers": 0, "max_workers": 5},
        "small": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 10},
    }
    assert Growth(True, types, max_workers=6).reachable("CPU", 2) == 2 + 5 * 4 + 1 * 1
    assert Growth(True, types).reachable("CPU", 0) == 30
    assert Growth(True, types).reachable("GPU", 0) == 0
    assert Growth(False).reachable("CPU", 3) == 3
    assert Growth(None).reachable("CPU", 3) is None and Growth(True).reachable("CPU", 3) is None


def test_verb_limits_the_check_to_its_stage():
    cfg = load_config(TINY, ["index.gpu=true"])
    assert dr.verdict(dr.check(cfg, laptop(), verb="train")) == "READY"
    assert dr.verdict(dr.check(cfg, laptop(), verb="index")) == "NOT READY"


@pytest.mark.parametrize(
    ("ops", "ok"),
    [
        ({"cpu_adam": "jit-cached", "deepspeed_shm_comm": "jit-cached"}, True),
        ({"cpu_adam": "jit", "deepspeed_shm_comm": "jit-cached"}, None),
        ({"cpu_adam": "incompatible", "deepspeed_shm_comm": "jit"}, False),
    ],
)
def test_deepspeed_offload_needs_cpu_adam(ops, ok):
    cfg = load_config(TINY, ["train.deepspeed.stage=3", "train.deepspeed.offload_optimizer=true"])
    facts = dr.Facts("2.60.0", "x", [dr.Node("n", 8, 0, 24, software(ds_ops=ops))])
    (adam,) = [c for c in dr.check(cfg, facts, verb="train") if "cpu_adam" in c.text]
    assert adam.ok is ok


def test_missing_deepspeed_blocks_a_zero_config():
    cfg = load_config(TINY, ["train.deepspeed.stage=2"])
    facts = dr.Facts("2.60.0", "x", [dr.Node("n", 8, 0, 24, software(deepspeed=None, ds_ops={}))])
    assert any(c.ok is False and "not installed" in c.text for c in dr.check(cfg, facts))


@pytest.mark.ray
def test_cluster_facts_count_the_connected_cluster(ray_local):
    facts = dr.cluster_facts()
    assert len(facts.nodes) == len([n for n in ray_local.nodes() if n["Alive"]]) == 1
    assert facts.cpus == ray_local.cluster_resources()["CPU"]
    assert facts.address == ray_local.get_runtime_context().gcs_address
    assert facts.nodes[0].software["torch"]


def test_cli_json_and_exit_codes():
    ok = runner.invoke(app, ["doctor", str(TINY), "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["verdict"] == "READY" and data["cpus"] == len(os.sched_getaffinity(0))
    assert data["needs"]["train"] == {"cpus": 1.0, "gpus": 0.0}  # tiny.yaml: local backend
    assert data["needs"]["encode"] == {"cpus": 0.5, "gpus": 0.0}  # 1 actor x 0.5 CPU
    bad = runner.invoke(app, ["doctor", str(TINY), "--set", "index.gpu=true"])
    assert bad.exit_code == 1
    assert "[FAIL] index.gpu=true but faiss is a CPU build" in bad.stdout
    assert "verdict: NOT READY" in bad.stdout
    assert (
        "needs at once: train 1 CPU + 0 GPU; encode 0.5 CPU + 0 GPU; index 0.5 CPU + 1 GPU"
        in bad.stdout
    )


def test_unreachable_cluster_is_one_clear_line():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    res = runner.invoke(app, ["doctor", "--address", f"127.0.0.1:{port}"])
    assert res.exit_code == 2
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in res.output


def test_spot_node_types_ask_for_restarts_and_shared_checkpoints():
    """An autoscaler with a spot GPU type: a Ray training run is warned that checkpoints under
    --out need a shared mount (ray.storage unset) and that one restart is too few; with
    ray.storage and train.max_failures=10 both checks pass. A custom resource only the spot
    type declares is reachable through it, and never met without it."""
    spot = {"resources": {"CPU": 32, "GPU": 8, "spot": 8}, "min_workers": 0, "max_workers": 2,
            "preemptible": True}  # fmt: skip
    facts = gpu_cluster()
    facts.growth = {"autoscaler": True, "types": {"gpu8-spot": spot}, "max_workers": 2}
    ray_gpu = ["train.backend=ray", "train.use_gpu=true", "train.workers=8"]
    checks = dr.check(load_config(TINY, ray_gpu), facts, verb="train", cluster=True)
    warned = [c.text for c in checks if c.ok is None]
    assert any("ray.storage is unset" in t for t in warned)
    assert any("gpu8-spot are spot/preemptible" in t and "max_failures=1 allows 1" in t
               for t in warned)  # fmt: skip
    ready = load_config(TINY, [*ray_gpu, "ray.storage=s3://b/ray", "train.max_failures=10",
                               "train.worker_resources={spot: 1}"])  # fmt: skip
    checks = dr.check(ready, facts, verb="train", cluster=True)
    assert dr.verdict(checks) == "READY (with warnings)", checks  # 8 spot to be added
    assert any(c.ok and "max_failures=10 allows 10" in c.text for c in checks)
    (short,) = [c for c in checks if "spot at once" in c.text]
    assert short.ok is None and "up to 16" in short.text
    facts.growth["types"]["gpu8-spot"]["resources"].pop("spot")
    checks = dr.check(ready, facts, verb="train", cluster=True)
    assert any(c.ok is False and "8 spot at once" in c.text and "never met" in c.text
               for c in checks)  # fmt: skip
    report = dr.format_report(facts, checks, "tiny")
    assert "gpu8-spot: 32 CPU, 8 GPU; 0-2 nodes, spot/preemptible" in report
