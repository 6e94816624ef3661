"""Readers and writers for corpora, queries, qrels, training examples and run files.

Ids are the user's strings (`doc_id`, `query_id`); `doc_idx` (int64 row number) is ours.
"""
