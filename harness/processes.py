"""Who runs this process, and whether a process recorded earlier is still alive.

A trial (Optuna) or a run (MLflow) records its process as `worker` (`host:pid`) and `pid_space`;
a later process on the same machine tells a dead owner from a live one by the pid, with no
heartbeat to wait out (`sweep.recovery` for trials, `tracking.mlflow_store.end_orphans` for runs).
"""

import functools
import os
import socket


def worker_id() -> str:
    """`host:pid` of this process, stored with each trial or run it starts."""
    return f"{socket.gethostname()}:{os.getpid()}"


@functools.cache
def pid_space() -> str:
    """Where this process's pid means this process: the kernel's boot id and the pid namespace
    (host names are not enough: cloned machines and containers share them)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # not Linux
        return socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: an existence check
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def owner() -> dict[str, str]:
    """This process as a trial's user attributes or a run's tags record it."""
    return {"worker": worker_id(), "pid_space": pid_space()}


def pid_here(worker: str, space: str) -> int | None:
    """The pid of `worker` (`host:pid`) when it ran in this pid space, else None."""
    pid = worker.rpartition(":")[2]
    return int(pid) if space == pid_space() and pid.isdigit() else None


def dead_here(worker: str, space: str) -> bool:
    """True when `worker` ran in this pid space and its pid no longer exists."""
    pid = pid_here(worker, space)
    return pid is not None and not pid_alive(pid)
