"""Which share of the global stream a process reads under PyTorch: its rank, and its DataLoader worker.

Rank ``r`` of ``world_size`` ``R`` takes global batches ``r, r + R, ...``
(:mod:`zarrmux.global_stream`); DataLoader worker ``w`` of ``W`` takes its
rank's batches ``w, w + W, ...``.  The rank comes from the caller or from
``torch.distributed`` when it is initialised; the worker from
``torch.utils.data.get_worker_info``.  Torch is imported by these functions
only, when called (from :mod:`zarrmux.torch`, which needs it anyway).
"""

from __future__ import annotations

__all__ = ["rank_and_world", "worker_share"]


def _dist_rank_world() -> tuple[int, int] | None:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return None
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()), int(dist.get_world_size())
    return None


def rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``(rank, world_size)``: those given, the rest from ``torch.distributed`` when it is initialised, else 0 and 1."""
    if rank is None or world_size is None:
        got = _dist_rank_world() or (0, 1)
        rank = got[0] if rank is None else rank
        world_size = got[1] if world_size is None else world_size
    return rank, world_size


def worker_share() -> tuple[int, int] | None:
    """``(worker, num_workers)`` inside a DataLoader worker, ``None`` in the process that made the DataLoader."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    return None if info is None else (int(info.id), int(info.num_workers))
