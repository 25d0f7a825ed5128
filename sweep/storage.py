"""Where the study lives: Optuna's RDB storage, opened with heartbeats and safe for many workers.

Which storage, and why (checked against optuna 5.0's `optuna/storages/`):
- Heartbeats (how a killed worker's trial is found, failed and retried) exist only in
  `RDBStorage`: `JournalStorage` and `GrpcStorageProxy` do not implement `BaseHeartbeat`. The
  default study also already lives in `runs/optuna.db` and must keep resuming. So the default
  stays SQLite through `RDBStorage`, for one worker or several on one machine; `JournalStorage`
  (Optuna's usual advice for several processes on one machine) would lose both.
- Optuna advises against SQLite for parallel runs for two reasons, and both are fixed here.
  (1) "database is locked": a deferred transaction that reads and then writes cannot wait for the
  write lock (SQLite refuses at once to avoid a deadlock). (2) SQLite ignores SELECT ... FOR
  UPDATE, so two workers can both pop the same enqueued trial (optuna#4002; it shows up as
  "Cannot tell a COMPLETE trial"). So every transaction on SQLite begins with BEGIN IMMEDIATE:
  it takes the write lock first, which makes Optuna's read-check-write steps atomic, and waits
  up to `SQLITE_BUSY_S` for it. A worker writes a few rows per epoch plus one heartbeat per
  interval, so serialising the transactions costs nothing measurable.
- For many machines, a PostgreSQL URL (`sweep.storage` or `OPTUNA_STORAGE`): real row locks and
  the server's clock for every heartbeat.
"""

import warnings
from pathlib import Path

import optuna
from sqlalchemy import event
from sqlalchemy.engine import make_url

from harness.errors import UserError
from harness.urls import masked, scrub, with_driver
from sweep.spec import SweepSpec

DEFAULT_STORAGE = "sqlite:///runs/optuna.db"
SQLITE_BUSY_S = 60  # longest wait for SQLite's write lock before "database is locked"
CONNECT_TIMEOUT_S = 10  # an unreachable database server fails in seconds, not minutes


def storage_url(spec: SweepSpec) -> str:
    """The study's storage URL (`sweep.storage`, env `OPTUNA_STORAGE` applied by the config
    loader, else the SQLite default)."""
    return spec.storage or DEFAULT_STORAGE


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL, None for a server database."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def _engine_kwargs(url: str) -> dict:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        # isolation_level=None stops Python's sqlite3 from issuing its own deferred BEGIN, so
        # the BEGIN IMMEDIATE below is the one that starts each transaction.
        return {"connect_args": {"timeout": SQLITE_BUSY_S, "isolation_level": None}}
    if backend == "postgresql":
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}
    return {"pool_pre_ping": True}


def _begin_immediate(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_storage(spec: SweepSpec, on_stale=None, create: bool = True) -> optuna.storages.RDBStorage:
    """Connect to the study's storage with heartbeats on.

    Args:
        spec: the sweep section (storage URL, `heartbeat` settings).
        on_stale: called as `on_stale(study, frozen_trial)` for each trial that Optuna fails for
            lack of heartbeat (see `sweep.recovery.Requeue`).
        create: create a missing SQLite file (and its folder); False makes it a `UserError`
            (readers such as `make export` must not leave an empty database behind).
    Returns:
        The storage, ready for `optuna.create_study` / `optuna.load_study`.
    Raises:
        UserError: the storage cannot be reached or opened (one line, password masked).
    """
    url, hb = storage_url(spec), spec.heartbeat
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        if not create:
            raise UserError(f"no study storage at {url!r} yet; run `make sweep` first")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"study storage {url!r} cannot be created: {e.strerror}") from None
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                with_driver(url),
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=hb.interval,
                grace_period=hb.grace_period,
                heartbeat_stale_trial_callback=on_stale,
            )
    except Exception as e:  # unreachable server, bad URL, missing driver, wrong password
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise UserError(
            f"study storage {masked(url)!r} cannot be opened: "
            f"{type(e).__name__}: {scrub(first, url)}"
        ) from None
    if storage.engine.dialect.name == "sqlite":
        event.listen(storage.engine, "begin", _begin_immediate)
    return storage
