"""Training on several processes: :mod:`torch.distributed`, as launched by ``torchrun``.

``torchrun --nproc_per_node=N -m nlgm train ...`` starts N copies of the program and tells each
its place through environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``). Training is data-parallel: every process holds the whole
model and reads its share of each global batch (:class:`nlgm.data.GlobalBatchSampler`), and
PyTorch's :class:`~torch.nn.parallel.DistributedDataParallel` averages the gradients of the
shares over the processes (:class:`nlgm.train.DataParallelELBOAscent`), so every process
takes the same Adam step and the copies of the model stay equal. This module starts and ends
the processes' group, tells a process its place, and sums the numbers they report (the ELBOs,
:func:`all_sum`). The processes talk through gloo on the CPU and NCCL on GPUs
(:func:`backend`). Only the main process (rank 0) writes files (:attr:`Processes.is_main`).
"""
import importlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

#: The variables torchrun sets in every process it starts.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of a run.

    Attributes
    ----------
    rank : int
        0..world_size-1; rank 0 is the main process.
    world_size : int
        The number of processes (1 without torchrun).
    local_rank : int
        The rank among the processes of this machine (which GPU to use).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self):
        """Whether this process writes the run's files (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self):
        """Whether there are other processes to talk to."""
        return self.world_size > 1


def launched_by_torchrun():
    """Whether torchrun (or another launcher of torch.distributed) started this process."""
    return all(name in os.environ for name in TORCHRUN_VARIABLES[:3])


def processes():
    """This process's :class:`Processes`: from the process group, or rank 0 of 1 without one.

    Raises
    ------
    RuntimeError
        Under torchrun with ``WORLD_SIZE`` > 1 but no process group: the processes would each
        train alone on all the data and write the same files. :func:`init_process_group` (or
        ``torch.distributed.init_process_group``) must come first.
    """
    if dist.is_available() and dist.is_initialized():
        return Processes(dist.get_rank(), dist.get_world_size(),
                         int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    if launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
        raise RuntimeError(
            f"this process was launched by torchrun as rank {os.environ['RANK']} of "
            f"{os.environ['WORLD_SIZE']}, but torch.distributed has no process group: call "
            "nlgm.distributed.init_process_group() (or torch.distributed.init_process_group) "
            "before training, or run a single process with python instead of torchrun.")
    return Processes()


def backend(device):
    """The collective backend for ``device``: NCCL for CUDA GPUs, gloo otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_process_group(device="cpu"):
    """Join the run's process group if torchrun started this process; else do nothing.

    Parameters
    ----------
    device : str or torch.device
        "cpu" or "cuda": each process of a machine then takes GPU ``LOCAL_RANK``.

    Returns
    -------
    processes : Processes
    device : torch.device
        The device of this process (``cuda:LOCAL_RANK`` for "cuda").
    """
    device = torch.device(device)
    if not launched_by_torchrun():
        return Processes(), device
    if not dist.is_available():
        raise RuntimeError("torchrun started this process, but this torch build has no "
                           "torch.distributed.")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # DistributedDataParallel imports torch.distributed.nn.functional (through
        # torch._dynamo), whose functions take the group that exists when it is first
        # imported as a default argument. Imported after the group, it would keep the
        # group alive after close_process_group, with gloo's threads still running while
        # the interpreter shuts down (the likely cause of a rare abort at exit, "terminate
        # called without an active exception"); imported first, it holds no group.
        importlib.import_module("torch.distributed.nn.functional")
        dist.init_process_group(backend(device))
    return processes(), device


def all_sum(values, device="cpu"):
    """The sums over the processes of ``values`` (a list of numbers), as float64 numbers.

    One all-reduce for all of them; without other processes, ``values`` themselves.
    """
    if not processes().distributed:
        return [float(v) for v in values]
    dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
    total = torch.tensor([float(v) for v in values], dtype=dtype, device=device)
    dist.all_reduce(total)
    return total.tolist()


def broadcast_object(value):
    """The main process's ``value`` (any picklable object), in every process."""
    if not processes().distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def close_process_group():
    """Leave the process group, if this process is in one (at the end of a run).

    The group's threads stop here, before the interpreter shuts down, once nothing
    else holds the group: a :class:`~torch.nn.parallel.DistributedDataParallel`
    (:class:`nlgm.train.DataParallelELBOAscent`) that the program still keeps holds it.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
