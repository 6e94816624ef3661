"""Training examples: every format, no positive among negatives, round trips, dev splits."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_data

from lead_ray.data.errors import DataError
from lead_ray.data.examples import (
    Example,
    ExampleStats,
    examples_from_qrels,
    read_examples,
    split_dev,
    write_examples,
)


def jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_negatives_never_contain_a_positive_ids_as_ints_and_strings(tmp_path):
    path = jsonl(
        tmp_path / "ex.jsonl",
        [
            # positive 7 as an int, the same passage as the string "7" among the negatives
            {
                "query_id": 1,
                "query": "q one",
                "positive_ids": [7],
                "negative_ids": ["7", 8, "9", 7],
                "teacher_scores": [5.0, 4.0, 3.0, 2.0, 1.0],
            },
            {"query_id": "2", "positive_ids": ["3", 4], "negative_ids": [4, "3", "5"]},
        ],
    )
    stats = ExampleStats()
    examples = list(read_examples(path, stats=stats))
    assert examples == [
        Example(
            "1", "q one", ["7"], ["8", "9"], [5.0, 3.0, 2.0]
        ),  # scores of dropped negatives go too
        Example("2", None, ["3", "4"], ["5"], None),
    ]
    assert stats.negatives_dropped == 4 and stats.rows == 2
    for ex in examples:
        assert not set(ex.negative_ids) & set(ex.positive_ids)


def test_examples_without_a_positive_are_skipped_and_counted(tmp_path):
    path = jsonl(
        tmp_path / "ex.jsonl",
        [
            {"query_id": "a", "positive_ids": [], "negative_ids": ["1"]},
            {"query_id": "b", "positive_ids": ["2"]},  # no negatives: fine (mining adds them)
        ],
    )
    stats = ExampleStats()
    assert list(read_examples(path, stats=stats)) == [Example("b", None, ["2"], [])]
    assert stats.no_positive == 1


def test_tevatron_fields(tmp_path):
    path = jsonl(
        tmp_path / "tev.jsonl",
        [
            {
                "query_id": "q",
                "query": "text",
                "positive_document_ids": ["1"],
                "negative_document_ids": ["2", "1"],
            },
            {
                "query_id": "r",
                "query": "t",
                "positive_passages": [{"docid": "5", "title": "", "text": "x"}],
                "negative_passages": [{"docid": 6, "text": "y"}],
            },
        ],
    )
    assert list(read_examples(path)) == [
        Example("q", "text", ["1"], ["2"]),
        Example("r", "t", ["5"], ["6"]),
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_write_read_round_trip(tmp_path, suffix):
    examples = [
        Example("q1", "first", ["d1", "d2"], ["d3", "d4"], [1.5, 0.5, -0.25]),
        Example("q2", None, ["d9"], [], None),
    ]
    assert write_examples(tmp_path / f"ex{suffix}", iter(examples)) == 2
    assert list(read_examples(tmp_path / f"ex{suffix}")) == examples


def test_parquet_with_integer_ids(tmp_path):
    pq.write_table(
        pa.table({"query_id": [3], "positive_ids": [[1]], "negative_ids": [[1, 2]]}),
        tmp_path / "i.parquet",
    )
    assert list(read_examples(tmp_path / "i.parquet")) == [Example("3", None, ["1"], ["2"])]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "ex.jsonl"
    write_examples(target, [Example("q", None, ["d"], [])])

    def broken():
        yield Example("new", None, ["d"], [])
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_examples(target, broken())
    assert [e.query_id for e in read_examples(target)] == ["q"]
    assert [p.name for p in tmp_path.iterdir()] == ["ex.jsonl"]


def test_msmarco_id_triples_grouped(tmp_path):
    path = tmp_path / "qidpidtriples.train.full.2.tsv"
    path.write_text("1\t10\t11\n1\t10\t12\n1\t13\t10\n2\t20\t21\n2\t20\t21\n", encoding="utf-8")
    stats = ExampleStats()
    # line 3 makes 10 a negative of query 1 although it is a positive there: dropped
    assert list(read_examples(path, stats=stats)) == [
        Example("1", None, ["10", "13"], ["11", "12"]),
        Example("2", None, ["20"], ["21"]),
    ]
    assert stats.negatives_dropped == 1 and stats.regrouped == 0


def test_msmarco_id_triples_ungrouped(tmp_path):
    path = tmp_path / "triples.tsv"
    path.write_text("1\t10\t11\n2\t20\t21\n1\t11\t10\n", encoding="utf-8")
    stats = ExampleStats()
    examples = list(read_examples(path, stats=stats))
    # query 1 comes back: a second example whose negatives exclude query 1's earlier positive 10
    assert examples == [
        Example("1", None, ["10"], ["11"]),
        Example("2", None, ["20"], ["21"]),
        Example("1", None, ["11"], []),
    ]
    assert stats.regrouped == 1 and stats.negatives_dropped == 1 and stats.no_positive == 0


def test_text_triples_are_refused_clearly():
    path = shared_data("msmarco-format-sample") / "triplets" / "raw.tsv"
    with pytest.raises(DataError, match=r"raw\.tsv:1: looks like a text triples file"):
        next(read_examples(path))


def test_bad_example_lines(tmp_path):
    path = jsonl(
        tmp_path / "bad.jsonl",
        [
            {
                "query_id": "q",
                "positive_ids": ["1"],
                "negative_ids": ["2"],
                "teacher_scores": [1.0],
            },
            {"query_id": "r", "positive_ids": "1"},
            {"positive_ids": ["1"]},
            {"query_id": "ok", "positive_ids": ["1"]},
        ],
    )
    with pytest.raises(
        DataError, match=r"bad\.jsonl:1: teacher_scores: 1 scores for 1 positive \+ 1 negatives"
    ):
        list(read_examples(path))
    stats = ExampleStats()
    assert [e.query_id for e in read_examples(path, on_error="skip", stats=stats)] == ["ok"]
    assert stats.skipped == 3 and set(stats.problems) == {
        "teacher_scores",
        "positive_ids",
        "query_id",
    }
    with pytest.raises(ValueError, match="2 teacher scores for 1 positive \\+ 0 negatives"):
        Example("q", None, ["1"], [], [1.0, 2.0])


def test_examples_from_qrels():
    qrels = {"q1": {"a": 1, "b": 2, "c": 0, "d": 2}, "q2": {"x": 0}, "q3": {"y": 1}}
    assert examples_from_qrels(qrels) == [
        Example("q1", None, ["b", "d", "a"], []),
        Example("q3", None, ["y"], []),
    ]
    assert examples_from_qrels(qrels, min_grade=2) == [Example("q1", None, ["b", "d"], [])]


def test_split_dev_is_deterministic_and_keeps_queries_together():
    qids = [f"q{i}" for i in range(200)]
    dev = split_dev(qids, 0.1, seed=3)
    assert len(dev) == 20 and set(dev) <= set(qids)
    # the input order does not matter
    assert split_dev(list(reversed(qids)), 0.1, seed=3) == sorted(dev, key=qids.index)[::-1]
    assert set(split_dev(qids, 0.1, seed=4)) != set(dev)
    assert split_dev(qids, 0.0) == [] and len(split_dev(qids[:2], 0.01)) == 1
    examples = [Example(q, None, [f"d{j}"], []) for q in qids[:50] for j in range(2)]
    dev_ex = split_dev(examples, 0.2, seed=1)
    # both examples of each dev query, none of the others
    assert len(dev_ex) == 20 and len({e.query_id for e in dev_ex}) == 10
    assert {e.query_id for e in dev_ex} == set(split_dev(qids[:50], 0.2, seed=1))
    with pytest.raises(ValueError):
        split_dev(qids, 1.0)
