"""The deployable Space folder (``app.py``, ``requirements.txt``, ``README.md`` with Space metadata) and its push.

The repository's ``spaces/`` folder is exactly ``write_space_folder("spaces")`` (a test keeps them identical), so an
installed hfcl can recreate and push it without the source tree: ``hfcl push-space --hub_model_id me/unlearning``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..utils.io import atomic_directory

APP_FILE = '''"""Hugging Face Space entry point for hfcl: see forgetting happen, side by side.

All logic lives in ``hfcl.space``; this file only builds the app from the Space's variables and serves it:

* ``HFCL_MODELS``: comma-separated models, ``NAME=SOURCE`` or ``SOURCE`` (zoo stages ``target``, ``retain``,
  ``base``; Hub ids of full models or PEFT adapters; run directories). Default ``target,retain``.
* ``HFCL_REPORTS``: extra eval reports, ``NAME=PATH,...`` (a run directory's own reports are found without it).
* ``HFCL_FORGET_SPLIT``: ``forget01``, ``forget05`` or ``forget10`` (default).
* ``HFCL_PRESET``: ``default`` (builds the embedded models on first start, minutes on CPU) or ``tiny`` (seconds).
* ``HFCL_CONTINUAL``: a Hub repo pushed with ``hfcl push --stages`` for the Continual tab (off by default).
* ``HFCL_CONCURRENCY``: requests served at once (default 2; the rest queue).

Run locally with ``python app.py`` or ``hfcl space``.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
{defaults}
from hfcl.space import SpaceSettings, build_space_from_env  # noqa: E402

settings = SpaceSettings(concurrency_limit=int(os.environ.get("HFCL_CONCURRENCY", "2")))
demo = build_space_from_env(settings=settings)
demo.queue(default_concurrency_limit=settings.concurrency_limit, max_size=64)

if __name__ == "__main__":
    demo.launch(ssr_mode=False)
'''

REQUIREMENTS = """# The Gradio runtime preinstalls gradio (sdk_version), huggingface_hub, datasets and requests.
# CPU wheels of torch keep the image small on CPU hardware.
--extra-index-url https://download.pytorch.org/whl/cpu
torch>=2.4
{hfcl}
"""

README_BODY = """
# {title}

Ask the same question to several models at once (for example `target`, which was fine-tuned on every fictitious
author, and `retain`, which never saw the authors to forget). Next to each streamed greedy answer the Space shows:

- **p(truth)**: the model's length-normalised probability of the true answer, `exp(-mean NLL)` over its tokens,
  the number behind `forget_prob` / `retain_prob` in `hfcl eval`;
- **ROUGE-L**: recall of the true answer's longest common subsequence in the model's answer (`rouge_score`).

Forgetting shows up as a number, not a vibe: on a forget-set question the target model gives the truth a high
probability, a well-unlearned model gives it about as little as the retain model.

Tabs: **Compare** (preset questions from the forget, retain and holdout sets, or your own), **Chat** (multi-turn,
chat template applied), **Eval card** (each model's `eval_report.json`: metrics with direction arrows, plots, and how
far an unlearned model moved from `target` towards `retain`) and **Compose** (weights for PEFT LoRA adapters; answers
from the exactly composed adapter).

Models shown: {models}.

## Configure (Settings → Variables)

| variable | default | meaning |
|---|---|---|
| `HFCL_MODELS` | `{default_models}` | up to 4 models, `NAME=SOURCE`: zoo stages, Hub ids, run directories |
| `HFCL_REPORTS` | | extra eval reports, `NAME=PATH,...` (run folders' own reports are found without it) |
| `HFCL_FORGET_SPLIT` | `{forget_split}` | which authors are forgotten |
| `HFCL_PRESET` | `{preset}` | `tiny` builds the embedded models in seconds instead of minutes |
| `HFCL_CONTINUAL` | | a Hub repo pushed with `hfcl push --stages`: the Continual tab browses its stages |
| `HFCL_CONCURRENCY` | `2` | requests served at once (the rest queue) |

## Run it locally

```bash
pip install "hfcl[space]"
hfcl space --models {default_models}   # http://127.0.0.1:7860
```

Gradio Spaces need a paid plan (or ZeroGPU) on the Hub; `hfcl space` runs the same app on your machine.
"""


@dataclass
class SpaceFolderConfig:
    """What the deployed Space shows by default (Space variables still override it)."""

    models: str = field(default="target,retain", metadata={"help": "Default HFCL_MODELS of the Space."})
    forget_split: str = field(default="forget10", metadata={"help": "Default HFCL_FORGET_SPLIT."})
    preset: str = field(default="default", metadata={"help": "Default HFCL_PRESET: 'default' or 'tiny'.",
                                                     "choices": ["default", "tiny"]})
    title: str = field(default="hfcl unlearning side by side", metadata={"help": "Space title."})
    hfcl_requirement: str = field(default="hfcl[space]>=0.1",
                                  metadata={"help": "How the Space installs hfcl (a pip requirement line, e.g. a git "
                                                    "URL while hfcl is not on PyPI)."})
    sdk_version: str = field(default="", metadata={"help": "Gradio version of the Space (default: installed)."})


DEFAULT = SpaceFolderConfig()


def _hub_ids(models: str) -> list[str]:
    from ..zoo.build import MODEL_STAGES
    from .models import parse_model_specs

    ids = []
    for spec in parse_model_specs(models):
        if spec.source not in MODEL_STAGES and spec.local_dir is None and spec.source.count("/") == 1:
            ids.append(spec.source)
    return ids


def space_files(config: SpaceFolderConfig = DEFAULT) -> dict[str, str]:
    """``{"app.py", "requirements.txt", "README.md"}`` texts of the Space for ``config``."""
    from huggingface_hub import SpaceCard, SpaceCardData

    if config.preset not in ("default", "tiny"):
        raise ConfigError(f"preset must be 'default' or 'tiny', got {config.preset!r}.")
    hub_models = _hub_ids(config.models)  # also validates the model list
    defaults = {"HFCL_MODELS": config.models, "HFCL_FORGET_SPLIT": config.forget_split, "HFCL_PRESET": config.preset}
    changed = {k: v for k, v in defaults.items()
               if v != {"HFCL_MODELS": DEFAULT.models, "HFCL_FORGET_SPLIT": DEFAULT.forget_split,
                        "HFCL_PRESET": DEFAULT.preset}[k]}
    lines = "".join(f"os.environ.setdefault({k!r}, {v!r})\n" for k, v in changed.items())
    if config.sdk_version:
        sdk_version = config.sdk_version
    else:
        import gradio

        sdk_version = gradio.__version__
    data = SpaceCardData(title=config.title, emoji="🧽", colorFrom="indigo", colorTo="pink", sdk="gradio",
                         sdk_version=sdk_version, python_version="3.12", app_file="app.py",
                         startup_duration_timeout="1h", license="apache-2.0",
                         short_description="See a model forget, as numbers, side by side.",
                         models=hub_models or None,
                         tags=["hfcl", "machine-unlearning", "continual-learning", "peft"])
    body = README_BODY.format(title=config.title, models=", ".join(f"`{m}`" for m in config.models.split(",")),
                              default_models=config.models, forget_split=config.forget_split, preset=config.preset)
    readme = str(SpaceCard(f"---\n{data.to_yaml()}\n---\n{body}"))
    return {"app.py": APP_FILE.format(defaults=lines), "requirements.txt": REQUIREMENTS.format(
        hfcl=config.hfcl_requirement), "README.md": readme}


def write_space_folder(out_dir: str | os.PathLike, config: SpaceFolderConfig = DEFAULT, overwrite: bool = False,
                       ) -> Path:
    """Write the Space folder atomically (``overwrite`` replaces an existing one); returns its path."""
    files = space_files(config)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text, encoding="utf-8")
    return Path(out_dir)


def push_space_app(repo_id: str, config: SpaceFolderConfig = DEFAULT, **push: Any):
    """Create the Space ``repo_id`` and upload app, requirements and card in one commit (``hfcl.hub.push_space``).

    ``push``: ``private``, ``dry_run`` (a folder: write what would be pushed, push nothing), ``token``,
    ``endpoint``, ... A free account gets :class:`~hfcl.hub.errors.HubPaymentRequiredError` (402) with the options.
    """
    import tempfile

    from ..hub import push_space

    with tempfile.TemporaryDirectory(prefix="hfcl-space-") as tmp:
        folder = write_space_folder(Path(tmp) / "space", config)
        return push_space(folder, repo_id, **push)


@dataclass
class PushSpaceArguments:
    """Where to create the Space, and whether to only write what would be pushed."""

    hub_model_id: str = field(metadata={"help": "Space to create or update, 'namespace/name' (the name `hfcl push` "
                                                "and the trainers use; --repo_id still works for one release)."})
    private: bool = field(default=False, metadata={"help": "Create the Space private."})
    dry_run: bool = field(default=False, metadata={"help": "Write the files that would be pushed to --dry_run_dir "
                                                           "and push nothing."})
    dry_run_dir: str | None = field(default=None, metadata={"help": "Folder for --dry_run (default: "
                                                                    "./space_dry_run); giving it implies --dry_run."})


def _legacy_dry_run(argv: Sequence[str]) -> list[str]:
    """``--dry_run FOLDER`` (the old spelling, a folder) -> ``--dry_run --dry_run_dir FOLDER``, with a note."""
    from ..config import deprecation_note

    argv, out = list(argv), []
    booleans = {"true", "false", "yes", "no", "1", "0", "t", "f", "y", "n"}
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, sep, value = arg.partition("=")
        if flag in ("--dry_run", "--dry-run"):
            if not sep and i + 1 < len(argv) and not argv[i + 1].startswith("-") \
                    and argv[i + 1].lower() not in booleans:
                value, sep = argv[i + 1], "="
                i += 1
            if sep and value.lower() not in booleans:
                deprecation_note(f"{flag} FOLDER", "--dry_run --dry_run_dir FOLDER")
                out += ["--dry_run", "--dry_run_dir", value]
                i += 1
                continue
        out.append(arg)
        i += 1
    return out


def push_main(argv: Sequence[str]) -> int:
    """``hfcl push-space``: create a Gradio Space running hfcl's app and upload it in one commit."""
    from ..config import check_output_writable, parse_args

    args, config = parse_args([PushSpaceArguments, SpaceFolderConfig], _legacy_dry_run(argv), prog="hfcl push-space",
                              description="Create a Gradio Space that runs the hfcl app and upload app.py, "
                                          "requirements.txt and its card in one commit.")
    dry_run = (args.dry_run_dir or "space_dry_run") if args.dry_run or args.dry_run_dir else None
    if dry_run:
        check_output_writable(dry_run, "--dry_run_dir")
    result = push_space_app(args.hub_model_id, config, private=args.private, dry_run=dry_run)
    where = f"dry run written to {result.dry_run_dir}" if dry_run else f"https://huggingface.co/spaces/{args.hub_model_id}"
    print(f"Space {args.hub_model_id}: {where}")
    return 0
