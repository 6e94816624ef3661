"""Models that expose per-layer scores: shapes, reference MaxSim, length caps, save/load, and
the one scoring interface every kind shares (`Retriever.scores`)."""

from __future__ import annotations

from pathlib import Path

import torch

from lead_ray.config import BuildSpec, ColBERTOptions, ModelSource, StudentConfig, TeacherConfig
from lead_ray.models.build import build_student, build_teacher, load_model, save_model
from lead_ray.models.colbert import ColBERT
from lead_ray.models.cross_encoder import CrossEncoder
from lead_ray.models.dual_encoder import DualEncoder

QUERIES = ["what is a tiny model", "how do layers score passages"]
PASSAGES = [
    "tiny models are small networks",
    "the weather is nice today and tomorrow it will rain in the hills",
    "layers of a transformer produce hidden states",
    "a",
]
TINY = ModelSource(build=BuildSpec(layers=4, hidden=32, heads=2, intermediate=37, seed=1))


def _teacher(kind: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_teacher(
        TeacherConfig(kind=kind, model=TINY, max_query_length=12, max_doc_length=16, **kw)
    )


def _slow_maxsim(q, q_mask, p, p_mask) -> torch.Tensor:
    out = torch.zeros(q.shape[0], p.shape[0])
    for b in range(q.shape[0]):
        for m in range(p.shape[0]):
            total = 0.0
            for i in range(q.shape[1]):
                if q_mask[b, i] == 0:
                    continue
                best = max(
                    float((q[b, i] @ p[m, j]).detach())
                    for j in range(p.shape[1])
                    if p_mask[m, j] == 1
                )
                total += best
            out[b, m] = total
    return out


def test_dual_encoder_layer_scores_are_dots_of_pooled_layers():
    model = _teacher("dual_encoder", pooling="mean")
    assert isinstance(model, DualEncoder) and model.num_layers == 4
    q = model.encode_queries(QUERIES, layers=[0, 2])
    p = model.encode_passages(PASSAGES, layers=[0, 2])
    scores = model.score_encoded(q, p)
    assert scores.final.shape == (2, 4) and scores.layers.shape == (2, 2, 4)
    assert torch.allclose(scores.layers[1], q.layers[1] @ p.layers[1].T, atol=1e-5)
    # the last block requested as a layer equals the final score (no normalisation by default)
    last = model.score_encoded(
        model.encode_queries(QUERIES, [3]), model.encode_passages(PASSAGES, [3])
    )
    assert torch.allclose(last.layers[0], last.final, atol=1e-5)


def test_colbert_layer_scores_equal_slow_reference_maxsim():
    model = _teacher("colbert")
    assert isinstance(model, ColBERT)
    q = model.encode_queries(QUERIES, layers=[1, 3])
    p = model.encode_passages(PASSAGES, layers=[1, 3])
    assert q.mask.sum() == q.mask.numel()  # query augmentation: [MASK] pads are scored
    assert (p.mask == 0).any()  # passage padding exists and must be masked
    scores = model.score_encoded(q, p)
    for li in range(2):
        ref = _slow_maxsim(q.layers[li], q.mask, p.layers[li], p.mask)
        assert torch.allclose(scores.layers[li], ref, rtol=1e-4, atol=1e-3)
    assert torch.allclose(
        scores.final, _slow_maxsim(q.final, q.mask, p.final, p.mask), rtol=1e-4, atol=1e-4
    )
    # final token vectors are unit length; raw layer states are not
    assert torch.allclose(q.final.norm(dim=-1), torch.ones(q.final.shape[:2]), atol=1e-4)
    assert not torch.allclose(q.layers[0].norm(dim=-1), torch.ones(q.final.shape[:2]), atol=1e-2)


def test_colbert_without_augmentation_masks_query_padding():
    model = _teacher("colbert", colbert=ColBERTOptions(query_augmentation=False, markers=False))
    q = model.encode_queries(["short", "a much longer query with many words in it"], layers=[0])
    assert (q.mask == 0).any()


def test_cross_encoder_scores_own_candidates_and_caps_length():
    model = _teacher("cross_encoder")
    assert isinstance(model, CrossEncoder)
    long_query = " ".join(["query"] * 100)
    long_passage = " ".join(["passage"] * 400)
    tok = model.tokenize_pairs([long_query, "q"], [long_passage, "p"])
    assert tok["input_ids"].shape[1] <= model.max_length == 28
    # the query keeps at most max_query_length tokens; the passage fills the rest
    ids = tok["input_ids"][0].tolist()
    sep = model.tokenizer.sep_token_id
    assert ids.index(sep) - 1 <= model.max_query_length
    scores = model.scores(QUERIES, PASSAGES, layers=[0, 1, 3])
    assert scores.final.shape == (2, 2) and scores.layers.shape == (3, 2, 2)
    assert torch.allclose(scores.layers[2], scores.final, atol=1e-5)  # one head for every layer


def test_cross_encoder_length_capped_by_backbone_positions():
    model = build_teacher(
        TeacherConfig(
            kind="cross_encoder",
            max_query_length=64,
            max_doc_length=512,
            model=ModelSource(
                build=BuildSpec(layers=1, hidden=16, heads=2, intermediate=16, max_position=64)
            ),
        )
    )
    assert model.max_length == 64
    tok = model.tokenize_pairs(["x " * 200], ["y " * 900])
    assert tok["input_ids"].shape[1] == 64


def test_student_init_from_teacher_copies_lower_layers():
    teacher = _teacher("dual_encoder")
    student = build_student(
        StudentConfig(model=ModelSource(init_from="teacher", layers=2)), teacher
    )
    assert student.num_layers == 2
    t_state = teacher.query_backbone.model.state_dict()
    for name, value in student.query_backbone.model.state_dict().items():
        assert torch.equal(value, t_state[name]), name
    # a copy, not shared storage
    next(student.parameters()).data.add_(1.0)
    assert not torch.equal(next(student.parameters()), next(teacher.parameters()))


def test_separate_towers_and_round_trip_through_a_folder(tmp_path):
    teacher = _teacher("dual_encoder")
    student = build_student(
        StudentConfig(
            model=ModelSource(init_from="teacher", layers=2),
            shared_towers=False,
            pooling="mean",
            normalize=True,
        ),
        teacher,
    )
    assert student.passage_backbone is not None
    save_model(student, tmp_path)
    loaded = load_model(str(tmp_path))
    assert isinstance(loaded, DualEncoder) and loaded.passage_backbone is not None
    assert (loaded.pooling, loaded.normalize) == ("mean", True)
    student.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.allclose(
            student.embed(QUERIES, "query"), loaded.embed(QUERIES, "query"), atol=1e-6
        )
        assert torch.allclose(
            student.embed(PASSAGES, "passage"), loaded.embed(PASSAGES, "passage"), atol=1e-6
        )


def test_saved_student_loads_with_transformers_and_sentence_transformers(tmp_path):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    teacher = _teacher("dual_encoder")
    student = build_student(
        StudentConfig(model=ModelSource(init_from="teacher", layers=2), pooling="cls"), teacher
    )
    save_model(student, tmp_path)
    hf = AutoModel.from_pretrained(str(tmp_path))
    assert hf.config.num_hidden_layers == 2
    st = SentenceTransformer(str(tmp_path), device="cpu")
    student.eval()
    ours = student.embed(PASSAGES, "passage").numpy()
    theirs = st.encode(PASSAGES, convert_to_numpy=True)
    assert abs(ours - theirs).max() < 1e-4


def test_colbert_and_cross_encoder_round_trip(tmp_path):
    for kind in ("colbert", "cross_encoder"):
        model = _teacher(kind, **({"colbert": ColBERTOptions(dim=8)} if kind == "colbert" else {}))
        save_model(model, tmp_path / kind)
        loaded = load_model(str(tmp_path / kind))
        assert type(loaded) is type(model)
        model.eval(), loaded.eval()
        with torch.no_grad():
            a, b = model.scores(QUERIES, PASSAGES).final, loaded.scores(QUERIES, PASSAGES).final
        assert a.shape == (2, 2) and torch.allclose(a, b, atol=1e-5)


def test_minilm_teacher_pooling_comes_from_the_package(minilm_path):
    model = build_teacher(TeacherConfig(kind="dual_encoder", model="all-MiniLM-L6-v2"))
    assert (model.pooling, model.normalize) == ("mean", True)
    model.eval()
    e = model.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "The sky is blue."],
        "passage",
    )
    assert float(e[0] @ e[1]) > 0.6 > float(e[0] @ e[2])


def test_every_kind_answers_the_same_scoring_interface():
    """`scores(queries, passages, layers)`: [B, N] / [L, B, N] over each query's own candidates
    for every kind; all-pairs kinds also score every passage ([B, M]) and agree with own."""
    import pytest

    for kind in ("dual_encoder", "colbert", "cross_encoder"):
        model = _teacher(kind).eval()
        with torch.no_grad():
            own = model.scores(QUERIES, PASSAGES, layers=[0, 3])
            assert own.final.shape == (2, 2) and own.layers.shape == (2, 2, 2), kind
            if not model.all_pairs:
                with pytest.raises(ValueError, match="own candidates"):
                    model.scores(QUERIES, PASSAGES, own=False)
                continue
            full = model.scores(QUERIES, PASSAGES, layers=[0, 3], own=False)
        assert full.final.shape == (2, 4) and full.layers.shape == (2, 2, 4), kind
        assert torch.allclose(full.final[0, :2], own.final[0]) and torch.allclose(
            full.final[1, 2:], own.final[1]
        )
        assert torch.allclose(full.layers[:, 1, 2:], own.layers[:, 1])


def test_kinds_come_from_the_registry():
    import pytest

    from lead_ray.config import ConfigError, load_config
    from lead_ray.models.registry import KINDS, model_class

    assert {model_class(k).kind for k in KINDS} == set(KINDS)
    with pytest.raises(ValueError, match="unknown model kind"):
        model_class("splade")
    with pytest.raises(ConfigError, match="unknown teacher kind 'splade'"):
        load_config(Path(__file__).parents[1] / "configs" / "tiny.yaml", ["teacher.kind=splade"])
