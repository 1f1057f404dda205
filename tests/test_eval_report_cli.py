"""EvalReport round trip, tables, plots, and the `hfcl eval` command."""

import json

import pytest
import yaml
from rich.console import Console

from hfcl.errors import ConfigError, OutputExistsError
from hfcl.eval import EvalReport, compare_table
from hfcl.eval.cli import main
from hfcl.eval.definitions import DEFINITIONS
from hfcl.eval.plots import compare_plot, write_plots


def _report(name="m", fq=0.5):
    return EvalReport(suite="tofu", aggregates={"forget_quality": fq, "privleak": None, "forget_rouge": 0.25},
                      per_example={"forget": {"truth_ratio": [0.5, None, 2.0], "mia_min_k": [1.0, 2.0, 3.0]},
                                   "holdout": {"mia_min_k": [3.0, 4.0]}},
                      definitions={k: DEFINITIONS[k] for k in ("forget_quality", "privleak", "forget_rouge")},
                      model={"id": name, "adapter_id": None}, data={"fingerprint": "abc"}, seed=3,
                      notes=["privleak is not computed"])


def test_json_round_trip(tmp_path):
    report = _report()
    again = EvalReport.from_json(report.to_json())
    assert again == report
    path = report.save(tmp_path)
    assert path.name == "eval_report.json" and EvalReport.load(tmp_path) == report
    with pytest.raises(ConfigError, match="format"):
        EvalReport.from_dict({"suite": "tofu"})
    with pytest.raises(ConfigError, match="No eval report"):
        EvalReport.load(tmp_path / "nothing")


def test_tables_show_values_directions_and_missing():
    console = Console(record=True, width=160)
    console.print(compare_table({"target": _report("target", 1e-5), "unlearned": _report("u", 0.7)}))
    text = console.export_text()
    assert "target" in text and "unlearned" in text and "1.00e-05" in text and "0.7000" in text
    assert "↑" in text and "↓" in text and "→0" in text and "—" in text
    console = Console(record=True, width=160)
    _report().print(console)
    assert "note:" in console.export_text()
    names = [c.header for c in compare_table([_report("a"), _report("a")]).columns]
    assert names[2:] == ["a", "a (1)"]


def test_plots(tmp_path):
    files = write_plots(_report(), tmp_path / "plots")
    assert {f.name for f in files} == {"aggregates.png", "truth_ratio.png", "membership.png"}
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in files)
    assert compare_plot({"a": _report(), "b": _report(fq=0.1)}, tmp_path / "cmp.png").stat().st_size > 0


def test_cli_writes_report_and_refuses_to_overwrite(tiny_zoo, tmp_path):
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump(tiny_zoo.config.to_dict()))
    ref = tmp_path / "ref.json"
    common = ["--world_config", str(world), "--retain_eval_size", "24"]
    assert main(["--model", "retain", "--out", str(tmp_path / "retain"), "--save_reference_log", str(ref),
                 *common]) == 0
    assert main(["--model", "target", "--suite", "tofu", "--forget-split", "forget10", "--retain-logs", str(ref),
                 "--out", str(tmp_path / "target"), *common]) == 0
    data = json.loads((tmp_path / "target" / "eval_report.json").read_text())
    for key in ("forget_quality", "model_utility", "forget_truth_ratio", "forget_rouge", "retain_rouge", "privleak",
                "extraction_strength"):
        assert data["aggregates"][key] is not None, key
    assert data["aggregates"]["forget_quality"] < 0.05
    assert (tmp_path / "target" / "plots" / "truth_ratio.png").is_file()
    with pytest.raises(OutputExistsError):
        main(["--model", "target", "--out", str(tmp_path / "target"), *common])
    with pytest.raises(ConfigError, match="--out"):
        main(["--model", "target", *common])



def test_cli_usage_errors_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--retain_logs" in capsys.readouterr().out
    for argv in (["--model", "target", "--suite", "glue", "--out", "x"], ["--suite", "tofu"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert ("suite" in capsys.readouterr().err)


def test_rows_and_markdown_for_cards_and_space():
    from hfcl.eval import compare_rows, markdown_table

    rows = _report().rows()
    assert [r["metric"] for r in rows] == ["forget_quality", "forget_rouge", "privleak"]  # display order
    assert rows[0] == {"metric": "forget_quality", "value": 0.5, "better": "↑", "direction": "higher", "ideal": None,
                       "description": DEFINITIONS["forget_quality"].description}
    assert rows[2]["value"] is None and rows[2]["direction"] == "ideal" and rows[2]["ideal"] == 0.0
    header, table = compare_rows({"a": _report("a"), "b": _report("b", 0.1)})
    assert header == ["metric", "better", "a", "b"] and table[0] == ["forget_quality", "↑", 0.5, 0.1]
    assert _report().example_rows("holdout") == [{"mia_min_k": 3.0}, {"mia_min_k": 4.0}]
    assert _report().example_rows("forget")[1] == {"truth_ratio": None, "mia_min_k": 2.0}
    with pytest.raises(KeyError, match="available"):
        _report().example_rows("retain")
    md = markdown_table(_report()).splitlines()
    assert md[0] == "| metric | better | m |" and md[2] == "| forget_quality | ↑ | 0.5000 |" and "—" in md[4]


def test_continual_report():
    from hfcl.eval import continual_report

    R = [[0.1, 0.2, 0.3], [0.8, 0.3, 0.35], [0.9, 0.85, 0.4], [0.6, 0.9, 0.95]]
    report = continual_report(R, ["a", "b", "c"], joint=[0.95, 0.9, 0.97], task_metric="rougeL_recall")
    agg = report.aggregates
    assert agg["backward_transfer"] == pytest.approx(-0.075) and agg["forward_transfer"] == pytest.approx(0.1)
    assert agg["average_forgetting"] == pytest.approx(0.125) and agg["intransigence"] == pytest.approx(0.22 / 3)
    assert report.per_example["tasks"]["forgetting"] == pytest.approx([0.3, -0.05, None])
    assert report.definitions["average_forgetting"].direction == "lower"
    assert report.data["task_metric"] == "rougeL_recall" and report.settings["fwt_baseline"] == "base_model_row"
    assert EvalReport.from_json(report.to_json()) == report
    single = continual_report([[0.2], [0.9]])
    assert single.aggregates["backward_transfer"] is None and single.aggregates["final_average_accuracy"] == 0.9
    with pytest.raises(Exception, match="task names"):
        continual_report(R, ["a"])
