"""What the benchmarks say about the machine they ran on (one reading of /proc/cpuinfo)."""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path


@cache
def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")  # Linux; elsewhere the fallbacks below answer
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def cpu_model() -> str:
    """The CPU's model name, e.g. 'AMD EPYC'."""
    return next(
        (
            ln.split(":", 1)[1].strip()
            for ln in _cpuinfo().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )


def avx512() -> str:
    return "AVX-512" if "avx512f" in _cpuinfo() else "no AVX-512"
