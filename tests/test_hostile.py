"""Hostile input, as a user would type it: every mistake is one line on stderr, exit code 2, no
traceback, nothing written, and no password in any output.

Each case runs `python -m cli ...` in an empty folder holding only what the case puts
there (an experiments file for a 1-epoch run on 500 images, tracked in that folder), and the
folder is listed before and after: a refused command must leave it exactly as it was.
"""

import http.server
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from harness.data import MD5, raw_dir
from tests.conftest import DATA_ROOT, experiments_doc, run_cli

SECRET = "s3cret-pw"  # every credential below holds it; it must never be printed


@dataclass
class Case:
    id: str
    args: list[str]  # `{file}` is the experiments file, `{port}` the fake tracking server
    expect: list[str]  # substrings of the error line
    change: Callable[[dict], None] | None = None  # edits the experiments document
    text: str | bytes | None = None  # the experiments file's whole content instead
    setup: Callable[[Path], None] | None = None  # more things in the folder before the run
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    secrets: tuple[str, ...] = (SECRET,)


def _bomb(levels: int = 9) -> str:
    """A "billion laughs": 9 levels of 9 aliases, ~600 bytes, 9**9 values expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "default_experiment: x\nexperiments: {x: {}}\ndefaults:\n  " + "\n  ".join(lines)


def _file(name: str, content: str = "x") -> Callable[[Path], None]:
    return lambda d: (d / name).write_text(content)


def _folder(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).mkdir(parents=True)


def _mnist_copy(broken: str) -> Callable[[Path], None]:
    """`mnist/` beside the real data, with train images `missing_dir` (a folder in its place) or
    `truncated` (its first 1000 bytes)."""

    def setup(d: Path) -> None:
        raw = raw_dir(d / "mnist")
        raw.mkdir(parents=True)
        for name in MD5:
            (raw / name).symlink_to(raw_dir(DATA_ROOT) / name)
        target = raw / "train-images-idx3-ubyte"
        target.unlink()
        if broken == "folder":
            target.mkdir()
        else:
            target.write_bytes((raw_dir(DATA_ROOT) / target.name).read_bytes()[:1000])

    return setup


NEST = "[" * 5000 + "]" * 5000
BIG_INT = "9" * 5000

CASES = [
    # ---- config files that are not what they claim
    Case("file-not-utf8", ["train", "--file", "{file}"], ["not UTF-8"], text=b"seed: \xff\xfe\n"),
    Case(
        "file-binary", ["train", "--file", "{file}"], ["binary file"], text=b"\x7fELF\x02\x01\0\0"
    ),
    Case(
        "file-is-folder", ["train", "--file", "adir"], ["adir: is a folder"], setup=_folder("adir")
    ),
    Case(
        "config-is-folder",
        ["train", "--config", "adir"],
        ["adir: is a folder"],
        setup=_folder("adir"),
    ),
    Case("file-missing", ["train", "--file", "nope.yaml"], ["nope.yaml: file not found"]),
    Case(
        "config-empty",
        ["train", "--config", "cfg.yaml"],
        ["expected a mapping"],
        setup=_file("cfg.yaml", ""),
    ),
    Case(
        "config-no-train",
        ["train", "--config", "cfg.yaml"],
        ["expected a 'train:' mapping"],
        setup=_file("cfg.yaml", "provenance: {}\n"),
    ),
    Case(
        "file-huge",
        ["train", "--file", "{file}"],
        ["a config file is at most"],
        text="#" * (2 << 20),
    ),
    # ---- YAML bombs, depth, duplicates, giant numbers
    Case("yaml-alias-bomb", ["train", "--file", "{file}"], ["aliases are expanded"], text=_bomb()),
    Case(
        "yaml-deep-nesting",
        ["train", "--file", "{file}"],
        ["nested more than"],
        text=f"defaults: {NEST}\n",
    ),
    Case(
        "yaml-deep-block-nesting",
        ["train", "--file", "{file}"],
        ["nested more than"],
        text="defaults:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 400)),
    ),
    Case(
        "yaml-duplicate-key",
        ["train", "--file", "{file}"],
        ["key 'x' is given at line 3 and line 4"],
        text="default_experiment: x\nexperiments:\n  x: {}\n  x: {epochs: 2}\n",
    ),
    Case(
        "yaml-duplicate-key-flow",
        ["train", "--file", "{file}"],
        ["key 'epochs' is given twice on line 2"],
        text="default_experiment: x\nexperiments: {x: {epochs: 1, epochs: 2}}\n",
    ),
    Case(
        "yaml-thousand-digit-int",
        ["train", "--file", "{file}"],
        ["an integer of 5000 digits"],
        text=f"default_experiment: x\nexperiments: {{x: {{seed: {BIG_INT}}}}}\n",
    ),
    Case(
        "yaml-control-char-key",
        ["train", "--file", "{file}"],
        ["{file}"],
        text='default_experiment: x\nexperiments: {x: {"\\e[2Jevil": 1}}\n',
    ),
    # ---- overrides beyond the limits
    Case(
        "override-deep-nesting", ["train", f"epochs={NEST}"], ["key 'epochs'", "nested more than"]
    ),
    Case(
        "override-thousand-digit-int", ["train", f"seed={BIG_INT}"], ["key 'seed'", "5000 digits"]
    ),
    Case(
        "override-duplicate-key", ["train", "optimizer={lr: 1, lr: 2}"], ["key 'lr' is given twice"]
    ),
    Case("override-long-value", ["train", "device=" + "x" * 100_000], ["key 'device'", "..."]),
    Case("override-long-key", ["train", "k" * 100_000 + "=1"], ["unknown key"]),
    Case("override-escape-in-key", ["train", "\x1bevil=1"], ["unknown key", "\\x1b"]),
    Case("override-control-in-value", ["train", "name=a\x1b[31mb"], ["control characters"]),
    Case("override-empty-part", ["train", "optimizer..lr=0.1"], ["expected key=value"]),
    Case("override-unbalanced-bracket", ["sweep", "sweep.space[optimizer.lr.high=1"], ["brackets"]),
    Case(
        "override-conflict",
        ["train", "optimizer.lr=0.1", "optimizer.lr.x=1"],
        ["conflicts with an earlier override"],
    ),
    # ---- accepted before, then failing inside torch or MLflow
    Case(
        "weight-decay-inf",
        ["train", "optimizer.weight_decay=.inf"],
        ["optimizer.weight_decay", "finite"],
    ),
    Case(
        "weight-decay-nan",
        ["train", "optimizer.weight_decay=.nan"],
        ["optimizer.weight_decay", "finite"],
    ),
    Case("dropout-nan", ["train", "model.dropout=.nan"], ["model.dropout"]),
    Case(
        "study-name-quote",  # it is matched inside MLflow search filters ('...')
        ["sweep", "sweep.study_name=it's"],
        ["key 'sweep.study_name'", "quotes and backslashes are not allowed"],
    ),
    Case("seed-beyond-2-64", ["train", f"seed={2**64}"], ["key 'seed'", str(2**64 - 1)]),
    Case("seed-negative", ["train", "seed=-1"], ["key 'seed' = -1"]),
    Case(
        "nesterov-without-momentum",
        ["train", "optimizer.nesterov=true", "optimizer.momentum=0"],
        ["nesterov: true needs momentum > 0"],
    ),
    Case("experiment-empty", ["train", "tracking.experiment=''"], ["tracking.experiment"]),
    Case("experiment-blank", ["train", "tracking.experiment='   '"], ["not blank"]),
    Case(
        "tracking-uri-into-file",
        ["train", "tracking.uri=sqlite:///afile/mlflow.db"],
        ["tracking.uri", "afile is a file, not a folder"],
        setup=_file("afile"),
    ),
    Case(
        "tracking-uri-is-folder",
        ["train", "tracking.uri=sqlite:///adir"],
        ["tracking.uri", "adir is a folder, not a file"],
        setup=_folder("adir"),
    ),
    Case(
        "artifact-root-into-file",
        ["train", "tracking.artifact_root=afile/arts"],
        ["tracking.artifact_root", "afile is a file"],
        setup=_file("afile"),
    ),
    Case(
        "tracking-scheme", ["train", "tracking.uri=ftp://host/x"], ["unsupported scheme 'ftp://'"]
    ),
    Case("device-bad-cuda-index", ["train", "device=cuda:x"], ["key 'device'"]),
    # ---- data
    Case(
        "data-root-is-file", ["data", "--root", "afile"], ["afile: is a file"], setup=_file("afile")
    ),
    Case(
        "train-data-root-is-file",
        ["train", "data.root=afile"],
        ["data.root", "is a file"],
        setup=_file("afile"),
    ),
    Case(
        "idx-file-is-folder",
        ["train", "data.root=mnist"],
        ["train-images-idx3-ubyte: is not a file"],
        setup=_mnist_copy("folder"),
    ),
    Case(
        "idx-file-truncated",
        ["train", "data.root=mnist"],
        ["corrupt or truncated"],
        setup=_mnist_copy("truncated"),
    ),
    # ---- argparse
    Case("argparse-no-command", [], ["required: command"]),
    Case("argparse-unknown-command", ["trian"], ["invalid choice: 'trian'"]),
    Case("argparse-unknown-flag", ["train", "--nope"], ["unrecognized arguments: --nope"]),
    Case("argparse-n-trials-not-int", ["sweep", "--n-trials", "abc"], ["--n-trials"]),
    Case("argparse-workers-not-int", ["sweep", "--workers", "two"], ["--workers"]),
    Case("argparse-port-zero", ["ui", "--port", "0"], ["--port", "1-65535"]),
    Case("argparse-port-huge", ["ui", "--port", "99999"], ["--port"]),
    # ---- export
    Case("export-out-missing-folder", ["export", "--out", "no/such/best.yaml"], ["does not exist"]),
    Case(
        "export-out-is-folder", ["export", "--out", "adir"], ["is a folder"], setup=_folder("adir")
    ),
    Case(
        "export-table-same-as-out",
        ["export", "--out", "x.yaml", "--table", "x.yaml"],
        ["same file"],
    ),
    # ---- searched keys hold dots
    Case(
        "sweep-space-dotted-without-brackets",
        ["sweep", "sweep.space.optimizer.lr.high=0.5"],
        ["sweep.space[optimizer.lr].high=0.5"],
    ),
    Case(
        "sweep-space-bracket-bad-value",
        ["sweep", "sweep.space[optimizer.lr].high=-1"],
        ["sweep.space.optimizer.lr"],
    ),
    Case(
        "sweep-space-bracket-unknown-key",
        ["sweep", "sweep.space[optimizer.lrr]={type: float, low: 0.1, high: 0.2}"],
        ["unknown searched key 'sweep.space.optimizer.lrr'", "did you mean 'optimizer.lr'"],
    ),
    # ---- secrets: never printed, whatever the URL looks like
    Case(
        "secret-unreachable-train",
        ["train"],
        ["cannot be reached", "u:***@"],
        env={"MLFLOW_TRACKING_URI": f"http://u:{SECRET}@127.0.0.1:1"},
    ),
    Case(
        "secret-bad-port",
        ["train", f"tracking.uri=http://u:{SECRET}@127.0.0.1:5432x"],
        ["cannot be reached"],
    ),
    Case(
        "secret-unclosed-bracket", ["train", f"tracking.uri=http://u:{SECRET}@[::1"], ["tracking"]
    ),
    Case(
        "secret-user-only-token",
        ["train", f"tracking.uri=https://{SECRET}@127.0.0.1:1"],
        ["cannot be reached", "https://***@"],
    ),
    Case(
        "secret-at-in-password",
        ["train", f"tracking.uri=postgresql://u:p@{SECRET}@127.0.0.1:1/db"],
        ["cannot be reached"],
        secrets=(SECRET, f"p@{SECRET}"),
    ),
    Case(
        "secret-percent-encoded",
        ["train", f"tracking.uri=postgresql://u:p%40{SECRET}@127.0.0.1:1/db"],
        ["cannot be reached"],
        secrets=(SECRET, f"p%40{SECRET}"),
    ),
    Case(
        "secret-query-password",
        ["train", f"tracking.uri=postgresql://127.0.0.1:1/db?user=u&password={SECRET}"],
        ["cannot be reached"],
    ),
    Case(
        "secret-with-bad-value",
        ["train", f"tracking.uri=http://u:{SECRET}@127.0.0.1:1", "tracking.experiment=''"],
        ["tracking.experiment"],
    ),
    Case(
        "secret-in-unsupported-scheme",
        ["train", f"tracking.uri=ftp://u:{SECRET}@host/x"],
        ["unsupported scheme"],
    ),
    Case(
        "secret-server-401",
        ["train", f"tracking.uri=http://u:{SECRET}@127.0.0.1:{{port}}/401"],
        ["refused the credentials (HTTP 401"],
    ),
    Case(
        "secret-server-500",
        ["train", f"tracking.uri=http://u:{SECRET}@127.0.0.1:{{port}}/500"],
        ["cannot be reached", "500"],
    ),
    Case(
        "secret-storage-bad-port",
        ["sweep"],
        ["cannot be"],
        env={"OPTUNA_STORAGE": f"postgresql://u:{SECRET}@127.0.0.1:5432x/db"},
    ),
    # ---- the study (checked before the study or any run is created)
    Case(
        "sweep-unreachable-tracking-writes-nothing",
        ["sweep"],
        ["cannot be reached"],
        env={"MLFLOW_TRACKING_URI": f"http://u:{SECRET}@127.0.0.1:1"},
    ),
    Case(
        "sweep-baseline-outside-choices",
        ["sweep", "sweep.space.batch_size.choices=[64, 256]"],
        ["batch_size"],
    ),
    Case("sweep-sampler-bad-args", ["sweep", "sweep.sampler.args={bogus: 1}"], ["sampler"]),
    Case("sweep-sampler-negative-seed", ["sweep", "sweep.sampler.seed=-1"], ["sampler.seed"]),
    Case(
        "sweep-truncated-data",
        ["sweep", "data.root=mnist"],
        ["corrupt or truncated"],
        setup=_mnist_copy("truncated"),
    ),
    Case("export-without-study", ["export"], ["study"]),
]


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A tracking server that answers every request with the status its path names."""

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        code = int(self.path.strip("/").split("/")[0])
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def refusing_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case, refusing_server):
    work = tmp_path / "work"
    work.mkdir()
    file = work / "experiments.yaml"
    if case.text is not None:
        data = case.text.encode() if isinstance(case.text, str) else case.text
        file.write_bytes(data)
    else:
        doc = experiments_doc(work, epochs=1, train_subset=500, test_subset=500)
        doc["sweep"]["n_trials"] = 1
        if case.change:
            case.change(doc)
        file.write_text(yaml.safe_dump(doc, sort_keys=False))
    if case.setup:
        case.setup(work)
    subst = {"{file}": str(file), "{port}": str(refusing_server)}

    def fill(s: str) -> str:
        for k, v in subst.items():
            s = s.replace(k, v)
        return s

    args = [fill(a) for a in case.args]
    if args and args[0] in ("train", "sweep", "export", "ui") and "--file" not in args:
        args[1:1] = ["--file", str(file)]
    before = _listing(work)
    env = {k: fill(v) for k, v in case.env.items()}
    r = run_cli(*args, cwd=work, env=env)
    lines = r.stderr.splitlines()
    shown = (r.stdout + r.stderr)[-3000:]
    assert r.returncode == case.code, shown
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    assert "Traceback" not in r.stdout + r.stderr
    assert len(lines[0]) <= 1200, len(lines[0])
    assert not any(ord(c) < 32 for c in lines[0]), repr(lines[0])
    for part in case.expect:
        assert fill(part) in lines[0], lines[0]
    for secret in case.secrets:
        assert secret not in r.stdout + r.stderr, shown
    assert _listing(work) == before  # nothing written, not even a folder


def test_the_table_covers_enough_cases():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


SCRUBBED = [
    ("postgresql://u:s3cret-pw@db:5432x/x", "postgresql://u:***@db:5432x/x"),  # bad port
    ("http://u:s3cret-pw@[::1/x", "http://u:***@[::1/x"),  # unclosed [
    ("https://s3cret-pw@host/x", "https://***@host/x"),  # a user part alone is a token
    ("postgresql://u:p@s3cret-pw@host/db", "postgresql://u:***@host/db"),  # @ in the password
    ("postgresql://u:p%40s3cret-pw@host/db", "postgresql://u:***@host/db"),  # percent-encoded
    ("postgresql://h/db?user=u&password=s3cret-pw", "postgresql://h/db?user=u&password=***"),
    (
        "API request to http://alice:s3cret-pw@127.0.0.1:5999/api/2.0 failed; url='http://alice:s3cret-pw@x'",
        "API request to http://alice:***@127.0.0.1:5999/api/2.0 failed; url='http://alice:***@x'",
    ),
    ("sqlite:///runs/optuna.db", "sqlite:///runs/optuna.db"),
    ("http://alice:***@127.0.0.1:5999", "http://alice:***@127.0.0.1:5999"),  # already masked
]


@pytest.mark.parametrize("text,want", SCRUBBED)
def test_scrub_text_masks_credentials_in_any_url_like_text(text, want):
    from harness.urls import masked, scrub, scrub_text

    assert scrub_text(text) == want
    assert SECRET not in masked(text) and SECRET not in scrub(text, text)


@pytest.mark.parametrize("credential", [f"alice:{SECRET}", SECRET], ids=["password", "token"])
def test_no_secret_anywhere_against_a_real_mlflow_server(tmp_path, credential):
    """A 1-epoch run on 500 images logged to a real `mlflow server` through a URL that carries
    a credential: the credential is in no output, param, tag or artifact."""
    from mlflow.tracking import MlflowClient

    from tracking.server import LocalServer

    work = tmp_path / "work"
    work.mkdir()
    file = work / "experiments.yaml"
    file.write_text(yaml.safe_dump(experiments_doc(work, 1, 500, 200), sort_keys=False))
    with LocalServer(f"sqlite:///{tmp_path}/server.db", str(tmp_path / "served")) as server:
        uri = server.url.replace("http://", f"http://{credential}@")
        r = run_cli(
            "train",
            "--file",
            str(file),
            "progress=false",
            cwd=work,
            env={"MLFLOW_TRACKING_URI": uri},
        )
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-3000:]
        assert SECRET not in out
        client = MlflowClient(server.url)
        (run,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
        logged = str(run.data.params) + str(run.data.tags)
        assert SECRET not in logged
        assert "***@127.0.0.1" in run.data.params["tracking.uri"]
        files = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "dl")))
        for f in files.rglob("*"):
            if f.is_file():
                assert SECRET.encode() not in f.read_bytes(), f
