"""`lead`: the command-line entry point. Each verb lives in its own module and registers here."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="lead",
    help="LEAD distillation for dense retrieval: train, encode, index, search, evaluate.",
    no_args_is_help=True,
    add_completion=True,  # `lead --install-completion` (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from lead_ray import __version__

        typer.echo(f"lead-ray {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """LEAD distillation for dense retrieval: train, encode, index, search, evaluate."""


def _register() -> None:
    # Imported here so `import lead_ray.cli.main` stays light until a command runs.
    from lead_ray.cli import common

    for module in common.command_modules():
        module.register(app)
    for group in [app, *(g.typer_instance for g in app.registered_groups)]:
        for command in group.registered_commands:  # docstrings wrap at 100 columns: reflow
            command.help = common.reflow(command.help or command.callback.__doc__)


_register()


def main() -> None:  # pragma: no cover - console script
    app()


if __name__ == "__main__":  # pragma: no cover - `python -m lead_ray.cli.main`
    main()
