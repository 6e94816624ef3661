"""The Ray (and DeepSpeed) edge of lead-ray: the only package that imports `ray` or `deepspeed`.

Each module schedules work that lives in the core (training.train_step, encoding.CorpusEncoder,
indexing.build_shard_index, search.search_shard) and imports Ray inside its functions, so
`import lead_ray.distributed` stays light. The caller initialises Ray (`ray.init`).
"""
