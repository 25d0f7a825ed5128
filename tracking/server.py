"""A loopback `mlflow server` over a local store, so that several processes can log at once.

The embedded store is one SQLite file, which several writers would fight over ("database is
locked"). For `make sweep WORKERS=k` the sweep starts one `mlflow server` (one server process,
the file's only writer) on 127.0.0.1, the workers log to it over HTTP, and it stops afterwards.
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


class LocalServer:
    """`with LocalServer(uri, artifacts) as server:` ... `server.url` ... (stopped on exit).

    Args:
        backend_uri: the store the server owns (e.g. `sqlite:///mlflow.db`).
        artifact_root: the folder (or URI) the server proxies artifacts to.
        startup_timeout: seconds to wait for its /health (it imports a lot).
    """

    def __init__(self, backend_uri: str, artifact_root: str, startup_timeout: float = 240.0):
        self.backend_uri, self.startup_timeout = backend_uri, startup_timeout
        self.artifact_root = (
            artifact_root if "://" in artifact_root else str(Path(artifact_root).resolve())
        )
        self.log = tempfile.NamedTemporaryFile(prefix="mlflow-server-", suffix=".log", delete=False)
        with socket.socket() as s:  # a free port; the server binds it a moment later
            s.bind(("127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{s.getsockname()[1]}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "LocalServer":
        port = self.url.rpartition(":")[2]
        cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", port]
        cmd += ["--artifacts-destination", self.artifact_root, "--workers", "1"]
        # the store in MLflow's variable, not in argv where `ps` shows any password in it;
        # its own session: Ctrl-C reaches the sweep, which stops it after the workers are done
        env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": self.backend_uri}
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            with suppress(OSError), urllib.request.urlopen(f"{self.url}/health", timeout=5) as r:
                if r.status == 200:
                    return self
            time.sleep(0.5)
        self.__exit__(RuntimeError)
        lines = Path(self.log.name).read_text(errors="replace").strip().splitlines()
        raise UserError(
            f"could not start a local mlflow server for {masked(self.backend_uri)!r}: "
            f"{lines[-1][:300] if lines else 'no output'} (log: {self.log.name})"
        )

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with suppress(ProcessLookupError):  # its process group: uvicorn and its children
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.log.close()
        if exc[0] is None:
            Path(self.log.name).unlink(missing_ok=True)
