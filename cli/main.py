"""`lead`: the command-line entry point. Each verb lives in its own module and registers here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="lead",
    help="LEAD distillation for dense retrieval: train, encode, index, search, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported here so `import lead_ray.cli.main` stays light until a command runs.
    from lead_ray.cli import common

    for module in common.command_modules():
        module.register(app)


_register()


def main() -> None:  # pragma: no cover - console script
    app()


if __name__ == "__main__":  # pragma: no cover - `python -m lead_ray.cli.main`
    main()
