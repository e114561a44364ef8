"""Process group set-up from torchrun's environment; single-process runs need none of it."""

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from semantoks.errors import SemantoksError


@dataclass(frozen=True)
class Distributed:
    """Where this process sits: rank among world_size processes, and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def enabled(self):
        return self.world_size > 1


def resolve_device(device="auto", local_rank=0):
    """'auto' -> this process's GPU if CUDA is available, else the CPU."""
    if device in (None, "auto"):
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SemantoksError("pretrain config: device cuda was requested but no GPU is visible; "
                             "use device auto or cpu.")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def init_distributed(device="auto"):
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPUs."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                rank=rank, world_size=world_size)
    return Distributed(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def barrier(context):
    if context.enabled and dist.is_initialized():
        dist.barrier()


def mean_over_ranks(values, context):
    """Average a dict of floats over ranks (for logging only)."""
    if not context.enabled or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return dict(zip(keys, (tensor / context.world_size).tolist()))


def all_finite(value, context):
    """True only if `value` is finite on every rank, so all ranks stop together."""
    finite = math.isfinite(value)
    if not context.enabled:
        return finite
    flag = torch.tensor([0.0 if finite else 1.0], device=context.device)
    dist.all_reduce(flag)
    return flag.item() == 0.0


def shutdown(context):
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
