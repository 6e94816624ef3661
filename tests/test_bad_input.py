"""Bad input: one `DataError` naming file, line and field, or a documented skip with a count."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lead_ray.data.corpus import iter_corpus
from lead_ray.data.errors import DataError
from lead_ray.data.qrels import check_qrels, read_qrels
from lead_ray.data.queries import read_queries
from lead_ray.data.runs import read_run, write_trec_run
from lead_ray.data.store import CorpusStore
from lead_ray.data.textio import ReadStats

GOOD = '{"_id": "a", "title": "", "text": "alpha"}'


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# (file name, content, message) -- the message is matched after the path
CORPUS_CASES = {
    "malformed_json": (
        "c.jsonl",
        f'{GOOD}\n{{"_id": "b", "text": "unterminated\n',
        ":2: malformed JSON: Unterminated string starting at (column 22)",
    ),
    "not_an_object": ("c.jsonl", f"{GOOD}\n[1, 2]\n", ":2: expected a JSON object, got list"),
    "missing_text": (
        "c.jsonl",
        f'{GOOD}\n{{"_id": "b", "title": "t"}}\n',
        ":2: text: missing (or contents)",
    ),
    "missing_id": (
        "c.jsonl",
        f'{GOOD}\n{{"text": "b"}}\n',
        ":2: _id: missing (or id, doc_id, docid)",
    ),
    "empty_id": ("c.jsonl", f'{GOOD}\n{{"_id": "", "text": "b"}}\n', ":2: _id: empty"),
    "float_id": (
        "c.jsonl",
        f'{GOOD}\n{{"_id": 1.5, "text": "b"}}\n',
        ":2: _id: expected a string or integer id, got 1.5",
    ),
    "text_not_string": (
        "c.jsonl",
        f'{GOOD}\n{{"_id": "b", "text": 3}}\n',
        ":2: text: expected a string, got int",
    ),
    "tsv_columns": (
        "collection.tsv",
        "1\tone\n2\ttwo\tthree\n3\tthree\n",
        ":2: expected 2 tab-separated columns (id, text), found 3",
    ),
    "tsv_one_column": (
        "collection.tsv",
        "1 one\n2\ttwo\n",
        ":1: expected 2 tab-separated columns (id, text), 3 (id, text, title) or 4",
    ),
    "non_utf8": (
        "c.jsonl",
        GOOD.encode() + b'\n{"_id": "b", "text": "caf\xe9"}\n',
        ":2: not UTF-8 text (byte 0xe9 at column 26)",
    ),
    "non_utf8_tsv": (
        "collection.tsv",
        b"1\tone\n2\tcaf\xe9 au lait\n",
        ":2: not UTF-8 text (byte 0xe9 at column 6)",
    ),
}


@pytest.mark.parametrize("case", sorted(CORPUS_CASES))
def test_corpus_errors_name_file_line_and_field(tmp_path, case):
    name, content, message = CORPUS_CASES[case]
    path = write(tmp_path / name, content)
    with pytest.raises(DataError) as err:
        list(iter_corpus(path))
    assert str(err.value) == f"{path}{message}" or str(err.value).startswith(f"{path}{message}")
    # the same file with on_error="skip": the bad line is skipped and counted, the rest kept
    stats = ReadStats()
    docs = list(iter_corpus(path, on_error="skip", stats=stats))
    assert stats.skipped == 1 and stats.rows == len(docs) >= 1
    assert stats.first_errors == [str(err.value)]


def test_empty_corpus(tmp_path):
    for name, content in (("c.jsonl", ""), ("c.tsv", "\n\n"), ("c.jsonl.gz", gzip.compress(b""))):
        path = write(tmp_path / name, content)
        with pytest.raises(DataError, match=f"^{path}: no documents in the corpus$"):
            list(iter_corpus(path))
    path = write(tmp_path / "bad.jsonl", "nope\nnope\n")
    with pytest.raises(
        DataError, match=r"no documents in the corpus \(2 malformed lines skipped\)"
    ):
        list(iter_corpus(path, on_error="skip"))
    with pytest.raises(DataError, match="no documents"):
        CorpusStore.build(write(tmp_path / "e.jsonl", ""), tmp_path / "store")
    assert not (tmp_path / "store" / "manifest.json").exists()


def test_unreadable_files(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found"):
        list(iter_corpus(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="corrupt gzip file"):
        list(iter_corpus(write(tmp_path / "c.jsonl.gz", b"not gzip at all")))
    with pytest.raises(DataError, match="not a readable Parquet file"):
        list(iter_corpus(write(tmp_path / "c.parquet", b"PAR1 but not really")))
    pq.write_table(pa.table({"pid": ["1"], "body": ["x"]}), tmp_path / "cols.parquet")
    with pytest.raises(DataError, match=r"needs an id column .* it has \['pid', 'body'\]"):
        list(iter_corpus(tmp_path / "cols.parquet"))
    pq.write_table(pa.table({"doc_id": ["1", None], "text": ["x", "y"]}), tmp_path / "null.parquet")
    with pytest.raises(DataError, match=r"null\.parquet:2: doc_id: empty"):
        list(iter_corpus(tmp_path / "null.parquet"))


def test_duplicate_doc_ids_name_the_id_and_both_lines(tmp_path):
    lines = [json.dumps({"_id": d, "text": d}) for d in ["a", "b", "c", "d", "b", "e"]]
    path = write(tmp_path / "c.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"c\.jsonl:5: doc_id: duplicate doc id 'b' \(first at line 2\)"
    ):
        CorpusStore.build(path, tmp_path / "store", batch_rows=2)
    assert not (tmp_path / "store" / "manifest.json").exists()


def test_qrels_naming_unknown_documents(tmp_path):
    corpus = write(
        tmp_path / "c.jsonl", "\n".join(json.dumps({"_id": d, "text": d}) for d in "abc") + "\n"
    )
    store = CorpusStore.build(corpus, tmp_path / "store")
    qrels_file = write(
        tmp_path / "qrels.tsv",
        "query-id\tcorpus-id\tscore\nq1\ta\t1\nq1\tzz\t1\nq2\tyy\t2\nq2\tyy2\t0\nq3\tc\t1\n",
    )
    kept, dropped = check_qrels(qrels_file, store)  # the documented skip: dropped and counted
    assert kept == {"q1": {"a": 1}, "q3": {"c": 1}} and dropped == 3
    assert check_qrels(read_qrels(qrels_file), store) == (kept, 3)
    with pytest.raises(
        DataError,
        match=r"qrels\.tsv:3: corpus-id: document 'zz' \(query 'q1'\) is not in "
        r"the corpus \(3 such judgements\)",
    ):
        check_qrels(qrels_file, store, strict=True)
    with pytest.raises(
        DataError,
        match=r"3 judgements name documents not in the corpus, e\.g\. \['yy', 'yy2', 'zz'\]",
    ):
        check_qrels(read_qrels(qrels_file), store, strict=True)
    assert check_qrels(kept, store, strict=True) == (kept, 0)


QRELS_CASES = {
    "conflict": (
        "q1 0 d1 1\nq1 0 d2 0\nq1 0 d1 2\n",
        ":3: relevance: (q1, d1) judged 1 at line 1 and 2 here",
    ),
    "bad_grade": (
        "query-id\tcorpus-id\tscore\nq1\td1\tyes\n",
        ":2: relevance: expected an integer grade, got 'yes'",
    ),
    "fraction": ("q1 d1 0.5\n", ":1: relevance: expected an integer grade, got '0.5'"),
    "columns": ("q1 0 d1 1\nq1 d2 1\n", ":2: expected 4 columns like the first line, found 3"),
    "five_columns": ("q1 0 d1 1 x\n", ":1: expected 3 columns (query-id corpus-id score) or 4"),
    "header_only": ("query-id\tcorpus-id\tscore\n", ": no judgements"),
}


@pytest.mark.parametrize("case", sorted(QRELS_CASES))
def test_qrels_errors(tmp_path, case):
    content, message = QRELS_CASES[case]
    path = write(tmp_path / "qrels.txt", content)
    with pytest.raises(DataError) as err:
        read_qrels(path)
    assert str(err.value).startswith(f"{path}{message}")


def test_repeated_identical_judgements_are_fine(tmp_path):
    assert read_qrels(write(tmp_path / "q.txt", "q1 0 d1 1\nq1 0 d1 1\n")) == {"q1": {"d1": 1}}


QUERY_CASES = {
    "columns": (
        "q.tsv",
        "1\tone\n2\ttwo\textra\n",
        ":2: expected 2 tab-separated columns (query_id, text), found 3",
    ),
    "duplicate": (
        "q.jsonl",
        '{"_id": "1", "text": "a"}\n{"_id": 1, "text": "b"}\n',
        ":2: query_id: query '1' appears twice with different texts (first at line 1)",
    ),
    "missing_text": ("q.jsonl", '{"_id": "1"}\n', ":1: text: missing (or query)"),
    "empty": ("q.tsv", "", ": no queries"),
}


@pytest.mark.parametrize("case", sorted(QUERY_CASES))
def test_query_errors(tmp_path, case):
    name, content, message = QUERY_CASES[case]
    path = write(tmp_path / name, content)
    with pytest.raises(DataError) as err:
        read_queries(path)
    assert str(err.value).startswith(f"{path}{message}")


RUN_CASES = {
    "duplicate_doc": (
        "q1 Q0 d1 1 2.0 t\nq1 Q0 d1 2 1.0 t\n",
        ":2: docid: doc 'd1' listed twice for query 'q1' (first at line 1)",
    ),
    "columns": (
        "q1 Q0 d1 1 2.0 t\nq1 d2 1\n",
        ":2: expected 6 columns like the first line, found 3",
    ),
    "four_columns": ("q1 d1 1 2.0\n", ":1: expected 6 columns (qid Q0 docid rank score tag) or 3"),
    "score": ("q1 d1 x\n", ":1: score: expected a number, got 'x'"),
    "empty": ("", ": no results"),
}


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_run_errors(tmp_path, case):
    content, message = RUN_CASES[case]
    path = write(tmp_path / "run.txt", content)
    with pytest.raises(DataError) as err:
        read_run(path)
    assert str(err.value).startswith(f"{path}{message}")


def test_unwritable_ids_fail_before_any_file_is_written(tmp_path):
    with pytest.raises(ValueError, match="doc id 'has space' cannot be written"):
        write_trec_run(tmp_path / "r.trec", {"q": [("ok", 1.0), ("has space", 0.5)]})
    assert list(tmp_path.iterdir()) == []
