"""`lead encode` (and, later, `lead index` / `lead search`): the corpus side of the pipeline."""

from __future__ import annotations

from pathlib import Path

import typer

from lead_ray.cli.common import ConfigArg, OutOpt, SetOpt, load, run_guarded


def encode_model(cfg, out: Path, model: Path | None) -> str:
    """The model folder to encode with: --model, else `encode.model` resolved against --out."""
    from lead_ray.config import ConfigError

    if model is not None:
        return str(model)
    choice = cfg.encode.model
    if choice not in ("student", "teacher"):
        return choice  # a folder (or the MiniLM alias)
    for folder in (out / choice, out / "train" / choice):  # `lead train` / `lead pipeline` layout
        if folder.is_dir():
            return str(folder)
    if choice == "teacher" and cfg.teacher.source.path:
        return cfg.teacher.source.path
    raise ConfigError(f"encode.model={choice!r}: no {out / choice} (run `lead train --out {out}` "
                      "first) and no folder given; pass --model FOLDER or --set encode.model=FOLDER")


def _encode(cfg, out: Path, model: Path | None, use_ray: bool, progress: bool) -> dict:
    from lead_ray.config import save_resolved
    from lead_ray.data.prepare import open_corpus, resolve_data

    folder = encode_model(cfg, out, model)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, out)
    store = open_corpus(resolve_data(cfg.data, out), out / "corpus")
    if use_ray:
        from lead_ray.distributed.encode import run_encoding

        return run_encoding(cfg, folder, store.folder, out / "embeddings", progress=progress)
    from lead_ray.encoding import encode_corpus

    return encode_corpus(cfg, folder, store, out / "embeddings", progress=progress)


def register(app: typer.Typer) -> None:
    @app.command()
    def encode(
        config: ConfigArg,
        out: OutOpt,
        overrides: SetOpt = None,
        model: Path = typer.Option(None, help="Dual-encoder folder (default: encode.model: "
                                   "'student' / 'teacher' from --out, or a folder)."),
        ray: bool = typer.Option(False, "--ray", help="Use the Ray Data pipeline even for one "
                                 "local actor."),
        progress: bool = typer.Option(True, help="Show a progress bar."),
    ) -> None:
        """Encode the corpus into embedding shards: DIR/embeddings/shard-*.parquet + manifest.json.

        Runs the Ray Data pipeline (encode.actors actors, encode.cpus_per_actor / num_gpus each)
        when ray.address is set, encode.actors > 1 or --ray is given; otherwise a plain loop in
        this process. Shards of encode.shard_rows rows; a rerun on the same --out encodes only
        the shards that are not complete (row count and checksum)."""
        cfg = load(config, overrides)
        use_ray = ray or cfg.ray.address is not None or cfg.encode.actors > 1
        manifest = run_guarded(_encode, cfg, out, model, use_ray, progress)
        last = manifest.get("last_run") or {}
        rate = f", {last['docs_per_s']:,.1f} docs/s" if last.get("docs_per_s") else ""
        typer.echo(f"embeddings: {out / 'embeddings'}  ({manifest['rows']:,} rows, "
                   f"{len(manifest['shards'])} shards, dim {manifest['dim']}, {manifest['dtype']}; "
                   f"encoded now: {len(last.get('encoded', []))} shards{rate})")
