"""Config dataclasses from YAML files and command-line flags (HfArgumentParser / TrlParser style).

YAML keys and CLI flags are the same names. Values from ``--config file.yaml`` become defaults; flags given on the
command line override them. An unknown key is a :class:`~hfcl.errors.ConfigError` that lists the valid keys.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
from typing import Any, Sequence, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping is a :class:`ConfigError`."""
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {str(path)!r} does not exist.")
    with open(path, encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {str(path)!r} must hold a mapping of option names to values, "
                          f"got {type(data).__name__}.")
    return data


def field_names(*classes: type) -> list[str]:
    """Init-able field names of the given dataclasses, in declaration order."""
    names: list[str] = []
    for cls in classes:
        names += [f.name for f in dataclasses.fields(cls) if f.init and f.name not in names]
    return names


def check_keys(keys: Sequence[str], classes: Sequence[type], source: str) -> None:
    """Raise :class:`ConfigError` naming each unknown key, a close match, and the valid keys."""
    valid = field_names(*classes)
    unknown = [k for k in keys if k not in valid]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, valid, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"Unknown option(s) in {source}: {', '.join(hints)}. Valid keys: {', '.join(sorted(valid))}.")


def load_config(cls: type[T], source: str | os.PathLike | dict[str, Any] | None = None, **overrides: Any) -> T:
    """Build dataclass ``cls`` from a YAML path or a dict, then apply keyword overrides.

    >>> from hfcl.zoo import ZooConfig
    >>> load_config(ZooConfig, {"seed": 3}, n_layers=2).seed
    3
    """
    values = dict(read_yaml(source) if isinstance(source, (str, os.PathLike)) else (source or {}))
    values.update(overrides)
    check_keys(list(values), [cls], str(source) if source is not None and not isinstance(source, dict) else "config")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"Invalid value in {cls.__name__}: {exc}") from exc


def parse_args(classes: Sequence[type], argv: Sequence[str] | None, prog: str, description: str) -> tuple:
    """Parse ``argv`` into instances of ``classes``, honouring ``--config file.yaml`` (CLI flags win)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(list(classes), prog=prog, description=description)
    parser.add_argument("--config", type=str, default=None, metavar="FILE.yaml",
                        help="YAML file whose keys are any of the options below; flags given here override it.")
    argv = list(argv or [])
    pre_parser = argparse.ArgumentParser(add_help=False)
    pre_parser.add_argument("--config", default=None)
    pre, _ = pre_parser.parse_known_args(argv)
    if pre.config:
        values = read_yaml(pre.config)
        check_keys(list(values), classes, pre.config)
        parser.set_defaults(**values)
        for action in parser._actions:  # a value from YAML satisfies a required flag
            if action.dest in values:
                action.required = False
    namespace, remaining = parser.parse_known_args(argv)
    if remaining:
        parser.error(f"unrecognized arguments: {' '.join(remaining)}")
    namespace_dict = vars(namespace)
    namespace_dict.pop("config", None)
    outputs = []
    for cls in classes:
        keys = {f.name for f in dataclasses.fields(cls) if f.init}
        kwargs = {k: v for k, v in namespace_dict.items() if k in keys}
        try:
            outputs.append(cls(**kwargs))
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Invalid value for {cls.__name__}: {exc}") from exc
    return tuple(outputs)

