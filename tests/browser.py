"""A small headless-Chromium driver over the DevTools protocol: open a page, wait for text, click,
read what is rendered, take a screenshot. Enough to check a web UI the way a user looks at it."""

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import websocket

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",  # Chromium picks a port and writes it to DevToolsActivePort
]


def find_chromium() -> str | None:
    """Debian's `chromium` (what .ci/run installs), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """`with Browser(binary, folder) as b: b.open(url); b.wait_for_text("x"); b.text()`."""

    def __init__(self, binary: str, folder: Path, size: tuple[int, int] = (1600, 1000)):
        profile = folder / "chromium-profile"  # a fresh profile: no saved UI state
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"chromium did not start (exit code {self.proc.poll()})")
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.loads(r.read()) if t["type"] == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        self.ids = itertools.count(1)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)

    def call(self, method: str, **params) -> dict:
        """One DevTools command; its result (events arriving meanwhile are skipped)."""
        n = next(self.ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def eval(self, js: str):
        result = self.call("Runtime.evaluate", expression=js, returnByValue=True)
        return result["result"].get("value")

    def text(self) -> str:
        """The page's rendered text, as a user reads it."""
        return self.eval("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        """Wait until every needle is on the page; return the page's text."""
        deadline = time.time() + timeout
        while True:
            text = self.text()
            if all(n in text for n in needles):
                return text
            if time.time() > deadline:
                missing = [n for n in needles if n not in text]
                raise AssertionError(f"not on the page after {timeout} s: {missing}\n{text[:3000]}")
            time.sleep(0.5)

    def click(self, selector: str) -> None:
        found = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
            "if (e) e.click(); return !!e; })()"
        )
        if not found:
            raise AssertionError(f"nothing on the page matches {selector!r}")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path
