"""Loading a config: one YAML file plus `--set a.b=c` overrides, validated into `Config`.

Precedence: defaults < YAML < overrides. Unknown keys and wrong types are errors that name the
file, the key path and, where the YAML has it, the line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lead_ray.config.schema import Config, ConfigError


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply `key.path=value` overrides and validate.

    Raises:
        ConfigError: naming the file, key path and line of the first problem(s).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    given = {}
    for item in overrides or []:
        given[apply_override(data, item)] = item
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_errors(err, str(path), root, given)) from None


def apply_override(data: dict[str, Any], item: str) -> tuple[str, ...]:
    """Apply one `a.b.c=value` override in place (the value is parsed as a YAML scalar or list);
    returns the key path."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {item!r}: value is not valid YAML: {err}") from None
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value
    return tuple(parts)


def _section_model(loc: tuple[Any, ...]):
    """The pydantic section model at a key path (None past a plain value)."""
    import typing

    from pydantic import BaseModel

    model = Config
    for part in loc:
        field = model.model_fields.get(str(part)) if model else None
        if field is None:
            return None
        kinds = typing.get_args(field.annotation) or (field.annotation,)
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
    return model


def closest_key(loc: tuple[Any, ...]) -> str | None:
    """The known key closest to an unknown one (`train.stepz` -> `train.steps`), or None.

    >>> closest_key(("train", "stepz"))
    'train.steps'
    """
    import difflib

    model = _section_model(loc[:-1])
    if model is None:
        return None
    found = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return ".".join([*map(str, loc[:-1]), found[0]]) if found else None


def _yaml_line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest existing key along `loc` in the composed YAML."""
    node, line = root, None
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for key, value in node.value:
            if key.value == str(part):
                node, line = value, key.start_mark.line + 1
                break
        else:
            break
    return line


def format_errors(
    err: ValidationError,
    source: str,
    root: yaml.Node | None,
    overrides: dict[tuple[str, ...], str] | None = None,
) -> str:
    """One line per problem, naming where it came from: `--set KEY=VALUE` for an override, else
    the file and the YAML line; an unknown key gets the closest known one."""
    lines = []
    for e in err.errors():
        # pydantic puts union-branch names ("str", "ModelSource") into loc; keep real keys only
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p[:1].isupper()))
        loc = tuple(p for p in loc if p not in ("str",))
        key = ".".join(str(p) for p in loc) or "<top>"
        given = next(
            (item for path, item in (overrides or {}).items() if loc[: len(path)] == path), None
        )
        if given is not None:
            where = f"--set {given}"
        else:
            where = source
            line = _yaml_line(root, loc)
            if line is not None:
                where += f":{line}"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            if (close := closest_key(loc)) is not None:
                msg += f" (did you mean {close}?)"
        elif "input" in e and e["type"] not in ("missing",):
            msg += f" (got {e['input']!r})"
        lines.append(f"{where}: {key}: {msg}")
    # a union (str | ModelSource) reports one error per branch; keep each message once
    return "\n".join(dict.fromkeys(lines))


def save_resolved(config: Config, folder: str | os.PathLike) -> Path:
    """Write `config.yaml` (the resolved config) into `folder`, atomically."""
    from lead_ray.storage import atomic_write_text

    target = Path(folder) / "config.yaml"
    atomic_write_text(target, config.to_yaml())
    return target
