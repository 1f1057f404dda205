"""The Space's Continual tab on a learn/forget run folder: stages, the heat map so far, what each step did, and a
stage's answers next to the previous stage's, in Python and through gradio_client (the Hub source is tested in
test_hub_stages.py, the rendered page in test_space_browser.py)."""

from __future__ import annotations

import socket

import pytest

from hfcl.errors import ConfigError
from hfcl.space.continual import ANSWER_HEADERS, ContinualRun


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stage_view(learn_forget_run, tmp_path):
    from PIL import Image

    run = ContinualRun(learn_forget_run)
    assert [s.label for s in run.stages] == ["1 · learn authors1", "2 · learn authors2",
                                             "3 · forget forget-authors1", "4 · learn authors3"]
    forget = run.stage("3 · forget forget-authors1")
    assert "Forget event `forget-authors1`" in run.describe(forget) and "NPO" in run.describe(forget)
    assert "Learned task `authors1`" in run.describe(run.stage(1))
    image = Image.open(run.heatmap(forget))
    first = Image.open(run.heatmap(run.stage(1)))
    assert image.convert("RGB").tobytes() != first.convert("RGB").tobytes()  # 4 rows of R so far vs 2
    rows = run.answers(forget, 24)
    assert len(rows) == 3 * 3 + 3 and all(len(r) == len(ANSWER_HEADERS) for r in rows)
    assert [r[0] for r in rows[-3:]] == ["forget-authors1 (deleted)"] * 3
    assert run.start is not None  # stage 1's "previous" is the model the stream started from
    first_rows = run.answers(run.stage(1), 24)
    assert not first_rows[0][3].startswith("(the model before")
    with pytest.raises(ConfigError, match="Unknown stage"):
        run.stage("9 · learn nothing")
    with pytest.raises(ConfigError, match="no accuracy_matrix.json"):
        ContinualRun(tmp_path)


def test_continual_endpoint_through_gradio_client(tiny_zoo, learn_forget_run):
    from gradio_client import Client

    from hfcl.space import SpaceSettings, build_space, launch

    demo = build_space("target", zoo_config=tiny_zoo.config, presets_per_split=2, continual=str(learn_forget_run),
                       settings=SpaceSettings(max_new_tokens=24))
    launch(demo, port=free_port(), block=False, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        image, info, table = client.predict("3 · forget forget-authors1", api_name="/continual_stage")
        assert image and "Forget event" in info
        assert table["headers"] == ANSWER_HEADERS and len(table["data"]) == 12
        run = ContinualRun(learn_forget_run)
        expected = run.answers(run.stage(3), 24)
        assert [r[4] for r in table["data"]] == [r[4] for r in expected]  # the stage's own model answered
        with pytest.raises(Exception, match="not in the list of choices"):  # a clear message, not a trace
            client.predict("nope", api_name="/continual_stage")
    finally:
        demo.close()
