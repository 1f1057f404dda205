"""Structure rules that keep one definition of each thing: errors, ROUGE-L, zoo stage names, card templates, no
private cross-module imports and no import cycle in the composition core. Static checks (AST), no model needed."""

from __future__ import annotations

import ast
import filecmp
import importlib
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hfcl"


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every import in ``path`` (module level and inside functions) as ``(absolute module, imported names)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for path in sources("hfcl", "spaces"):
        own = module_name(path)
        for target, names in imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and target != own:
                offenders.append(f"{path.relative_to(ROOT)}: from {target} import {', '.join(private)}")
    assert not offenders, "\n".join(offenders)


def _graph(prefix: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / prefix.replace(".", "/")).glob("*.py")):
        name = module_name(path)
        edges = set()
        for target, names in imports(path):
            for candidate in [target, *(f"{target}.{n}" for n in names)]:
                if candidate.startswith(prefix + ".") and candidate != name:
                    edges.add(candidate)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_composition_core_has_no_import_cycle():
    graph = _graph("hfcl.compose")  # function-level (lazy) imports count too
    assert not graph["hfcl.compose.algebra"] & {"hfcl.compose.deltas", "hfcl.compose.ia3",
                                                 "hfcl.compose.task_vectors"}
    assert not _cycles(graph), f"import cycles in hfcl.compose: {_cycles(graph)}"
    # and the check itself finds a cycle when there is one
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [{"a", "b"}]


def test_every_error_class_is_defined_in_hfcl_errors_and_old_homes_reexport_it():
    defined_elsewhere = []
    for path in sources("hfcl"):
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                defined_elsewhere.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not defined_elsewhere, defined_elsewhere
    errors = importlib.import_module("hfcl.errors")
    for module, names in {"hfcl.hub.errors": ["HubError", "RunDirError", "HubAuthError", "HubPaymentRequiredError",
                                              "HubUnavailableError", "TokenLeakError"],
                          "hfcl.transfer.errors": ["TransferError", "IncompatibleBaseError"],
                          "hfcl.compose.guards": ["IncompatibleAdaptersError", "UnsupportedAdapterError"],
                          "hfcl.space.inference": ["SpaceInputError"],
                          "hfcl.hub": ["HubError", "RunDirError"],
                          "hfcl.compose": ["IncompatibleAdaptersError"]}.items():
        mod = importlib.import_module(module)
        for name in names:
            assert getattr(mod, name) is getattr(errors, name), f"{module}.{name}"
            assert issubclass(getattr(errors, name), errors.HfclError)


def test_one_rouge_l():
    users = [str(p.relative_to(ROOT)) for p in sources("hfcl", "spaces", "benchmarks")
             if "RougeScorer(" in p.read_text(encoding="utf-8")]
    assert users == ["hfcl/eval/metrics/rouge.py"], users
    from hfcl.compose.demo import split_scores  # noqa: F401  (imports cleanly)
    from hfcl.demo import rouge_l_recall as demo_rouge
    from hfcl.eval.metrics import rouge_l_recall
    from hfcl.space.inference import rouge_l

    prediction, reference = "the cats sat", "the cat sat on the mat"  # stemming: cats -> cat
    expected = rouge_l_recall([prediction], [reference])[0]
    assert expected == pytest.approx(3 / 6)
    assert demo_rouge([reference], [prediction]) == [expected]  # hfcl.demo keeps its (references, predictions) order
    assert rouge_l(prediction, reference) == expected


def test_zoo_stage_names_live_in_one_place():
    from hfcl.hub import cards
    from hfcl.zoo import build, config

    assert cards.ZOO_STAGES == config.MODEL_STAGES == build.MODEL_STAGES
    assert set(config.MODEL_STAGES) == set(config.STAGES) - {"tokenizer"}
    literal = []
    for path in sources("hfcl"):
        if path == PACKAGE / "zoo" / "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if {"base", "target", "retain"} <= values and len(values) >= 3 and "base-v2" in values:
                    literal.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not literal, f"zoo stage lists outside hfcl/zoo/config.py: {literal}"


def test_one_copy_of_the_card_templates():
    from hfcl.hub import cards

    packaged = PACKAGE / "hub" / "model_cards"
    assert packaged.is_dir() and not packaged.is_symlink(), "the packaged templates are the source of truth"
    assert cards.PACKAGE_TEMPLATES == packaged.resolve()
    assert cards.template("model_card.md").resolve().parent == packaged.resolve()
    top = ROOT / "model_cards"
    assert top.is_dir(), "the product card requires a top-level model_cards/"
    if top.is_symlink():
        assert top.resolve() == packaged.resolve()
    else:  # a generated copy must be identical
        names = sorted(p.name for p in packaged.iterdir())
        assert sorted(p.name for p in top.iterdir()) == names
        _, mismatch, errors = filecmp.cmpfiles(top, packaged, names, shallow=False)
        assert not mismatch and not errors, mismatch + errors
    assert "Objective:" in (packaged / "model_card.md").read_text(encoding="utf-8")


def test_merge_registry_is_one_entry_per_merge():
    from hfcl.compose import merges

    assert set(merges.MERGES) == set(merges.MERGE_METHODS) == set(merges.METHOD_DESCRIPTIONS)
    assert merges.NEEDS_DENSITY == tuple(n for n, m in merges.MERGES.items() if m.needs_density)
    for name, entry in merges.MERGES.items():
        assert entry.name == name and entry.description and merges.MERGE_METHODS[name] is entry.merge
        params = inspect.signature(entry.merge).parameters
        assert ("density" in params) == entry.needs_density, name
        assert ("generator" in params) == entry.seeded, name
        assert ("majority_sign" in params) == entry.elects_sign, name
