"""Connect to Dask: a LocalCluster sized to this machine, or an existing scheduler."""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager, nullcontext
from typing import Iterator

import dask
from distributed import Client, LocalCluster

from configs import Settings


class ClusterError(RuntimeError):
    """The cluster cannot run this job as configured; the message says what to change."""


def _local_gpu_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextmanager
def connect(settings: Settings) -> Iterator[Client]:
    cluster_settings = settings.cluster
    if cluster_settings.scheduler:
        try:
            client = Client(cluster_settings.scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at cluster.scheduler={cluster_settings.scheduler!r}: {exc}"
            ) from None
        with client:
            yield client
        return
    gpus = _local_gpu_count() if cluster_settings.gpu != "off" else 0
    workers = cluster_settings.workers or gpus or max(1, (os.cpu_count() or 1) // cluster_settings.threads_per_worker)
    # distributed's nannies start every worker with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc
    # hand the vision stages' large temporary buffers back to the kernel after each use: measured on
    # ingest of the shared videos, 2.3x the CPU (page faults; sys time 59 s against 7 s) and 2.5x the
    # wall time. A DASK_CONFIG file cannot unset it (distributed's defaults are merged over it); a
    # None set here after importing distributed does. Workers of a remote cluster are the
    # operator's to start (docs/ingest.md).
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}), _sigint_ignored():
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=cluster_settings.threads_per_worker,
            processes=True,
            resources={"GPU": 1} if gpus else None,
            silence_logs=logging.ERROR,
            dashboard_address=":0",
        )
    with cluster, Client(cluster) as client:
        yield client


@contextmanager
def _sigint_ignored_here() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _sigint_ignored():
    """While the local workers start: they inherit an ignored SIGINT (Python keeps it ignored), so
    Ctrl-C in the terminal reaches only this process, which stops the run and reports it, instead of
    every worker printing its own KeyboardInterrupt traceback. Only the main thread can set it."""
    return _sigint_ignored_here() if threading.current_thread() is threading.main_thread() else nullcontext()


def vision_resources(client: Client, gpu_mode: str) -> dict[str, float] | None:
    """The resources vision tasks ask for; fails fast where GPUs are required but none is declared."""
    if gpu_mode == "off":
        return None
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    gpu_workers = [w for w in workers.values() if w.get("resources", {}).get("GPU", 0) > 0]
    if gpu_workers:
        return {"GPU": 1}
    if gpu_mode == "require":
        raise ClusterError(
            f"cluster.gpu=require, but none of the cluster's {len(workers)} worker(s) declares a GPU resource; "
            "start GPU workers with `dask worker SCHEDULER --resources GPU=1` or set cluster.gpu=auto"
        )
    return None
