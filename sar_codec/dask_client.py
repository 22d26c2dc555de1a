"""The dask.distributed side of a batch: a client to a running scheduler or to local workers, and what a task
that could not run becomes in the manifest. dask is imported only here, and only when a batch runs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .errors import InputError


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int | None, threads_per_worker: int, device: str) -> Iterator:
    """A dask Client: to ``scheduler`` when given, else to a LocalCluster of processes on loopback."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"Could not reach the dask scheduler at {scheduler} ({exc}); start one with "
                             "`dask scheduler`, or give no scheduler to use local workers.") from None
        with client:
            if device == "cuda" and not any(w.get("resources", {}).get("GPU")
                                            for w in client.scheduler_info()["workers"].values()):
                raise InputError(f"The device 'cuda' needs workers that offer the dask resource GPU; none of the "
                                 f"workers of the scheduler {scheduler} does.")
            yield client
        return
    if device == "cuda":
        from .device import pick_device

        pick_device(device)  # local workers share this machine's GPUs: fail once, here, when it has none
    if workers is None:
        workers = 1 if device == "cuda" else max(1, (os.cpu_count() or 1) // threads_per_worker)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                           host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
                           resources={"GPU": 1} if device == "cuda" else None)
    with cluster, Client(cluster) as client:
        yield client


def task_failure(exc: BaseException) -> str:
    """The manifest reason of a task that dask could not run (its worker died, or the task was lost)."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        return ("The workers running it died several times (out of memory, or a crash); see the worker logs and "
                "give workers more memory.")
    return f"The task could not run: {type(exc).__name__}: {exc}"
