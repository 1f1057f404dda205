"""Which base model an adapter was trained on, and whether a given model is that base.

An adapter folder names its base in ``adapter_config.json`` (``base_model_name_or_path``: a local folder, a Hub id
or, once pushed, ``hfcl:<stage>@<hash>`` for an embedded zoo model), and an hfcl run directory also in
``hfcl_run.json`` (``base_model.local_path`` / ``.path`` / ``.id``). Names are compared by *identity*, never by loading a
model or building a zoo stage:

* ``("zoo", stage, hash)``: a zoo stage name (hash from the recipe), an ``hfcl:`` reference or a folder of the zoo
  cache; two zoo identities differ when the stage differs, or when both hashes are known and differ;
* ``("dir", realpath)``: another existing local folder (equal when the real paths or the weights' sha256 agree);
* ``("hub", id)``: anything else that looks like a Hub id.

Identities of different kinds, a path that does not exist here, or no record at all are *unknown*: no verdict.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

Identity = tuple[str, str, str | None]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recorded_bases(folder: str | os.PathLike) -> list[str]:
    """The base names ``folder`` records, best first: adapter_config's ``base_model_name_or_path``, then
    hfcl_run.json's ``base_model.local_path`` (or the older ``path``) and ``base_model.id``. Empty when nothing is recorded or readable."""
    root = Path(folder)
    names = [_read_json(root / "adapter_config.json").get("base_model_name_or_path")]
    base = _read_json(root / "hfcl_run.json").get("base_model")
    if isinstance(base, dict):
        names += [base.get("local_path"), base.get("path"), base.get("id")]
    elif isinstance(base, str):
        names.append(base)
    out: list[str] = []
    for name in names:
        if isinstance(name, str) and name.strip() and name not in out:
            out.append(name.strip())
    return out


def base_identity(name: str | None, zoo_config=None, forget_split: str = "forget10") -> Identity | None:
    """The identity of a model name (see the module docstring); ``None`` when it cannot be known here."""
    from ..zoo import cache
    from ..zoo.build import MODEL_STAGES, stage_key, stage_name

    if not name:
        return None
    name = str(name).rstrip("/")
    if name in MODEL_STAGES:  # the recipe's hash, computed without building the stage
        return "zoo", stage_name(name, forget_split), stage_key(name, zoo_config, forget_split)
    ref = name if name.startswith("hfcl:") else (cache.zoo_ref(name) if os.path.isdir(name) else None)
    if ref is not None:
        head, _, rest = ref.partition("/")
        parsed = cache.parse_zoo_ref(head)
        if parsed is None or rest:  # a file under a zoo entry, or not a reference at all
            return None
        return "zoo", parsed[0], parsed[1]
    if os.path.isdir(name):
        return "dir", os.path.realpath(name), None
    if os.path.isabs(name) or name.startswith((".", "~")) or os.sep + os.sep in name:
        return None  # a local path that is not on this machine
    return "hub", name, None


def _weights_digest(folder: str) -> str | None:
    from ..zoo.cache import file_digest

    files = sorted(Path(folder).glob("*.safetensors"))
    return file_digest(files[0]) if len(files) == 1 else None


def same_base(a: Identity | None, b: Identity | None) -> bool | None:
    """True / False when the two identities are / are not the same model, ``None`` when that is unknown."""
    if a is None or b is None or a[0] != b[0]:
        return None
    kind = a[0]
    if kind == "zoo":
        if a[1] != b[1]:
            return False
        return None if a[2] is None or b[2] is None else a[2] == b[2]
    if kind == "dir":
        if a[1] == b[1]:
            return True
        digests = _weights_digest(a[1]), _weights_digest(b[1])
        return None if None in digests else digests[0] == digests[1]
    return a[1] == b[1]


def display_name(identity: Identity | None, fallback: str, zoo_config=None, forget_split: str = "forget10") -> str:
    """How to name a base on the command line: the stage name when it is this recipe's stage, else
    ``hfcl:<stage>@<hash>`` for zoo models, else ``fallback``."""
    if identity is None or identity[0] != "zoo":
        return fallback
    from ..zoo.build import MODEL_STAGES

    for stage in MODEL_STAGES:
        if base_identity(stage, zoo_config, forget_split) == identity or (
                identity[2] is None and base_identity(stage, zoo_config, forget_split)[1] == identity[1]):
            return stage
    return f"hfcl:{identity[1]}" + (f"@{identity[2]}" if identity[2] else "")


def adapter_base(folder: str | os.PathLike, zoo_config=None, forget_split: str = "forget10"
                 ) -> tuple[str, Identity] | None:
    """``(recorded name, identity)`` of the first base ``folder`` records that can be identified here, or ``None``."""
    for name in recorded_bases(folder):
        identity = base_identity(name, zoo_config, forget_split)
        if identity is not None:
            return name, identity
    return None
