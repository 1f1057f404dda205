"""The shipped accelerate configs, and the options that refuse an engine before training (no DeepSpeed needed).

DeepSpeed and FSDP-through-accelerate need GPUs; here the refusals are driven with stand-in accelerators whose
``state.deepspeed_plugin.zero_stage`` / ``distributed_type`` are what accelerate sets (``benchmarks/gpu_check.sh``
runs the real engines on a GPU machine). The ddp.yaml launch itself is tested by
``tests/test_continual_multiprocess.py::test_cli_replay_ewc_two_processes_equal_one`` (2 CPU processes, gloo).
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

import hfcl
from hfcl.continual.strategies.lwf import LwF
from hfcl.continual.strategies.regularizers import EWC, L2, OnlineEWC
from hfcl.errors import ConfigError
from hfcl.unlearn.trainer import UnlearningTrainer
from hfcl.utils.distributed import ZERO3_READS_WEIGHTS, engine, require_engine

CONFIGS = Path(hfcl.__file__).parent / "configs" / "accelerate"


def _accelerator(kind: str):
    """A stand-in for ``Trainer.accelerator`` with the attributes accelerate sets for ``kind``."""
    if kind.startswith("zero"):
        return SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=SimpleNamespace(zero_stage=int(kind[-1]))),
                               distributed_type=SimpleNamespace(value="DEEPSPEED"), num_processes=2)
    plain = SimpleNamespace(state=SimpleNamespace(deepspeed_plugin=None), num_processes=2 if kind != "single" else 1)
    plain.distributed_type = SimpleNamespace(value={"fsdp": "FSDP", "ddp": "MULTI_GPU"}.get(kind, "NO"))
    return plain


@pytest.mark.parametrize(("name", "kind", "stage"), [("ddp", "MULTI_GPU", None), ("fsdp2", "FSDP", None),
                                                     ("zero2", "DEEPSPEED", 2), ("zero3", "DEEPSPEED", 3)])
def test_shipped_accelerate_configs_parse(name, kind, stage):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type.value == kind
    assert config.num_machines == 1 and config.num_processes == 2
    if stage is not None:
        assert config.deepspeed_config["zero_stage"] == stage
    if name == "fsdp2":
        assert config.fsdp_config["fsdp_version"] == 2
        assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    if name == "ddp":
        assert config.mixed_precision == "no"  # so the same file runs on CPUs (gloo)


def test_accelerate_configs_are_package_data():
    pyproject = tomllib.loads((Path(hfcl.__file__).parent.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["hfcl"]
    files = sorted(p.relative_to(CONFIGS.parent.parent).as_posix() for p in CONFIGS.glob("*.yaml"))
    assert files == [f"configs/accelerate/{n}.yaml" for n in ("ddp", "fsdp2", "zero2", "zero3")]
    assert all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files)


@pytest.mark.parametrize(("kind", "expected"), [("zero3", "zero3"), ("zero2", "zero2"), ("fsdp", "fsdp"),
                                                ("ddp", "ddp"), ("single", "single")])
def test_engine_reads_the_accelerator(kind, expected):
    assert engine(_accelerator(kind)) == expected


def test_require_engine_refuses_only_the_listed_engines():
    uses = {"ewc": (("zero3",), ZERO3_READS_WEIGHTS)}
    for ok in ("zero2", "fsdp", "ddp", "single"):
        require_engine(ok, uses)
    with pytest.raises(ConfigError, match=r"ewc cannot run under DeepSpeed ZeRO-3.*zero2\.yaml"):
        require_engine("zero3", uses)
    require_engine("zero3", {})  # nothing switched on: nothing to refuse


@pytest.mark.parametrize("cls", [EWC, OnlineEWC, L2])
def test_weight_penalties_refuse_zero3_before_training(cls):
    strategy = cls(SimpleNamespace(l2_params_regex=None))
    for ok in ("zero2", "fsdp", "ddp", "single"):
        strategy.setup(SimpleNamespace(accelerator=_accelerator(ok)))
    with pytest.raises(ConfigError, match=f"strategy {cls.name} cannot run under DeepSpeed ZeRO-3"):
        strategy.setup(SimpleNamespace(accelerator=_accelerator("zero3")))


def test_lwf_refuses_zero3_unless_its_teacher_is_the_disabled_adapter():
    previous = LwF(SimpleNamespace(lwf_teacher="previous"))
    with pytest.raises(ConfigError, match="lwf_teacher=previous cannot run under DeepSpeed ZeRO-3"):
        previous.setup(SimpleNamespace(accelerator=_accelerator("zero3"), is_peft=True))
    LwF(SimpleNamespace(lwf_teacher="base")).setup(SimpleNamespace(accelerator=_accelerator("zero3"), is_peft=True))


def test_salun_declares_one_process_and_ddp_only():
    def check(kind, salun=0.5, mode="cached", ref_model=None):
        fake = SimpleNamespace(args=SimpleNamespace(salun_sparsity=salun), accelerator=_accelerator(kind))
        UnlearningTrainer._check_engine(fake, mode, ref_model)

    for ok in ("single", "ddp"):
        check(ok)
    for bad in ("zero2", "zero3", "fsdp"):
        with pytest.raises(ConfigError, match="salun_sparsity cannot run under"):
            check(bad)
    check("zero3", salun=None)  # NPO with the cached reference: allowed
    with pytest.raises(ConfigError, match=r"reference=model cannot run under DeepSpeed ZeRO-3.*TRL#827"):
        check("zero3", salun=None, mode="model")
    check("zero3", salun=None, mode="model", ref_model=object())  # an explicit reference is not a copy
    from hfcl.unlearn.methods import METHODS

    for name in ("ULD", "WHP"):  # the served wrapper / the teacher need whole weights
        fake = SimpleNamespace(args=SimpleNamespace(salun_sparsity=None), method=METHODS[name])
        for kind, refused in (("single", False), ("ddp", False), ("zero3", True), ("fsdp", True)):
            fake.accelerator = _accelerator(kind)
            if refused:
                with pytest.raises(ConfigError, match=f"method={name} cannot run under"):
                    UnlearningTrainer._check_engine(fake, "none", None)
            else:
                UnlearningTrainer._check_engine(fake, "none", None)
