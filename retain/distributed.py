"""The processes of one launch: `torchrun` or `accelerate launch` start N copies of retain that train
(or evaluate) one model together; this module says which copy this is and lets the copies wait for
and exchange small values with each other.

A single process (no launcher) is world size 1, rank 0, main: every function here is then a no-op
or returns its input, so single-process code paths are unchanged.

Who writes what: only the main process (rank 0) writes files (run folders, results, the evaluation
cache); the others wait for it where they need what it wrote (`main_first`). Processes of one launch
must share the file system (one machine, or a shared folder across machines).

The process group is joined lazily (`join`), by the first code that needs a collective: gloo on
CPUs; on GPUs "cpu:gloo,cuda:nccl", so that the small objects exchanged here travel through gloo in
CPU memory while tensors on the GPU use NCCL. The Trainer (accelerate) then finds the group already
initialised and uses it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class OtherProcessFailed(Exception):
    """The main process failed in a step the others were waiting for; it reports the error itself."""


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def _group_up() -> bool:
    # Read from sys.modules: a command that never imported torch has joined no group (and stays fast).
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes in this launch (1 without a launcher)."""
    if _group_up():
        import torch.distributed as dist

        return dist.get_world_size()
    return max(_env_int("WORLD_SIZE", 1), 1)


def rank() -> int:
    """This process's index in the launch, 0 for the main process."""
    if _group_up():
        import torch.distributed as dist

        return dist.get_rank()
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's index on its machine (which GPU it uses)."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    return rank() == 0


def launched() -> bool:
    """Whether several processes run together (a launcher set WORLD_SIZE > 1)."""
    return world_size() > 1


def joined() -> bool:
    """Whether this process has joined its launch's process group."""
    return _group_up()


def join(device_type: str | None = None) -> None:
    """Join the launch's process group (no-op in a single process, or when already joined).

    Args:
        device_type: `cpu` or `cuda` (None: `cuda` when a GPU is visible); on `cuda` the process uses
            GPU `LOCAL_RANK`.
    """
    if not launched() or _group_up():
        return
    import torch
    import torch.distributed as dist

    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
        dist.init_process_group(backend="cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group(backend="gloo")


def leave() -> None:
    """Leave the process group (at the end of a command; NCCL warns about a group left open)."""
    if _group_up():
        import torch.distributed as dist

        dist.destroy_process_group()


def barrier() -> None:
    if launched():
        join()
        import torch.distributed as dist

        dist.barrier()


def broadcast(value: T) -> T:
    """The main process's `value`, on every process (picklable objects)."""
    if not launched():
        return value
    join()
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: T) -> list[T]:
    """Every process's `value`, in rank order, on every process (picklable objects)."""
    if not launched():
        return [value]
    join()
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def from_main(read: Callable[..., T], *args) -> T:
    """`read(*args)` called by the main process only, its result given to every process."""
    if not launched():
        return read(*args)
    return broadcast(read(*args) if is_main() else None)


@contextlib.contextmanager
def main_first():
    """The main process runs the block first; the others wait and then run it, seeing what it wrote.

    If the main process fails inside the block, the others raise `OtherProcessFailed` instead of
    waiting forever (the main process reports its own error).
    """
    if not launched():
        yield
        return
    if is_main():
        try:
            yield
        except BaseException:
            broadcast(False)
            raise
        broadcast(True)
        return
    if not broadcast(None):
        raise OtherProcessFailed("the main process failed (it says why)")
    yield
