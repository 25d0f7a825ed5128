"""A loopback `mlflow server` over a local store, so that several processes can log at once.

The embedded store is one SQLite file: several worker processes writing it directly would fight
over its lock. Instead the sweep starts one `mlflow server` (a single server process, the only
writer of the file) on 127.0.0.1 at a free port, the workers log over HTTP to it, and the sweep
stops it when they are done. Runs of experiments created with a local artifact folder keep
writing their artifacts there; new experiments get the server's proxied artifact store, rooted
at the same folder.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import suppress
from pathlib import Path

from harness.errors import UserError
from harness.urls import masked


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """`with LocalServer(uri, artifacts) as server:` ... `server.url` ... (stopped on exit)."""

    def __init__(self, backend_uri: str, artifact_root: str, startup_timeout: float = 240.0):
        """
        Args:
            backend_uri: the store the server owns (e.g. `sqlite:///mlflow.db`).
            artifact_root: the folder (or URI) the server proxies artifacts to.
            startup_timeout: seconds to wait for the server's /health (it imports a lot).
        """
        self.backend_uri = backend_uri
        root = artifact_root if "://" in artifact_root else str(Path(artifact_root).resolve())
        self.artifact_root = root
        self.startup_timeout = startup_timeout
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(
            prefix="mlflow-server-", suffix=".log", delete=False
        )

    def __enter__(self) -> "LocalServer":
        for _ in range(3):  # the free port may be taken again before the server binds it
            port = free_port()
            self._start(port)
            if self._wait_healthy():
                self.url = f"http://127.0.0.1:{port}"
                return self
            self._stop()
        raise UserError(
            f"could not start a local mlflow server for {masked(self.backend_uri)!r}: "
            f"{self._last_log_line()} (log: {self._log.name})"
        )

    def __exit__(self, *exc) -> None:
        self._stop()
        self._log.close()
        if exc[0] is None:
            Path(self._log.name).unlink(missing_ok=True)

    def _start(self, port: int) -> None:
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--artifacts-destination",
            self.artifact_root,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",  # one server process: the only writer of the SQLite file
        ]
        # The store goes in MLflow's variable rather than argv, where `ps` would show it.
        env = {
            **os.environ,
            "MLFLOW_BACKEND_STORE_URI": self.backend_uri,
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        # Its own session: a Ctrl-C at the terminal reaches the sweep, which stops the server
        # only after the workers have ended their runs through it.
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        self._port = port

    def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self._port}/health", timeout=5
                ) as r:
                    if r.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.5)
        return False

    def _stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # The server's own process group (its session): uvicorn and whatever it started.
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def _last_log_line(self) -> str:
        self._log.flush()
        lines = Path(self._log.name).read_text(errors="replace").strip().splitlines()
        return lines[-1][:300] if lines else "no output"
