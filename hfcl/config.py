"""Config dataclasses from YAML files and command-line flags (HfArgumentParser / TrlParser style).

Every ``hfcl`` command parses through :func:`parse_args`. YAML keys and CLI flags are the same names. Values from
``--config file.yaml`` become defaults; flags given on the command line override them. An unknown key or flag is an
error with a did-you-mean. ``--help`` lists the command's own options first, one group per dataclass, and the
options inherited from ``transformers.TrainingArguments`` last.

One vocabulary across commands (``--output_dir``, ``--lora_r``, ``--num_train_epochs``,
``--per_device_train_batch_size`` / ``--per_device_eval_batch_size``, ``--zoo default|tiny``, ``--preset`` for a
hyperparameter recipe, ``--dry_run`` + ``--dry_run_dir``). Old spellings in :data:`DEPRECATED_ALIASES` still work,
as flags and as YAML keys, for one release, with a one-line deprecation note naming the new flag.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import inspect
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml

from .errors import ConfigError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ScopedAlias:
    """A deprecated spelling that only some commands had: ``targets`` as in :data:`DEPRECATED_ALIASES`, and
    ``only`` the commands (``"demo"``, ``"hfcl demo"``) or dataclass names (``"DemoArguments"``) it applies to."""

    targets: tuple[str, ...]
    only: tuple[str, ...]

    def applies_to(self, prog: str, classes: Sequence[type]) -> bool:
        """Whether the command ``prog`` made of ``classes`` is in scope."""
        command = prog.removeprefix("hfcl ").strip()
        names = {prog, command, *(cls.__name__ for cls in classes)}
        return bool(names & set(self.only))


#: Old spelling -> canonical flag(s). With several candidates, the first one the command has wins (``--batch_size``
#: was the training batch in ``negate`` and the scoring batch in ``eval``). An alias is only active in a command that
#: does not itself have an option of that name (``unlearn --preset demo`` is a hyperparameter recipe, not a zoo).
#: A :class:`ScopedAlias` applies only to the commands / dataclasses it names: ``--push`` was the demo's repo flag,
#: and must not become a hidden ``--hub_model_id`` of every trainer (``hfcl unlearn --push true`` is an error).
DEPRECATED_ALIASES: dict[str, tuple[str, ...] | ScopedAlias] = {
    "out": ("output_dir",),
    "r": ("lora_r",),
    "rank": ("lora_r",),
    "epochs": ("num_train_epochs",),
    "batch_size": ("per_device_train_batch_size", "per_device_eval_batch_size"),
    "preset": ("zoo",),
    "repo_id": ("hub_model_id",),  # push / push-space now use the trainers' (TrainingArguments') name
    "push": ScopedAlias(("hub_model_id",), only=("demo", "DemoArguments")),  # the demo's `--push REPO`
}

#: Dataclass fields whose Python name stays (a cache key or a library API uses it) but whose flag and YAML key follow
#: the vocabulary: ``(class name, field name) -> flag``.
FLAG_NAMES: dict[tuple[str, str], str] = {
    ("ZooConfig", "batch_size"): "per_device_train_batch_size",
    ("EvalConfig", "batch_size"): "per_device_eval_batch_size",
    ("SpaceFolderConfig", "preset"): "zoo",
}

#: Flags whose numeric value must be >= 1, and those that must be >= 0 (checked before any dataclass is built, so a
#: bad value is a ConfigError naming the flag rather than a traceback from deep inside training).
AT_LEAST_ONE = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                "lora_r", "n_seeds", "max_length", "max_new_tokens")
NON_NEGATIVE = ("learning_rate", "num_train_epochs", "weight_decay", "warmup_steps", "lora_alpha", "lam")

TRAINER_GROUP = "Trainer options (transformers.TrainingArguments)"
_GIVEN_ATTR = "_hfcl_given_fields"


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


def _unknown_message(unknown: Sequence[str], valid: Sequence[str], source: str) -> str:
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, valid, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"Unknown option(s) in {source}: {', '.join(hints)}. Valid keys: {', '.join(sorted(valid))}."


def check_keys(keys: Sequence[str], classes: Sequence[type], source: str) -> None:
    """Raise :class:`ConfigError` naming each unknown key, a close match, and the valid keys."""
    valid = field_names(*classes)
    unknown = [k for k in keys if k not in valid]
    if unknown:
        raise ConfigError(_unknown_message(unknown, valid, source))


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


def flag_name(cls: type, name: str) -> str:
    """The flag (and YAML key) of field ``name`` of dataclass ``cls``."""
    return FLAG_NAMES.get((cls.__name__, name), name)


def deprecation_note(old: str, new: str, where: str = "") -> None:
    """Print the one-line note for an old spelling (stderr)."""
    print(f"hfcl: {old}{where} is deprecated, use {new} (the old spelling goes away in the next release).",
          file=sys.stderr)


def trainer_fields(cls: type) -> set[str]:
    """Fields ``cls`` inherits from ``transformers.TrainingArguments`` without redeclaring them."""
    try:
        from transformers import TrainingArguments
    except ImportError:  # pragma: no cover - transformers is a dependency
        return set()
    if not (isinstance(cls, type) and issubclass(cls, TrainingArguments)):
        return set()
    own: set[str] = set()
    for klass in cls.__mro__:
        if klass is TrainingArguments:
            break
        own |= set(inspect.get_annotations(klass))
    return {f.name for f in dataclasses.fields(TrainingArguments)} - own


def _plain(text: str) -> str:
    """Docstring markup (``:class:`~x.Y```, double backquotes) as plain text for ``--help``."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([\w]+)`", r"\1", text)
    return text.replace("``", "")


class _DeprecatedAlias(argparse.Action):
    """A hidden old spelling of an option: prints the deprecation line, then acts as the canonical option."""

    def __init__(self, option_strings, dest, target: argparse.Action | None = None, **kwargs):
        self.target = target
        super().__init__(option_strings, dest, nargs=target.nargs, const=target.const, default=argparse.SUPPRESS,
                         type=target.type, choices=target.choices, help=argparse.SUPPRESS)

    def __call__(self, parser, namespace, values, option_string=None):
        if not getattr(parser, "quiet", False):
            deprecation_note(option_string, self.target.option_strings[0])
        self.target(parser, namespace, values, self.target.option_strings[0])


class _AppendOne(argparse.Action):
    """A repeatable list option (``--adapter a=x --adapter b=y``): one value per flag, so a positional may follow."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest, None) or [])
        items.append(values)
        setattr(namespace, self.dest, items)


class HfclArgumentParser(argparse.ArgumentParser):
    """An ``HfArgumentParser``-style parser for hfcl commands (see :func:`build_parser`).

    ``field_of[flag] = (dataclass, field name)``; ``required_flags`` lists the flags without a default (checked
    after parsing, so that a positional, a YAML key or a deprecated alias can satisfy them); ``positional`` maps a
    field's flag to its positional argument's dest; ``aliases`` maps each old option string to the canonical flag.
    A field with ``metadata={"repeatable": True}`` (a list) takes one value per flag: ``--adapter a=x --adapter b=y``.
    """

    def __init__(self, classes: Sequence[type], prog: str, description: str, positional: Sequence[str] = ()):
        usage = " ".join([prog, *(f"[{p.upper()}]" for p in positional), "[--config FILE.yaml] [options]"])
        super().__init__(prog=prog, description=description, usage=usage, allow_abbrev=False,
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        # `--learning_rate -1e-5` is a (bad) value, not an unknown option: negative numbers in any notation
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
        self.classes = list(classes)
        self.field_of: dict[str, tuple[type, str]] = {}
        self.required_flags: list[str] = []
        self.positional: dict[str, str] = {}
        self.aliases: dict[str, str] = {}  # old option string -> canonical flag
        self.quiet = False  # no deprecation lines while re-parsing for explicit_dests
        self.add_argument("--config", type=str, default=None, metavar="FILE.yaml",
                          help="YAML file whose keys are any of the options below (old spellings accepted); flags "
                               "given here override it.")
        for name in positional:
            self.add_argument(f"_positional_{name}", metavar=name.upper(), nargs="?", default=None,
                              help=f"Same as --{name}.")
            self.positional[name] = f"_positional_{name}"
        from transformers import HfArgumentParser

        inherited: list[tuple[type, dataclasses.Field]] = []
        for cls in self.classes:
            hints = get_type_hints(cls)
            skip = trainer_fields(cls)
            doc = _plain((inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " "))
            group = self.add_argument_group(getattr(cls, "_argument_group_name", cls.__name__), doc or None)
            for f in dataclasses.fields(cls):
                if not f.init:
                    continue
                if f.name in skip:
                    inherited.append((cls, f))
                    continue
                self._add_field(HfArgumentParser, group, cls, f, hints[f.name])
        if inherited:
            group = self.add_argument_group(TRAINER_GROUP, "Inherited from transformers.TrainingArguments (see its "
                                                           "documentation); also YAML keys.")
            hints_of: dict[type, dict[str, Any]] = {}
            for cls, f in inherited:
                hints = hints_of.setdefault(cls, get_type_hints(cls))
                self._add_field(HfArgumentParser, group, cls, f, hints[f.name])
        self._add_aliases()

    def _add_field(self, hf_parser, group, cls: type, f: dataclasses.Field, hint: Any) -> None:
        flag = flag_name(cls, f.name)
        if flag in self.field_of:
            raise ConfigError(f"Option --{flag} is defined by both {self.field_of[flag][0].__name__} and "
                              f"{cls.__name__}.")
        metadata = dict(f.metadata)
        repeatable = metadata.pop("repeatable", False)
        if repeatable:
            metadata["action"] = _AppendOne
        proxy = dataclasses.field(default=f.default, default_factory=f.default_factory, metadata=metadata)
        proxy.name, proxy.type = flag, hint
        before = len(self._actions)
        hf_parser._parse_dataclass_field(group, proxy)
        for action in self._actions[before:]:
            if repeatable:
                action.nargs = None
            if action.option_strings[0].startswith("--no_"):
                action.help = f"Same as --{flag} false."
            if action.required:
                action.required = False
                self.required_flags.append(action.dest)
        self.field_of[flag] = (cls, f.name)

    def _add_aliases(self) -> None:
        actions: dict[str, argparse.Action] = {}
        for action in self._actions:
            if action.option_strings:
                actions.setdefault(action.dest, action)  # the flag itself, not its --no_ complement
        for old, candidates in DEPRECATED_ALIASES.items():
            if f"--{old}" in self._option_string_actions or old in self.field_of:
                continue
            if isinstance(candidates, ScopedAlias):
                if not candidates.applies_to(self.prog, self.classes):
                    continue
                candidates = candidates.targets
            canonical = next((c for c in candidates if c in self.field_of), None)
            if canonical is None:
                continue
            target = actions[canonical]
            strings = [f"--{old}"] + ([f"--{old.replace('_', '-')}"] if "_" in old else [])
            self.add_argument(*strings, dest=canonical, action=_DeprecatedAlias, target=target)
            for string in strings:
                self.aliases[string] = f"--{canonical}"

    @property
    def option_names(self) -> list[str]:
        """Flags (YAML keys) of this command, without ``help`` and ``config``."""
        return list(self.field_of)

    def canonical_keys(self, values: dict[str, Any], source: str) -> dict[str, Any]:
        """YAML ``values`` with old spellings renamed (and noted); an unknown key is a :class:`ConfigError`."""
        out: dict[str, Any] = {}
        unknown = []
        for key, value in values.items():
            if key in self.field_of:
                out[key] = value
            elif f"--{key}" in self.aliases:
                new = self.aliases[f"--{key}"][2:]
                deprecation_note(f"key {key!r}", repr(new), f" in {source}")
                out[new] = value
            else:
                unknown.append(key)
        if unknown:
            raise ConfigError(_unknown_message(unknown, self.option_names, source))
        return out

    def error_unknown(self, remaining: Sequence[str]) -> None:
        """``parser.error`` for unrecognized arguments, with a did-you-mean for each unknown flag."""
        visible = [s for a in self._actions if a.help is not argparse.SUPPRESS for s in a.option_strings]
        hints = []
        for token in remaining:
            if token.startswith("-"):
                close = difflib.get_close_matches(token.split("=", 1)[0], visible, n=1, cutoff=0.6)
                if close:
                    hints.append(f"{token}: did you mean {close[0]}?")
        more = f" ({'; '.join(hints)})" if hints else ""
        self.error(f"unrecognized arguments: {' '.join(remaining)}{more}. Run `{self.prog} --help` for the options.")

    def explicit_dests(self, argv: Sequence[str]) -> set[str]:
        """Dests set by ``argv`` itself (not by a default)."""
        saved = [(a, a.default) for a in self._actions]
        self.quiet = True
        try:
            for action in self._actions:
                action.default = argparse.SUPPRESS
            namespace, _ = self.parse_known_args(list(argv))
        finally:
            self.quiet = False
            for action, default in saved:
                action.default = default
        return set(vars(namespace))


def build_parser(classes: Sequence[type], prog: str, description: str,
                 positional: Sequence[str] = ()) -> HfclArgumentParser:
    """The parser of a command made of ``classes`` (dataclasses; fields with ``metadata={"help": ...}``).

    ``positional`` names fields that may also be given as bare leading arguments (``hfcl compose "a + b"``,
    ``hfcl push RUN_DIR``); they remain settable as flags and YAML keys.
    """
    return HfclArgumentParser(classes, prog, description, positional)


class ParserCaptured(BaseException):
    """Raised by :func:`parse_args` inside :func:`capture_parsers`: the command's parser was built, nothing ran."""


_CAPTURED: list[list[HfclArgumentParser]] = []


@contextlib.contextmanager
def capture_parsers() -> Iterator[list[HfclArgumentParser]]:
    """Inside this block :func:`parse_args` records the parser it builds and raises :class:`ParserCaptured`
    instead of parsing (how ``hfcl.cli.command_parser`` inspects a command without running it)."""
    captured: list[HfclArgumentParser] = []
    _CAPTURED.append(captured)
    try:
        yield captured
    finally:
        _CAPTURED.remove(captured)


def check_ranges(values: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` for a numeric option outside its range (batch size 0, negative lr, ...)."""
    def number(value: Any) -> float | None:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, (int, float)):
            return float(value)
        return None

    for flag in AT_LEAST_ONE:
        value = number(values.get(flag))
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} must be at least 1, got {values[flag]}.")
    for flag in NON_NEGATIVE:
        value = number(values.get(flag))
        if value is not None and value < 0:
            raise ConfigError(f"--{flag} must be >= 0, got {values[flag]}.")


def given_fields(obj: Any) -> set[str]:
    """Field names of a dataclass returned by :func:`parse_args` that the command line or YAML set explicitly."""
    return set(getattr(obj, _GIVEN_ATTR, set()))


def has_given_fields(obj: Any) -> bool:
    """Whether ``obj`` came from :func:`parse_args` (so :func:`given_fields` is known, possibly empty)."""
    return hasattr(obj, _GIVEN_ATTR)


def copy_given_fields(source: Any, target: Any) -> None:
    """Give ``target`` the explicitly-set field names of ``source`` (a rebuilt config keeps what the user gave)."""
    if hasattr(source, _GIVEN_ATTR):
        object.__setattr__(target, _GIVEN_ATTR, getattr(source, _GIVEN_ATTR))


def parse_args(classes: Sequence[type], argv: Sequence[str] | None, prog: str, description: str, *,
               positional: Sequence[str] = ()) -> tuple:
    """Parse ``argv`` into instances of ``classes``, honouring ``--config file.yaml`` (CLI flags win).

    Old spellings (:data:`DEPRECATED_ALIASES`) work as flags and YAML keys with a deprecation line; an unknown flag
    exits with a did-you-mean; a numeric option out of range or an invalid value is a :class:`ConfigError`.
    """
    parser = build_parser(classes, prog, description, positional)
    if _CAPTURED:
        _CAPTURED[-1].append(parser)
        raise ParserCaptured(prog)
    argv = list(argv or [])
    pre_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre_parser.add_argument("--config", default=None)
    pre, _ = pre_parser.parse_known_args(argv)
    from_yaml: dict[str, Any] = {}
    if pre.config:
        from_yaml = parser.canonical_keys(read_yaml(pre.config), pre.config)
        parser.set_defaults(**from_yaml)
    namespace, remaining = parser.parse_known_args(argv)
    if remaining:
        parser.error_unknown(remaining)
    values = vars(namespace)
    values.pop("config", None)
    for name, dest in parser.positional.items():
        given = values.pop(dest, None)
        if given is not None:
            if any(a == f"--{name}" or a.startswith(f"--{name}=") for a in argv):
                parser.error(f"{name} given twice: as the positional {name.upper()} and as --{name}.")
            values[name] = given
    missing = [flag for flag in parser.required_flags if values.get(flag) is None]
    if missing:
        parser.error("the following arguments are required: " + ", ".join(
            (f"{m.upper()} (or --{m})" if m in parser.positional else f"--{m}") for m in missing))
    explicit = (parser.explicit_dests(argv) | set(from_yaml)) - {"config"}
    explicit = {n for n in explicit if not n.startswith("_positional_")} | {
        n for n, d in parser.positional.items() if values.get(n) is not None}
    check_ranges(values)
    outputs = []
    for cls in classes:
        kwargs, given = {}, set()
        for f in dataclasses.fields(cls):
            flag = flag_name(cls, f.name)
            if f.init and flag in values:
                kwargs[f.name] = values[flag]
                if flag in explicit:
                    given.add(f.name)
        try:
            obj = cls(**kwargs)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Invalid value for {cls.__name__}: {exc}") from exc
        object.__setattr__(obj, _GIVEN_ATTR, frozenset(given))
        outputs.append(obj)
    return tuple(outputs)


def check_output_writable(path: str | os.PathLike, flag: str = "--output_dir") -> Path:
    """Raise :class:`ConfigError` (before any work) if ``path`` cannot be created or written.

    Walks up to the nearest existing folder and creates (then removes) a temporary file there, so a parent that is a
    file, a read-only or missing mount, or a permission problem is reported up front, naming ``flag``.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {str(out)!r} exists and is a file, not a folder; choose another {flag}.")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"{flag} {str(out)!r} cannot be created: {str(probe)!r} is a file, not a folder.")
    try:
        handle, name = tempfile.mkstemp(prefix=".hfcl-write-check-", dir=probe)
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        raise ConfigError(f"{flag} {str(out)!r} cannot be written ({exc.strerror or exc}); choose a folder you can "
                          "write to.") from exc
    return out
