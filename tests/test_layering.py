"""The core never imports Ray or DeepSpeed: only lead_ray/distributed/ (and the CLI) may.

Checked twice: statically (every import statement of every module, at any depth, parsed with
`ast`) and dynamically (importing the core in a fresh interpreter leaves `ray` and `deepspeed`
out of `sys.modules`).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lead_ray"
FORBIDDEN = {"ray", "deepspeed"}
ALLOWED = (PACKAGE / "distributed", REPO / "cli")


def imported_roots(source: str) -> set[str]:
    """Top-level names of every module an `import` / `from ... import` statement names."""
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def core_modules() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py") if not any(p.is_relative_to(folder) for folder in ALLOWED)
    )


def test_the_walk_sees_nested_imports():
    source = (
        "def f():\n    if True:\n        from ray.train import report\n"
        "    import deepspeed.zero as z\n"
    )
    assert imported_roots(source) == {"ray", "deepspeed"}
    assert imported_roots("from . import ray\nimport rayon\n") == {"rayon"}


def test_core_modules_never_import_ray_or_deepspeed():
    modules = core_modules()
    assert len(modules) > 10  # the walk found the package
    offenders = {
        str(p.relative_to(REPO)): sorted(imported_roots(p.read_text(encoding="utf-8")) & FORBIDDEN)
        for p in modules
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_distributed_modules_import_ray_inside_functions():
    """`import lead_ray.distributed.<x>` stays light: no module-level ray/deepspeed import."""
    for path in sorted((PACKAGE / "distributed").glob("*.py")):
        top = [
            n
            for n in ast.parse(path.read_text(encoding="utf-8")).body
            if isinstance(n, (ast.Import, ast.ImportFrom))
        ]
        roots = imported_roots(ast.unparse(ast.Module(body=top, type_ignores=[])))
        assert not roots & FORBIDDEN, f"{path.name} imports {roots & FORBIDDEN} at module level"


@pytest.mark.parametrize(
    "extra",
    [
        [],
        [
            "lead_ray.distributed.train",
            "lead_ray.distributed.engine",
            "lead_ray.distributed.checkpointing",
        ],
    ],
)
def test_importing_the_core_loads_neither_ray_nor_deepspeed(extra):
    core = sorted(".".join(p.relative_to(REPO).with_suffix("").parts) for p in core_modules())
    core = [m.removesuffix(".__init__") for m in core]
    code = (
        "import importlib, json, sys\n"
        f"for m in {core + extra!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(n for n in ('ray', 'deepspeed') if n in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
