"""The Space launched on 127.0.0.1 and driven through ``gradio_client``: every endpoint, errors shown as messages,
10 concurrent requests, and the CLI / Space-variable entry points."""

from __future__ import annotations

import json
import os
import socket
from concurrent.futures import TimeoutError as FutureTimeout

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_adapter(base, base_id: str, out, seed: int) -> None:
    import torch

    from hfcl.compose.synthetic import random_peft_lora

    model = random_peft_lora(base, None, seed=seed, r=4, lora_alpha=8)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(30.0)
    model.save_pretrained(str(out))
    cfg = out / "adapter_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "base_model_name_or_path": base_id}))


@pytest.fixture(scope="module")
def served(tiny_zoo, tmp_path_factory):
    """The app on target, retain and two LoRA adapters of target, with eval reports for target and retain."""
    from gradio_client import Client

    from hfcl.eval import DEFINITIONS, EvalReport
    from hfcl.space import SpaceSettings, build_space, launch

    root = tmp_path_factory.mktemp("space-app")
    base, _ = tiny_zoo.load("target")
    for seed, name in ((1, "a"), (2, "b")):
        write_adapter(base, str(tiny_zoo.path("target")), root / name, seed)
    for name, rouge in (("target", 0.95), ("retain", 0.2)):
        EvalReport("tofu", {"forget_rouge": rouge}, definitions={"forget_rouge": DEFINITIONS["forget_rouge"]},
                   model={"id": name}).save(root / f"{name}.json")
    settings = SpaceSettings(max_new_tokens=32, concurrency_limit=2)
    demo = build_space(f"target,retain,a={root / 'a'},b={root / 'b'}", zoo_config=tiny_zoo.config,
                       reports=f"target={root / 'target.json'},retain={root / 'retain.json'}", presets_per_split=3,
                       settings=settings)
    launch(demo, port=free_port(), block=False, quiet=True, concurrency_limit=settings.concurrency_limit)
    try:
        client = Client(demo.local_url, verbose=False, httpx_kwargs={"timeout": TIMEOUT})
        yield demo, client
    finally:
        demo.close()


def test_api_lists_every_endpoint(served):
    _, client = served
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/compare", "/chat", "/preset", "/eval_card", "/compose"} <= set(endpoints)
    params = {name: [p["parameter_name"] for p in info["parameters"]] for name, info in endpoints.items()}
    assert params["/compose"] == ["question", "truth", "weight_a", "weight_b"]
    assert params["/compare"] == ["question", "truth"] and params["/chat"] == ["message", "history", "model_name"]
    assert not any(p.startswith("param_") for names in params.values() for p in names)


def test_preset_then_compare_shows_target_remembers_and_retain_does_not(served, tiny_zoo):
    _, client = served
    row = tiny_zoo.splits["forget"][0]
    question, truth = client.predict("forget:0", api_name="/preset")
    assert (question, truth) == (row["question"], row["answer"])
    out = client.predict(question, truth, api_name="/compare")
    answers, metrics, notice = out[:4], out[4:8], out[8]
    assert answers[0] == row["answer"] and answers[1] != answers[0]
    assert all("p(truth) **" in m and "generating" not in m for m in metrics)
    p = [float(m.split("**")[1]) for m in metrics]
    assert p[0] > 0.5 > p[1] and notice == ""


def test_errors_are_messages_not_traces(served):
    from gradio_client.exceptions import AppError

    _, client = served
    empty = client.predict("   ", "", api_name="/compare")  # not an error: a notice, the columns left alone
    assert "prompt is empty" in empty[8]
    history, box, notice = client.predict("  ", [], "retain", api_name="/chat")
    assert "prompt is empty" in notice
    out = client.predict("why " * 600, "", api_name="/compare")
    assert "truncated" in out[8]
    with pytest.raises(AppError, match="not in the list of choices"):  # the dropdown rejects it before our code
        client.predict("hi", [], "ghost", api_name="/chat")


def test_ten_concurrent_requests_all_succeed(served, tiny_zoo):
    _, client = served
    rows = [tiny_zoo.splits[s][i] for s in ("forget", "retain") for i in range(5)]
    jobs = [client.submit(r["question"], r["answer"], api_name="/compare") for r in rows]
    try:
        results = [job.result(timeout=TIMEOUT) for job in jobs]
    except FutureTimeout:  # pragma: no cover - a hung queue must fail the test, not the session
        pytest.fail("a concurrent request did not finish in time")
    assert len(results) == 10
    for row, out in zip(rows, results):
        assert out[0] == row["answer"]  # target reproduces every trained answer, even under load
        assert all(m.startswith("p(truth)") for m in out[4:8])


def test_chat_streams_into_messages(served):
    _, client = served
    history, box, _ = client.predict("Who wrote books?", [], "retain", api_name="/chat")
    assert box == "" and [m["role"] for m in history] == ["user", "assistant"]
    history2, _, _ = client.predict("And where?", history, "retain", api_name="/chat")
    assert len(history2) == 4


def test_eval_card_and_compose_endpoints(served, tiny_zoo):
    _, client = served
    table, comparison, key_plot, plots, notes = client.predict(api_name="/eval_card")
    assert table["headers"][:4] == ["metric", "better", "target", "retain"]
    assert ["forget_rouge", "↓", "0.9500", "0.2000"] in table["data"]
    assert "Add an unlearned or composed model" in comparison and "**a**" in notes
    assert key_plot.endswith(".png") and os.path.getsize(key_plot) > 1000 and plots == []
    row = tiny_zoo.splits["forget"][1]
    zero = client.predict(row["question"], row["answer"], 0.0, 0.0, api_name="/compose")
    assert zero[0] == row["answer"]  # weight 0: exactly the base (target) model
    mixed = client.predict(question=row["question"], truth=row["answer"], weight_a=1.0, weight_b=-1.0,
                           api_name="/compose")
    assert mixed[2]["weights"] == {"a": 1.0, "b": -1.0} and mixed[2]["method"] == "linear"
    assert mixed[1] != zero[1]


def test_space_from_env_and_cli_reject_bad_models(tiny_zoo, monkeypatch):
    from hfcl.errors import ConfigError
    from hfcl.space import build_space_from_env
    from hfcl.space.cli import main

    with pytest.raises(ConfigError, match="given twice"):
        main(["--models", "target,target", "--preset", "tiny"])
    with pytest.raises(ConfigError, match="at most 4"):
        build_space_from_env({"HFCL_MODELS": "a=1,b=2,c=3,d=4,e=5"})
    demo = build_space_from_env({"HFCL_MODELS": "target", "HFCL_PRESET": "tiny"}, presets_per_split=1)
    assert demo.hfcl_registry.names == ["target"]
    assert demo.hfcl_registry.zoo_config == tiny_zoo.config



def test_demo_hook_serves_the_demo_models(tiny_zoo):
    from gradio_client import Client

    from hfcl.space import launch_demo_space

    demo = launch_demo_space(tiny_zoo.config, extra_models={"unlearned": str(tiny_zoo.path("retain"))},
                             port=free_port(), block=False, presets_per_split=1)
    try:
        assert demo.hfcl_registry.names == ["target", "retain", "unlearned"]
        out = Client(demo.local_url, verbose=False).predict("forget:0", api_name="/preset")
        assert out[0] == tiny_zoo.splits["forget"][0]["question"]
    finally:
        demo.close()


def test_cli_wires_arguments_to_launch(monkeypatch, tiny_zoo):
    import hfcl.space.serve as serve
    from hfcl.space.cli import main

    seen = {}
    monkeypatch.setattr(serve, "launch_space", lambda models, **kw: seen.update(models=models, **kw))
    assert main(["--models", "target,retain", "--preset", "tiny", "--port", "7999", "--max_new_tokens", "9"]) == 0
    assert seen["models"] == "target,retain" and seen["port"] == 7999 and seen["share"] is False
    assert seen["zoo_config"] == tiny_zoo.config and seen["settings"].max_new_tokens == 9
