"""The Ray (and DeepSpeed) edge of lead-ray: the only package that imports `ray` or `deepspeed`.

Each module schedules work that lives in the core (distill.optim.train_step,
corpus.encode.CorpusEncoder, corpus.index.build_shard_index, corpus.search.search_shard) and
imports Ray inside its functions, so `import lead_ray.distributed` stays light. `stages.py` binds
the run folder to them for the dispatcher (lead_ray/stages/dispatch.py), which starts Ray.
"""
