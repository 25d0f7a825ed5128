"""experiments.yaml: the seed's trials resolve exactly; bad input is one line, exit code 2."""

import pytest
import yaml

from cli.main import main
from harness.config import Experiments, deep_merge, parse_overrides, split_key
from harness.config_hash import config_hash
from harness.errors import UserError
from sweep.spec import load as load_sweep
from tests.conftest import REPO, run_cli


def test_the_seed_trials_resolve_to_settings_md(experiments):
    f1, f2, f3 = (experiments.resolve(n) for n in ("s7_file1", "s7_file2", "s7_file3"))
    for c in (f1, f2, f3):
        assert (c.optimizer.lr, c.optimizer.momentum, c.epochs, c.seed) == (0.1, 0.9, 15, 1)
        assert c.model.name == "s7_net"
    assert (f1.model.dropout, f1.batch_size, f1.scheduler.name, f1.augment.enabled) == (
        0.0,
        512,
        "none",
        False,
    )
    assert (f2.model.dropout, f2.batch_size, f2.augment.enabled) == (0.05, 128, False)
    assert (f2.scheduler.name, f2.scheduler.step_size, f2.scheduler.gamma) == ("step", 4, 0.1)
    assert (f3.model.dropout, f3.batch_size, f3.augment.enabled) == (0.05, 128, True)
    assert (f3.scheduler.step_size, f3.scheduler.gamma) == (8, 0.1)
    assert (f3.augment.degrees, f3.augment.translate, f3.augment.scale) == (20.0, 0.1, (0.9, 1.1))
    assert experiments.resolve(None).name == "s7_file3"


def test_a_trials_values_on_the_resolved_base_give_what_resolving_them_gives(experiments):
    """A sweep trial's config is its study's base config with the trial's values applied (no
    second read of the file or the environment); it is the config, and the config hash, that
    resolving the experiment with those values as overrides gives."""
    fixed = {"device": "cpu", "data": {"train_subset": 5000}}
    values = {"model": {"dropout": 0.12}, "batch_size": 64, "optimizer": {"lr": 0.03}}
    values |= {"scheduler": {"step_size": 6, "gamma": 0.2}, "augment": {"enabled": False}}
    base = experiments.resolve("s7_file3", fixed)
    direct = experiments.resolve("s7_file3", deep_merge(fixed, values))
    assert base.updated(values) == direct
    assert config_hash(base.updated(values)) == config_hash(direct)
    with pytest.raises(UserError, match="batch_size.*greater than or equal to 1"):
        base.updated({"batch_size": 0})
    with pytest.raises(UserError, match="did you mean 'batch_size'"):
        base.updated({"batch_sise": 64})


def test_dotted_overrides_reach_nested_keys(experiments):
    cfg = experiments.resolve(
        "s7_file3",
        parse_overrides(
            [
                "epochs=3",
                "seed=2",
                "optimizer.lr=1e-2",
                "augment.scale=[0.8, 1.2]",
                "data.train_subset=500",
            ]
        ),
    )
    assert (cfg.epochs, cfg.seed, cfg.optimizer.lr, cfg.augment.scale) == (3, 2, 0.01, (0.8, 1.2))
    assert cfg.data.train_subset == 500
    assert cfg.flat()["optimizer.lr"] == 0.01


BAD_COMMAND_LINES = [
    (["optimzer.lr=0.1"], "unknown key 'optimzer'; did you mean 'optimizer'?"),
    (["optimizer.lrr=0.1"], "unknown key 'optimizer.lrr'; did you mean 'optimizer.lr'?"),
    (["optimizer.lr=-0.1"], "key 'optimizer.lr' = -0.1 is invalid: input should be greater than 0"),
    (["epochs=0"], "key 'epochs' = 0 is invalid: input should be greater than or equal to 1"),
    (["batch_size=0"], "key 'batch_size' = 0 is invalid"),
    (["batch_size=abc"], "key 'batch_size' = 'abc' is invalid: input should be a valid integer"),
    (["batch_size=12.5"], "key 'batch_size' = 12.5 is invalid"),
    (["scheduler.gamma=1.5"], "key 'scheduler.gamma' = 1.5 is invalid"),
    (
        ["scheduler.name=cosine"],
        "key 'scheduler.name' = 'cosine' is invalid: input should be 'none' or 'step'",
    ),
    (
        ["model.name=resnet"],
        "key 'model.name' = 'resnet' is invalid: unknown model; known models: s7_net",
    ),
    (["augment.scale=[1.2, 0.8]"], "key 'augment.scale'"),
    (["device=tpu"], "key 'device' = 'tpu' is invalid"),
    (["epochs"], "expected key=value"),
    (["optimizer=0.1"], "key 'optimizer' = 0.1 is invalid: expected a mapping"),
]


@pytest.mark.parametrize("args,message", BAD_COMMAND_LINES)
def test_bad_overrides_are_one_line_errors(args, message, capsys):
    assert main(["train", "--exp", "s7_file3", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert err.startswith("error: ") and "experiments.yaml" in err or "command line" in err
    assert len(err.splitlines()) == 1


def test_unknown_experiment_names_the_closest(capsys):
    assert main(["train", "--exp", "s7_fil3"]) == 2
    assert "unknown experiment 's7_fil3'; did you mean 's7_file3'?" in capsys.readouterr().err


BAD_FILES = [
    ("defaults: {epochs: [1, 2\n", "malformed YAML at line"),
    (
        "default_experiment: a\nexperiments: {a: {bach_size: 3}}\n",
        "unknown key 'experiments.a.bach_size'; did you mean 'experiments.a.batch_size'?",
    ),
    (
        "default_experiment: a\ndefaults: {optimizer: {momentum: 1.5}}\nexperiments: {a: {}}\n",
        "(defaults): key 'optimizer.momentum' = 1.5 is invalid",
    ),
    ("default_experiment: b\nexperiments: {a: {}}\n", "key 'default_experiment' = 'b' is invalid"),
    ("default_experiment: a\nexperiments: {a: {}}\nsweeps: {}\n", "did you mean 'sweep'?"),
    ("- just\n- a list\n", "expected a mapping"),
]


@pytest.mark.parametrize("text,message", BAD_FILES)
def test_bad_files_name_the_file_and_key(tmp_path, text, message, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    assert main(["train", "--file", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(path) in err and message in err and len(err.splitlines()) == 1


def test_cli_exit_code_and_no_traceback():
    r = run_cli("train", "--exp", "s7_file3", "optimizer.lr=0", cwd=REPO)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: experiments.yaml (command-line override): key 'optimizer.lr' = 0 is invalid: "
        "input should be greater than 0"
    ]


def test_every_shipped_experiment_is_valid():
    exps = Experiments(REPO / "experiments.yaml")
    assert {"s7_file1", "s7_file2", "s7_file3"} <= set(exps.names)


BAD_SWEEPS = [
    (
        {"space": {"batch_size": {"type": "categorical", "choices": []}}},
        "key 'sweep.space.batch_size' is invalid",
        "a categorical parameter needs a non-empty 'choices' list",
    ),
    (
        {"space": {"optimizer.lr": {"type": "float", "low": 0.5, "high": 0.1}}},
        "key 'sweep.space.optimizer.lr' is invalid",
        "low 0.5 > high 0.1",
    ),
    (
        {"space": {"optimizer.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}},
        "key 'sweep.space.optimizer.lr' is invalid",
        "a log-scale range needs low > 0",
    ),
    (
        {"space": {"optimizer.lr": {"type": "float", "low": -0.1, "high": 0.1}}},
        "key 'sweep.space.optimizer.lr' = -0.1 is invalid for 'optimizer.lr'",
        "greater than 0",
    ),
    (
        {"space": {"batch_size": {"type": "categorical", "choices": [0, 128]}}},
        "key 'sweep.space.batch_size' = 0 is invalid for 'batch_size'",
        "greater than or equal to 1",
    ),
    (
        {"space": {"optimizer.lrr": {"type": "float", "low": 0.01, "high": 0.1}}},
        "unknown searched key 'sweep.space.optimizer.lrr'",
        "did you mean 'optimizer.lr'?",
    ),
    (
        {"sampler": {"name": "cmaes"}},
        "key 'sweep.sampler.name' = 'cmaes' is invalid",
        "input should be 'tpe', 'random' or 'grid'",
    ),
    (
        {"pruners": [{"name": "MedianPrunner"}]},
        "key 'sweep.pruners[0]' is invalid",
        "unknown pruner; known: HyperbandPruner, MedianPruner",
    ),
    (
        {"pruners": [{"name": "MedianPruner", "args": {"n_startup": 3}}]},
        "key 'sweep.pruners[0]'",
        "bad arguments {'n_startup': 3} for MedianPruner",
    ),
    ({"n_trials": 0}, "key 'sweep.n_trials' = 0 is invalid", "greater than or equal to 1"),
    (
        {"sampler": {"name": "grid"}},
        "key 'sweep' is invalid",
        "the grid sampler needs a 'grid' list for",
    ),
    (
        {"enqueue": [{"optimizer.lr": 0}]},
        "key 'sweep.enqueue[0].optimizer.lr' = 0 is invalid",
        "greater than 0",
    ),
]


@pytest.mark.parametrize("change,where,message", BAD_SWEEPS)
def test_bad_sweep_sections_are_one_line_errors_before_anything_runs(
    tmp_path, change, where, message, capsys
):
    doc = yaml.safe_load((REPO / "experiments.yaml").read_text())
    for key, value in change.items():
        if key == "space":
            doc["sweep"]["space"].update(value)
        else:
            doc["sweep"][key] = value
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["sweep", "--file", str(path), f"sweep.storage=sqlite:///{tmp_path}/o.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}") and len(err.splitlines()) == 1, err
    assert where in err and message in err, err
    assert not (tmp_path / "o.db").exists()  # nothing written to a study


def test_a_searched_key_is_overridden_in_brackets(experiments):
    over = parse_overrides(
        ["sweep.space[optimizer.lr].high=0.5", "sweep.space[model.dropout].low=0.01"]
    )
    assert over == {
        "sweep": {"space": {"optimizer.lr": {"high": 0.5}, "model.dropout": {"low": 0.01}}}
    }
    spec = load_sweep(REPO / "experiments.yaml", over).section("sweep")
    assert spec.space["optimizer.lr"].high == 0.5 and spec.space["optimizer.lr"].low == 0.01
    assert spec.space["model.dropout"].low == 0.01


def test_file_overrides_and_environment_are_validated_once_into_one_frozen_model(
    tmp_path, monkeypatch
):
    """The sweep section is typed where the sweep binds it; the file, the environment and the
    command line are layered before the one validation, and an error names its layer."""
    from findings.spec import FindingsSpec
    from findings.spec import load as load_all
    from sweep.spec import SweepSpec

    exps = load_all(REPO / "experiments.yaml")
    assert isinstance(exps.section("sweep"), SweepSpec)
    assert isinstance(exps.section("findings"), FindingsSpec)
    with pytest.raises(Exception, match="frozen"):
        exps.file.sweep.n_trials = 3
    assert isinstance(Experiments(REPO / "experiments.yaml").file.sweep, dict)  # make train: unread

    monkeypatch.setenv("OPTUNA_STORAGE", "sqlite:///env.db")
    exps = load_sweep(REPO / "experiments.yaml", {"sweep": {"n_trials": 3}, "epochs": 2})
    assert (exps.section("sweep").storage, exps.section("sweep").n_trials) == (
        "sqlite:///env.db",
        3,
    )
    assert exps.resolve(exps.section("sweep").base_experiment).epochs == 2
    monkeypatch.setenv("OPTUNA_STORAGE", "bad\nline")
    with pytest.raises(UserError, match=r"environment OPTUNA_STORAGE\): key 'sweep.storage'"):
        load_sweep(REPO / "experiments.yaml")
    monkeypatch.delenv("OPTUNA_STORAGE")
    with pytest.raises(UserError, match=r"command-line override\): key 'sweep.n_trials' = 0"):
        load_sweep(REPO / "experiments.yaml", {"sweep": {"n_trials": 0}})
    bad = {"sweep": {"space": {"optimizer.lr": {"low": 5}}, "pruners": [{"name": "Nope"}]}}
    for key, value in bad["sweep"].items():  # a mapping or list the command line changed
        with pytest.raises(UserError, match=f"command-line override\\): key 'sweep.{key}"):
            load_sweep(REPO / "experiments.yaml", {"sweep": {key: value}})
    with pytest.raises(UserError, match="key 'sweep' = None is invalid: a section is changed"):
        load_sweep(REPO / "experiments.yaml", {"sweep": None})  # not silently dropped
    # a searched key nested with dots in the file gets the spelling that works, as on the CLI
    doc = yaml.safe_load((REPO / "experiments.yaml").read_text())
    doc["sweep"]["space"]["optimizer"] = {"lr": {"high": 0.5}}
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match=r"write sweep.space\[optimizer.lr\].high=0.5"):
        load_sweep(tmp_path / "e.yaml")
    # the command line's training overrides apply to the experiment resolved, not to every one
    doc = yaml.safe_load((REPO / "experiments.yaml").read_text())
    doc["experiments"]["no_momentum"] = {"optimizer": {"momentum": 0.0}}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(doc))
    exps = Experiments(tmp_path / "m.yaml", {"optimizer": {"nesterov": True}})
    assert exps.resolve("s7_file3").optimizer.nesterov
    # the findings' lr study needs the sweep's section; a --spec file's section must be a mapping
    del doc["sweep"]
    (tmp_path / "n.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match="'findings.tuned_lr' needs a 'sweep:' section"):
        load_all(tmp_path / "n.yaml")
    (tmp_path / "spec.yaml").write_text("findings: null\n")
    with pytest.raises(UserError, match=f"^{tmp_path / 'spec.yaml'}: key 'findings' = None"):
        load_all(REPO / "experiments.yaml", spec_file=tmp_path / "spec.yaml")


@pytest.mark.parametrize(
    "item",
    ["a[b", "a]b=1", "a[]=1", "a.[b]=1", ".a=1", "a.=1", "[a.b]x=1", "=1"],
)
def test_malformed_override_keys_are_refused(item):
    with pytest.raises(UserError, match="expected key=value"):
        parse_overrides([item])


def test_split_key_keeps_bracketed_dots():
    assert split_key("sweep.space[optimizer.lr].high") == ["sweep", "space", "optimizer.lr", "high"]
    assert split_key("a[b][c.d]") == ["a", "b", "c.d"]
    assert split_key("a..b") is None
