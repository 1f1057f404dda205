"""`hfcl leaderboard` on the tiny world: every run trained, evaluated and attacked in worker processes, the folder
(json, table, plot, card) written atomically, a fresh run reproducing the table, bad input refused before work, and
the folder pushed to the local Hub and read back."""

from __future__ import annotations

import json

import pytest

from hfcl.cli import main as hfcl_main
from hfcl.errors import ConfigError, OutputExistsError
from hfcl.unlearn.leaderboard import COLUMNS, TIMING, markdown_table, select_entries, summarise
from hfcl.unlearn.leaderboard_cli import LeaderboardArguments, check, push_leaderboard

pytest_plugins = ["hub_fixtures"]
ARGS = ["--zoo", "tiny", "--methods", "GradDiff,negation", "--attacks", "quantize", "--workers", "2"]


@pytest.fixture(scope="module")
def board_dir(tiny_zoo, tmp_path_factory):
    out = tmp_path_factory.mktemp("lb") / "board"
    assert hfcl_main(["leaderboard", *ARGS, "--seeds", "0,1", "--output_dir", str(out)]) == 0
    return out


def test_the_folder_has_every_run_and_its_summary(board_dir):
    board = json.loads((board_dir / "leaderboard.json").read_text())
    assert sorted((r["entry"], r["seed"]) for r in board["runs"]) == [("GradDiff", 0), ("GradDiff", 1),
                                                                       ("negation", 0), ("negation", 1)]
    for row in board["summary"]:
        runs = [r for r in board["runs"] if r["entry"] == row["entry"]]
        assert row["forget_quality"]["mean"] == pytest.approx(sum(r["forget_quality"] for r in runs) / 2)
    for run in board["runs"]:  # each is an unlearned model: forget answers moved, the attack ran
        assert run["forget_rouge"] < board["target"]["forget_rouge"]
        assert run["robustness_quant4_gain_prob"] is not None
    table = (board_dir / "leaderboard.md").read_text()
    assert table.count("\n") == 2 + 1 + 2 and "| GradDiff |" in table and " ± " in table
    card = (board_dir / "README.md").read_text()
    assert table in card and "leaderboard.png" in card and "GradDiff, negation, each with its preset" in card
    assert "--methods GradDiff,negation --seeds 0,1 --attacks 'quantize'" in card  # the command that made it
    assert str(board_dir.parent) not in card and str(board_dir.parent) not in json.dumps(board)  # no local path

    from PIL import Image

    image = Image.open(board_dir / "leaderboard.png").convert("L")
    assert image.size[0] > 400 and len(set(image.getdata())) > 10  # a drawn plot, not a blank canvas


def test_a_fresh_run_reproduces_the_table(board_dir, tmp_path):
    again = tmp_path / "again"
    assert hfcl_main(["leaderboard", *ARGS, "--seeds", "0,1", "--output_dir", str(again)]) == 0
    assert (again / "leaderboard.md").read_text() == (board_dir / "leaderboard.md").read_text()


def test_summary_is_mean_and_population_spread():
    runs = [{"entry": "A", "seed": 0, "forget_quality": 0.1, "seconds": 1.0},
            {"entry": "A", "seed": 1, "forget_quality": 0.3, "seconds": 3.0}]
    (row,) = summarise(runs)
    assert row["forget_quality"] == pytest.approx({"mean": 0.2, "std": 0.1})
    assert "0.2 ± 0.1" in markdown_table([row]) and set(row) <= {"entry", "seeds", *COLUMNS, *TIMING}


@pytest.mark.parametrize("field, value, message", [
    ("seeds", "0,x", "seeds='0,x'"), ("seeds", "1,1", "distinct"), ("methods", "NPO,Foo", "unknown \\['Foo'\\]"),
    ("methods", "NPO,npo", "named twice"),
    ("attacks", "relearn,jailbreak", "attacks: unknown"), ("workers", 0, "workers=0"), ("zoo", "huge", "--zoo"),
])
def test_bad_input_is_refused_before_any_work(field, value, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        check(LeaderboardArguments(output_dir=str(tmp_path / "o"), **{field: value}))


def test_an_existing_folder_needs_overwrite(tmp_path):
    (tmp_path / "o").mkdir()
    with pytest.raises(OutputExistsError, match="overwrite"):
        check(LeaderboardArguments(output_dir=str(tmp_path / "o")))


def test_all_entries_cover_every_method_and_the_variants():
    from hfcl.unlearn.methods import METHODS

    names = [e.name for e in select_entries("all")]
    assert set(METHODS) <= set(names) and {"NPO+SalUn", "NPO+SOUL", "negation"} <= set(names)


def test_push_shares_the_folder_in_one_commit(hub, board_dir):
    from huggingface_hub import hf_hub_download

    repo = f"{hub.user}/unlearning-leaderboard"
    push_leaderboard(str(board_dir), repo)
    titles = [c.title for c in hub.commits(repo, repo_type="dataset")]  # the other one: the repo's creation
    assert sum(t.startswith("Unlearning leaderboard") for t in titles) == 1 and len(titles) == 2
    got = hf_hub_download(repo, "leaderboard.json", repo_type="dataset")
    assert json.loads(open(got).read()) == json.loads((board_dir / "leaderboard.json").read_text())
