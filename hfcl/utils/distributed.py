"""Several processes (``accelerate launch``, ``torchrun``): who writes, who waits, and the CPU (gloo) fallback.

hfcl does not own a launcher: accelerate/torch start the processes and this module only answers the questions every
command asks under them. Outputs are written once, by the main process, after a barrier (see
:func:`hfcl.utils.io.shared_atomic_directory`); every other process waits at that barrier.
"""

from __future__ import annotations

import os

import torch

from ..errors import ConfigError

_WORLD_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return default


def initialized() -> bool:
    """Whether a torch.distributed process group is up."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size() -> int:
    """Number of processes of this run: the process group's, else the launcher's environment, else 1."""
    if initialized():
        return torch.distributed.get_world_size()
    return _env_int(_WORLD_VARS, 1)


def rank() -> int:
    """This process's global rank (0 when not launched with several processes)."""
    if initialized():
        return torch.distributed.get_rank()
    return _env_int(_RANK_VARS, 0)


def is_main_process() -> bool:
    """True on the one process that writes outputs and prints."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (a no-op in a single process)."""
    if initialized() and torch.distributed.get_world_size() > 1:
        torch.distributed.barrier()


def broadcast_object(obj):
    """``obj`` as the main process has it, on every process (picklable objects; a no-op in one process)."""
    if not initialized() or torch.distributed.get_world_size() == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def all_ok(ok: bool) -> bool:
    """True only if ``ok`` holds on every process (one all-reduce; ``ok`` itself in one process)."""
    if not initialized() or torch.distributed.get_world_size() == 1:
        return ok
    flag = torch.tensor([0 if ok else 1], dtype=torch.int64)
    if torch.distributed.get_backend() == "nccl":
        flag = flag.cuda()
    torch.distributed.all_reduce(flag)
    return int(flag.item()) == 0


def is_dtensor(t) -> bool:
    """Whether ``t`` is a ``DTensor`` (an FSDP2 ``fully_shard`` parameter, or anything derived from one)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without distributed
        return False
    return isinstance(t, DTensor)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor: a DTensor gathered from its shards (a collective: every process must call it), else ``t``.

    Differentiable, so a penalty summed over shards can be made whole before it joins the loss."""
    return t.full_tensor() if is_dtensor(t) else t


def local_like(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``value`` (a whole tensor, the same on every process) laid out like ``like``: for a DTensor ``like``, the
    DTensor holding this process's shard of ``value`` (sliced locally, no communication), else ``value`` on its
    device."""
    if not is_dtensor(like):
        return value.to(like.device)
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(value.to(like.device), like.device_mesh, like.placements, src_data_rank=None)


def has_accelerator() -> bool:
    """Whether torch sees a GPU-like device (CUDA, XPU, ...); without one, several processes need gloo on the CPU."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


def use_cpu_backend(args) -> None:
    """Under several processes on a machine without GPUs, set ``args.use_cpu`` (before ``TrainingArguments``
    sets up its devices): otherwise each process trains alone (world size 1) on its own copy of the data, and every
    one of them writes the output."""
    check_launch()
    if world_size() > 1 and not has_accelerator() and not args.use_cpu:
        args.use_cpu = True


def check_launch() -> None:
    """Refuse ``accelerate launch --cpu --num_processes N`` (N > 1) on one machine: accelerate then starts ONE
    process (it needs ``--multi_gpu``, which falls back to gloo on the CPU, or an MPI hostfile), so the run would
    silently train with another global batch than the one asked for."""
    launched_by_accelerate = "ACCELERATE_USE_CPU" in os.environ and "ACCELERATE_MIXED_PRECISION" in os.environ
    asked_for_several = "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ
    if launched_by_accelerate and asked_for_several and _env_int(_WORLD_VARS, 0) == 0 and "LOCAL_RANK" not in os.environ:
        raise ConfigError(
            "`accelerate launch --cpu --num_processes N` started a single process (accelerate's --cpu launcher does "
            "not spawn processes on one machine). For N CPU processes (gloo) use `accelerate launch --multi_gpu "
            "--num_processes N ...` or `accelerate launch --config_file hfcl/configs/accelerate/ddp.yaml "
            "--num_processes N ...`; for one process drop --num_processes.")


def engine(accelerator) -> str:
    """The engine a run trains under, from its accelerator: ``"zero0"``..``"zero3"`` (DeepSpeed ZeRO stage),
    ``"fsdp"``, ``"ddp"`` (several processes) or ``"single"``. Works before ``Trainer.train`` wraps the model (the
    accelerator's plugins are set up when the Trainer is built)."""
    state = getattr(accelerator, "state", None)
    plugin = getattr(state, "deepspeed_plugin", None) or getattr(accelerator, "deepspeed_plugin", None)
    if plugin is not None:
        stage = getattr(plugin, "zero_stage", None)
        return f"zero{int(stage) if stage is not None else 0}"
    kind = str(getattr(getattr(accelerator, "distributed_type", None), "value", "")).upper()
    if kind == "FSDP" or getattr(accelerator, "is_fsdp2", False):
        return "fsdp"
    return "ddp" if int(getattr(accelerator, "num_processes", 1) or 1) > 1 else "single"


_ENGINE_NAMES = {"zero0": "DeepSpeed ZeRO-0", "zero1": "DeepSpeed ZeRO-1", "zero2": "DeepSpeed ZeRO-2",
                 "zero3": "DeepSpeed ZeRO-3", "fsdp": "FSDP", "ddp": "DDP", "single": "one process"}


def require_engine(engine_name: str, uses: dict[str, tuple[tuple[str, ...], str]]) -> None:
    """Refuse, before training, the options in ``uses`` that cannot run under ``engine_name`` (see :func:`engine`).

    ``uses`` maps each option that is ON to ``(engines it cannot run under, why)``; options that are off are simply
    left out. A pure function of its arguments (testable without DeepSpeed or GPUs)."""
    refused = {name: why for name, (bad, why) in uses.items() if engine_name in bad}
    if not refused:
        return
    where = _ENGINE_NAMES.get(engine_name, engine_name)
    lines = "; ".join(f"{name}: {why}" for name, why in refused.items())
    alternatives = ("DeepSpeed ZeRO-2 (hfcl/configs/accelerate/zero2.yaml), FSDP2 (fsdp2.yaml) or DDP (ddp.yaml)"
                    if engine_name == "zero3" else "DDP (hfcl/configs/accelerate/ddp.yaml) or one process")
    raise ConfigError(f"{', '.join(refused)} cannot run under {where}: {lines}. Turn the option off or launch "
                      f"with {alternatives}.")


# Why an option that reads or edits weights outside a forward cannot run under ZeRO-3: there every weight is an
# empty placeholder outside its module's forward (peft#2916) and a weight used inside the loss gets no gradient
# (DeepSpeed#7464).
ZERO3_READS_WEIGHTS = ("under ZeRO-3 a weight outside its module's forward is an empty placeholder, so a penalty "
                       "that reads the weights in the loss sees no values and gives them no gradient "
                       "(DeepSpeed#7464)")


__all__ = ["ZERO3_READS_WEIGHTS", "all_ok", "barrier", "broadcast_object", "check_launch", "engine", "full_tensor",
           "has_accelerator", "initialized", "is_dtensor", "is_main_process", "local_like", "rank", "require_engine",
           "use_cpu_backend", "world_size"]
