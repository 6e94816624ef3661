"""The cluster configs in cluster/ are valid and secure.

Launcher YAMLs are checked the way `ray up` checks them (Ray's `prepare_config` fills in the
provider defaults, then `validate_config` applies ray-schema.json). KubeRay manifests have no
operator here: they are checked for the fields the operator's CRDs require, and for token auth
and a dashboard that is never exposed outside the cluster.
"""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import pytest
import yaml

from lead_ray.config import Config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
LAUNCHER = ["aws.yaml", "gcp.yaml"]


def load(name: str):
    return yaml.safe_load((CLUSTER / name).read_text())


def ray_start(commands: list[str]) -> list[str]:
    """The argv of the `ray start` in a list of start commands."""
    for command in commands:
        for part in command.split(";"):
            argv = shlex.split(part)
            while argv and "=" in argv[0]:  # leading VAR=value assignments
                argv.pop(0)
            if argv[:2] == ["ray", "start"]:
                return argv
    raise AssertionError(f"no `ray start` in {commands}")


def env_of(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


# ----------------------------------------------------------------------------- launcher


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_config_passes_rays_own_validation(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(load(name))))


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_schema_rejects_a_broken_copy(name):
    """The check above can fail: the same file with an unknown key is refused."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = load(name)
    broken["available_node_types"]["gpu-1x"]["min_wokers"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_cluster_shape(name):
    cfg = load(name)
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"] == {"CPU": 0}  # a CPU head that runs no work
    gpu_types = [t for t in types if t.startswith("gpu")]
    assert gpu_types and all(
        types[t]["min_workers"] == 0 < types[t]["max_workers"] for t in gpu_types
    )
    assert 0 < cfg["idle_timeout_minutes"] <= 30
    assert cfg["docker"]["worker_image"] and cfg["docker"]["head_image"]  # images with lead-ray
    storage = cfg["metadata"]["lead_ray"]["storage"]
    assert storage.startswith(("s3://", "gs://"))


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_spot_training_nodes(name):
    """A spot / preemptible GPU type that only training asks for: it alone declares the `spot`
    resource (train.worker_resources={spot: 1}), and `lead doctor` sees it as preemptible;
    the on-demand types are neither."""
    from lead_ray.distributed.session import preemptible

    types = load(name)["available_node_types"]
    spot = {n for n, t in types.items() if preemptible(t["node_config"])}
    assert spot == {"gpu-4x-spot"}
    assert {n for n, t in types.items() if "spot" in t.get("resources", {})} == spot
    assert types["gpu-4x-spot"]["resources"]["spot"] == 4  # one per GPU: 4 workers a node
    assert types["gpu-4x-spot"]["min_workers"] == 0


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_token_auth_spilling_and_private_dashboard(name):
    cfg = load(name)
    head = ray_start(cfg["head_start_ray_commands"])
    worker = ray_start(cfg["worker_start_ray_commands"])
    for cmds in (cfg["head_start_ray_commands"], cfg["worker_start_ray_commands"]):
        assert any("RAY_AUTH_MODE=token ray start" in c for c in cmds)
    assert "--dashboard-host=127.0.0.1" in head  # only an SSH tunnel reaches it
    assert not any(a.startswith("--dashboard-host=0.0.0.0") for a in head)
    for argv in (head, worker):
        assert "--object-spilling-directory=/mnt/spill" in argv
    setup = "\n".join(cfg["setup_commands"])
    assert "~/.ray/auth_token" in setup and "umask 077" in setup  # token from the secret store
    assert cfg["metadata"]["lead_ray"]["auth_token_secret"] in setup


# ----------------------------------------------------------------------------- KubeRay


def cluster_specs():
    rc = load("kuberay/raycluster.yaml")
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay" / "rayjob.yaml").read_text()))
    (job,) = [d for d in docs if d["kind"] == "RayJob"]
    return [("raycluster", rc, rc["spec"]), ("rayjob", job, job["spec"]["rayClusterSpec"])]


def check_ray_cluster_spec(spec: dict) -> None:
    """What the KubeRay operator requires of a RayClusterSpec, plus what lead-ray insists on."""
    assert spec["rayVersion"] == "2.60.0"
    assert spec["enableInTreeAutoscaling"] is True
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    assert all(isinstance(v, str) for v in head["rayStartParams"].values())
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert (
        head.get("serviceType", "ClusterIP") == "ClusterIP" and head.get("enableIngress") is False
    )
    containers = [head["template"]["spec"]["containers"][0]]
    groups = spec["workerGroupSpecs"]
    assert len({g["groupName"] for g in groups}) == len(groups)
    for g in groups:
        assert isinstance(g["groupName"], str) and g["groupName"]
        assert 0 <= g["minReplicas"] <= g.get("replicas", 0) <= g["maxReplicas"]
        assert g["minReplicas"] == 0  # scale to zero
        assert isinstance(g["rayStartParams"], dict)
        assert all(isinstance(v, str) for v in g["rayStartParams"].values())
        containers.append(g["template"]["spec"]["containers"][0])
    assert any(
        g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")
        for g in groups
    )
    for c in containers + [{"env": spec["autoscalerOptions"]["env"]}]:
        env = env_of(c)
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "lead-ray-auth", "key": "auth_token"}
        assert "value" not in env["RAY_AUTH_TOKEN"]  # never a token in the manifest
    for c in containers:
        assert c["name"] and c["image"]
    ports = {p["name"]: p["containerPort"] for p in containers[0]["ports"]}
    assert ports["dashboard"] == 8265 and ports["gcs-server"] == 6379


@pytest.mark.parametrize(("kind", "doc", "spec"), cluster_specs(), ids=["raycluster", "rayjob"])
def test_kuberay_cluster_specs(kind, doc, spec):
    assert doc["apiVersion"] == "ray.io/v1"
    assert doc["kind"] == {"raycluster": "RayCluster", "rayjob": "RayJob"}[kind]
    assert doc["metadata"]["name"]
    check_ray_cluster_spec(spec)


def test_kuberay_spot_group_declares_spot_and_lands_on_spot_nodes():
    import json

    groups = {
        g["groupName"]: g for g in load("kuberay/raycluster.yaml")["spec"]["workerGroupSpecs"]
    }
    declared = {n: json.loads(json.loads(g["rayStartParams"]["resources"]))
                for n, g in groups.items() if "resources" in g["rayStartParams"]}  # fmt: skip
    assert declared == {"gpu-4x-spot": {"spot": 4}}
    pod = groups["gpu-4x-spot"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-spot": "true"}
    assert any(t["key"] == "cloud.google.com/gke-spot" for t in pod["tolerations"])
    assert not any("nodeSelector" in g["template"]["spec"] for n, g in groups.items()
                   if n != "gpu-4x-spot")  # fmt: skip


def test_kuberay_check_catches_an_exposed_dashboard():
    _, _, spec = cluster_specs()[0]
    exposed = copy.deepcopy(spec)
    exposed["headGroupSpec"]["serviceType"] = "LoadBalancer"
    with pytest.raises(AssertionError):
        check_ray_cluster_spec(exposed)
    leaked = copy.deepcopy(spec)
    leaked["headGroupSpec"]["template"]["spec"]["containers"][0]["env"][1] = {
        "name": "RAY_AUTH_TOKEN",
        "value": "hunter2",
    }
    with pytest.raises(KeyError):
        check_ray_cluster_spec(leaked)


def test_rayjob_runs_lead_with_its_config_and_the_token():
    docs = list(yaml.safe_load_all((CLUSTER / "kuberay" / "rayjob.yaml").read_text()))
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (job,) = [d for d in docs if d["kind"] == "RayJob"]
    spec = job["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:3] == ["lead", "jobs", "run"] and argv[argv.index("--out") + 1].startswith("s3://")
    # the config file the entrypoint names is the ConfigMap's, mounted on the head
    config_path = Path(argv[4])
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    mount = next(m for m in head["containers"][0]["volumeMounts"] if m["name"] == "job-config")
    volume = next(v for v in head["volumes"] if v["name"] == "job-config")
    assert str(config_path.parent) == mount["mountPath"]
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    Config.from_dict(yaml.safe_load(cm["data"][config_path.name]), "rayjob ConfigMap")  # valid
    assert spec["shutdownAfterJobFinishes"] is True
    submitter = spec["submitterPodTemplate"]["spec"]
    assert submitter["restartPolicy"] == "Never"
    env = env_of(submitter["containers"][0])
    assert (
        env["RAY_AUTH_MODE"]["value"] == "token"
        and "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]
    )


def test_no_manifest_exposes_the_dashboard_publicly():
    for path in CLUSTER.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc.get("kind") not in ("Ingress", "Service"), path
        text = path.read_text()
        assert "LoadBalancer" not in text and "NodePort" not in text, path
        assert "dashboard-host=0.0.0.0" not in text, path
