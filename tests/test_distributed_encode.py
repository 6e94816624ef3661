"""Ray Data encoding equals the local loop (FirstP and MaxP), resumes after a crash, and refuses
an actor pool the local Ray cannot hold."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_encoding import build_store, config, corpus_rows, read_all, tiny_model

from lead_ray.config import ConfigError
from lead_ray.corpus.encode import encode_corpus

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray-encode")
    return tiny_model(root / "model"), build_store(root / "corpus", corpus_rows(1000, seed=7))


class Crash(RuntimeError):
    pass


@pytest.mark.slow
def test_two_actors_equal_local_and_resume(ray_local, setup, tmp_path):
    from lead_ray.distributed.encode import run_encoding

    model, store = setup
    cfg = config(shard_rows=250, batch_size=16, actors=2)
    local = encode_corpus(cfg, model, store, tmp_path / "local", progress=False)

    def crash(shard, entry):
        if len(json.loads((tmp_path / "ray" / "manifest.json").read_text())["shards"]) == 2:
            raise Crash("driver lost")

    with pytest.raises(Crash):
        run_encoding(cfg, model, store.folder, tmp_path / "ray", progress=False, on_shard=crash)
    done = {
        e["shard"] for e in json.loads((tmp_path / "ray" / "manifest.json").read_text())["shards"]
    }
    assert len(done) == 2
    # the rerun ships the model through the object store, as on a cluster (`ray.address` set)
    resumed = run_encoding(
        config(shard_rows=250, batch_size=16, actors=2).model_copy(
            update={"ray": cfg.ray.model_copy(update={"address": "auto"})}
        ),
        model,
        store.folder,
        tmp_path / "ray",
        progress=False,
    )
    assert resumed["complete"] and sorted(resumed["last_run"]["encoded"]) == sorted(
        {0, 1, 2, 3} - done
    )
    assert resumed["last_run"]["backend"] == "ray"
    ids, doc_ids, emb = read_all(tmp_path / "ray")
    ref_ids, ref_doc_ids, ref_emb = read_all(tmp_path / "local")
    np.testing.assert_array_equal(ids, np.arange(1000))
    np.testing.assert_array_equal(ids, ref_ids)
    assert doc_ids == ref_doc_ids
    np.testing.assert_allclose(emb, ref_emb, atol=1e-5)
    assert [e["rows"] for e in resumed["shards"]] == [e["rows"] for e in local["shards"]]
    again = run_encoding(cfg, model, store.folder, tmp_path / "ray", progress=False)
    assert again["last_run"]["encoded"] == []


@pytest.mark.slow
def test_maxp_through_ray_equals_local(ray_local, setup, tmp_path):
    from lead_ray.distributed.encode import run_encoding

    model, store = setup
    cfg = config(
        shard_rows=300,
        batch_size=16,
        actors=1,
        doc_mode="maxp",
        max_length=16,
        maxp_stride=4,
        maxp_passages=3,
    )
    local = encode_corpus(cfg, model, store, tmp_path / "local", progress=False)
    remote = run_encoding(cfg, model, store.folder, tmp_path / "ray", progress=False)
    assert remote["maxp"] and remote["rows"] == local["rows"] > 1000
    a, b = read_all(tmp_path / "ray"), read_all(tmp_path / "local")
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    np.testing.assert_allclose(a[2], b[2], atol=1e-5)


def test_pool_larger_than_local_ray_is_refused(ray_local, setup, tmp_path):
    from lead_ray.distributed.encode import run_encoding

    model, store = setup
    with pytest.raises(ConfigError, match=r"encode.actors=4 .* need 4 CPUs; this Ray has 2"):
        run_encoding(
            config(actors=4, cpus_per_actor=1), model, store.folder, tmp_path / "e", progress=False
        )
