"""Files shipped inside the package: the quickstart config and a small sample collection."""

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent


def resource_path(name: str) -> Path:
    """Path of a file or folder shipped in `lead_ray/resources/`."""
    return RESOURCES / name
