"""Reading a config: YAML files, dotted ``key.sub=value`` overrides, and validation errors as messages
that name the key, the value given and what is allowed. Independent of which tree is read (``config.py``)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from itero.schema import ConfigError


def read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if not path.is_file():
        raise ConfigError(f"config file {path} is not a file (give a YAML file, e.g. configs/quickstart.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}): is it a YAML config?") from None
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read: {err.strerror}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{where}: {getattr(err, 'problem', err)}") from None
    if data is None:  # an empty file is a mistake, not a request for every default (that is `itero quickstart`)
        raise ConfigError(f"{path} is empty: give a config (e.g. configs/quickstart.yaml), or run `itero quickstart`")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (model, task, ...)")
    return data


def apply_override(data: dict, item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.sub=value (e.g. algorithm.beta=0.2)")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:  # not YAML (e.g. "Q: {prompt} A:"): the text itself
        value = raw
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw  # YAML 1.1 reads yes/no/on/off as booleans: on the command line they are words (a name "no")
    key = key.strip()
    new = _moves(data, key)
    if new is not None:  # an old key goes to its new place here, so that it wins over the file as any override does
        if value is None:
            return  # null: its default
        key = new
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
    # `algorithm=raft` switches the whole section to another variant with its own defaults
    if parts == ["algorithm"] and not isinstance(value, dict):
        value = {"name": value}
    node[parts[-1]] = value


# keys that moved: old dotted key -> (new one, the algorithm whose key it is, or None for any). A run
# directory's config.yaml and an override of the old key keep loading.
MOVED = {
    "generation.tis_cap": ("algorithm.tis_cap", None),
    "algorithm.dpo_loss": ("algorithm.dpo.loss", "rto"),
    "algorithm.dpo_beta": ("algorithm.dpo.beta", "rto"),
    "algorithm.dpo_nll_weight": ("algorithm.dpo.nll_weight", "rto"),
}


def _moves(data: dict, old: str) -> str | None:
    """The new key of ``old`` when it moved for the algorithm ``data`` names; None if it did not move."""
    if old not in MOVED:
        return None
    new, algorithm = MOVED[old]
    section = data.get("algorithm")
    if algorithm is not None and not (isinstance(section, dict) and section.get("name") == algorithm):
        return None
    return new


def migrate(data: dict) -> None:
    """Move the keys of ``MOVED`` to their new place; a null old value is dropped (its default), and a
    value already at the new place (an override) stays."""
    for old in MOVED:
        new = _moves(data, old)
        if new is None:
            continue
        *path, leaf = old.split(".")
        node = data
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        value = node.pop(leaf)
        if value is None:
            continue
        *new_path, new_leaf = new.split(".")
        target = data
        for part in new_path:
            target = target.setdefault(part, {}) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target.setdefault(new_leaf, value)
        else:  # the new section is not a mapping: the old key stays, and validation names both
            node[leaf] = value


def explain(err: ValidationError, root: type[BaseModel], algorithm_configs: dict, default_algorithm: str) -> str:
    """One line per error: the dotted key, the value given and what is allowed (close matches for typos).

    ``algorithm`` is a tagged union: pydantic puts the variant's name in the error path, which is dropped
    so the key reads as the user wrote it."""
    lines = ["invalid config:"]
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        if loc[:1] == ["algorithm"] and len(loc) > 1 and loc[1] in algorithm_configs:
            loc = ["algorithm", *loc[2:]]
        key = ".".join(loc) or "(root)"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1], e["loc"], root, algorithm_configs, default_algorithm)
            hint = difflib.get_close_matches(loc[-1], allowed, n=1)
            msg = f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            msg += f"; allowed here: {', '.join(sorted(allowed))}"
        elif e.get("input", "") is None and e["type"] != "missing":
            msg = f"null is not allowed for {key}: give a value, or leave the key out for its default"
        else:
            given = e.get("input")
            shown = "" if isinstance(given, dict) else f" got {given!r}:"
            msg = f"{key}:{shown} {e['msg']}"
        lines.append("  - " + msg)
    return "\n".join(lines)


def _allowed_keys(loc: list[str], raw_loc: tuple, root, algorithm_configs: dict, default_algorithm: str) -> list[str]:
    model: Any = root
    if loc[:1] == ["algorithm"]:  # the variant's fields, then its nested sections (rto's dpo)
        variant = raw_loc[1] if len(raw_loc) > 1 and raw_loc[1] in algorithm_configs else default_algorithm
        model, loc = algorithm_configs[variant], loc[1:]
    for part in loc:
        field = model.model_fields.get(part)
        ann = field.annotation if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)
