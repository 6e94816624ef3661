"""Helpers shared by the CLI verbs: config loading with clean errors, option types."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated, NoReturn

import typer

from lead_ray.distributed.jobs import VERBS as JOB_VERBS

# The verbs, one module each; a module exposes `register(app)`.
COMMAND_MODULES = (
    "stages_cmd",
    "pipeline_cmd",
    "evaluate_cmd",
    "jobs_cmd",
    "doctor_cmd",
)


def _local_out(value: Path | None) -> Path | None:
    """A verb's --out is a local folder. `s3://b/x` would arrive as Path('s3:/b/x') and become a
    local folder named `s3:`; object-store output goes through `lead jobs run` instead."""
    head = value.parts[0] if value is not None and value.parts else ""
    if len(head) > 2 and head.endswith(":"):
        uri = f"{head}//{'/'.join(value.parts[1:])}"
        fail(
            f"--out {uri}: for object-store output run `lead jobs run VERB CONFIG --out {uri}` "
            "(it mirrors the folder and uploads it, manifests last) or `lead submit`"
        )
    return value


ConfigArg = Annotated[Path, typer.Argument(help="Experiment YAML (see configs/).")]
OutOpt = Annotated[
    Path,
    typer.Option("--out", "-o", help="Output folder (created if missing).", callback=_local_out),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config value: key.path=value (repeatable)."),
]
ProgressOpt = Annotated[bool, typer.Option(help="Show progress bars.")]


# what `lead submit --verb` runs on a cluster and `lead doctor --verb` checks: every stage verb,
# the pipeline and the doctor itself
SUBMIT_VERBS = JOB_VERBS


def check_verb(value: str | None) -> str | None:
    """Typer callback: a verb `lead submit` / `lead doctor` know, else exit 2 with the list."""
    if value is not None and value not in SUBMIT_VERBS:
        import difflib

        close = difflib.get_close_matches(value, SUBMIT_VERBS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise typer.BadParameter(f"unknown verb {value!r}{hint}; one of {', '.join(SUBMIT_VERBS)}")
    return value


def reflow(text: str | None) -> str | None:
    """Help text as paragraphs: single line breaks (docstring wrapping) become spaces, so the
    terminal wraps it evenly; blank lines still separate paragraphs.

    >>> reflow("one\n    two\n\nthree")
    'one two\n\nthree'
    """
    if not text:
        return text
    import inspect
    import re

    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def command_modules() -> list[ModuleType]:
    mods = []
    for name in COMMAND_MODULES:
        try:
            mods.append(importlib.import_module(f"lead_ray.cli.{name}"))
        except ModuleNotFoundError as err:
            if err.name != f"lead_ray.cli.{name}":
                raise
    return mods


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one clear error line (no traceback) and exit."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def load(config: Path, overrides: list[str] | None):
    """Load and validate a config, turning every config problem into one clear error."""
    from lead_ray.config import ConfigError, load_config

    try:
        return load_config(config, overrides or [])
    except ConfigError as err:
        fail(str(err))


def open_run(config: Path, out: Path, overrides: list[str] | None, progress: bool = True):
    """The `Run` of a verb: the config (errors as one line) on the run folder `out`."""
    from lead_ray.stages.run import Run

    return Run(load(config, overrides), out, progress=progress)


def user_errors():
    """Exception types that are the user's input problems: shown as one line, not a traceback."""
    from lead_ray.config import ConfigError
    from lead_ray.corpus.planner import PlanError
    from lead_ray.data.errors import DataError

    return (ConfigError, DataError, PlanError, FileNotFoundError)


def run_guarded(fn, *args, **kwargs):
    """Call a library function; user-input errors become one clear line and exit code 2."""
    try:
        return fn(*args, **kwargs)
    except user_errors() as err:
        fail(str(err))
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
