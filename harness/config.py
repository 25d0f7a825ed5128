"""experiments.yaml -> one frozen, validated `TrainConfig` per experiment.

The file holds `defaults`, named `experiments` that override them, and the sections of the floors
above (`sweep:`, `findings:`), whose types those floors bind (`Experiments(sections=...)`): the
file, its command-line overrides and the environment are validated once, as one frozen model.
Every key is checked when the file is loaded: an unknown key names the closest known one, a wrong
type or out-of-range value names the file (or override, or variable), key path, bad value and
what is allowed. Command-line overrides are `dotted.key=value` pairs, parsed as YAML scalars.

Where the stores live can also come from the environment, so that workers on many machines share
one experiments file: `MLFLOW_TRACKING_URI` (MLflow's own variable) sets `tracking.uri` and
`OPTUNA_STORAGE` sets `sweep.storage`. The environment wins over the file; a command-line
override wins over both. This module is the only place that reads them.
"""

import difflib
import os
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from harness.errors import UserError, cut
from harness.urls import masked
from harness.yamlio import parse_value, read_yaml
from model_zoo import list_models

# environment variable -> the dotted key it sets: a training config's, or a section's
ENV = {"MLFLOW_TRACKING_URI": "tracking.uri", "OPTUNA_STORAGE": "sweep.storage"}
SECTIONS = ("sweep", "findings")  # the file's sections that floors above the core define


def _printable(v: str) -> str:
    # no setting needs a control character; one in a path or URL fails deep inside a library
    if any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise ValueError("control characters (newline, tab, NUL, escape, ...) are not allowed")
    return v


Int = Annotated[int, Strict()]
# strict float still accepts ints; inf and nan are refused (torch takes them, then trains NaN)
Float = Annotated[float, Strict(), AllowInfNan(False)]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict(), AfterValidator(_printable)]

SEED_MAX = 2**64 - 1  # torch.manual_seed takes a seed that fits in 64 bits
# what MLflow opens as a tracking store (mlflow.tracking._tracking_service.utils' registry);
# a plain path (no `://`) is a local file store
TRACKING_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "file", "http", "https")
TRACKING_SCHEMES_ALSO = ("databricks", "databricks-uc", "uc")  # hosted; named without `://`


class Section(BaseModel):
    """Base for every config section: frozen, and misspelled keys are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(Section):
    name: Str = "s7_net"
    dropout: Float = Field(0.05, ge=0.0, lt=1.0)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in list_models():
            raise ValueError(f"unknown model; known models: {', '.join(list_models())}")
        return v


class OptimizerConfig(Section):
    """SGD, as the seed ran it."""

    lr: Float = Field(0.1, gt=0.0, le=10.0)
    momentum: Float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: Float = Field(0.0, ge=0.0)
    nesterov: Bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> "OptimizerConfig":
        if self.nesterov and self.momentum == 0:  # torch.optim.SGD refuses it at the first step
            raise ValueError("nesterov: true needs momentum > 0 (momentum is 0)")
        return self


class SchedulerConfig(Section):
    """`step` is StepLR stepped once per epoch after training; `none` keeps the initial lr."""

    name: Literal["none", "step"] = "step"
    step_size: Int = Field(8, ge=1)
    gamma: Float = Field(0.1, gt=0.0, le=1.0)


class AugmentConfig(Section):
    """The seed's RandomAffine: rotation +-degrees, translation +-fraction of the side, scale range."""

    enabled: Bool = True
    degrees: Float = Field(20.0, ge=0.0, le=180.0)
    translate: Float = Field(0.1, ge=0.0, le=0.5)
    scale: tuple[Float, Float] = (0.9, 1.1)

    @field_validator("scale", mode="before")
    @classmethod
    def _list_to_tuple(cls, v: Any) -> Any:
        return tuple(v) if isinstance(v, list) else v

    @field_validator("scale")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1]:
            raise ValueError("expected [low, high] with 0 < low <= high")
        return v


class DataConfig(Section):
    """Where MNIST lives and how much of it a run uses (subsets are for quick looks and tests)."""

    root: Str = "data"
    train_subset: Int | None = Field(None, ge=1)
    test_subset: Int | None = Field(None, ge=1)


class TrackingConfig(Section):
    """MLflow: the embedded default is a SQLite file plus a local artifact folder (no ./mlruns)."""

    uri: Str = Field("sqlite:///mlflow.db", min_length=1)
    artifact_root: Str = Field("mlartifacts", min_length=1)
    experiment: Str = Field("train", min_length=1, max_length=250)
    enabled: Bool = True

    @field_validator("experiment")
    @classmethod
    def _named(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("an MLflow experiment needs a name that is not blank")
        return v

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        scheme = v.split("://", 1)[0].split("+", 1)[0].lower() if "://" in v else None
        if v.split(":", 1)[0] in TRACKING_SCHEMES_ALSO:
            return v
        if scheme is not None and scheme not in TRACKING_SCHEMES:
            raise ValueError(
                f"unsupported scheme '{cut(scheme, 40)}://'; expected one of "
                f"{', '.join(s + '://' for s in TRACKING_SCHEMES)}, databricks, or a folder path"
            )
        return v


class TrainConfig(Section):
    """Everything one training run needs; the trainer reads nothing else."""

    name: Str = Field("custom", min_length=1, max_length=200)
    seed: Int = Field(1, ge=0, le=SEED_MAX)
    epochs: Int = Field(15, ge=1, le=1000)
    batch_size: Int = Field(128, ge=1, le=60000)
    eval_batch_size: Int = Field(500, ge=1)
    device: Str = "auto"
    progress: Bool = True
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    augment: AugmentConfig = AugmentConfig()
    data: DataConfig = DataConfig()
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "mps") and not re.fullmatch(r"cuda(:[0-9]{1,3})?", v):
            raise ValueError("expected one of auto, cpu, cuda, cuda:N, mps")
        return v

    def public(self) -> dict[str, Any]:
        """The whole config as plain data, with any password in `tracking.uri` or
        `tracking.artifact_root` (e.g. sftp://user:pw@host/path) masked: what is logged (params,
        config.json) and kept with a trial."""
        data = self.model_dump(mode="json")
        for key in ("uri", "artifact_root"):
            if data["tracking"][key]:
                data["tracking"][key] = masked(data["tracking"][key])
        return data

    def flat(self) -> dict[str, Any]:
        """The whole config as `{dotted.key: value}` (for MLflow params and matching runs);
        passwords masked as in `public`."""
        return flatten(self.public())

    def updated(self, overrides: dict[str, Any], where: str = "override") -> "TrainConfig":
        """This config with nested `overrides` applied, validated again: e.g. a trial's values
        on its study's resolved base config (nothing is read from the file or environment)."""
        check_keys(overrides, TrainConfig, where)
        return validate_train_config(deep_merge(self.model_dump(), overrides), lambda _: where)


class ExperimentsFile(Section):
    """The top level of experiments.yaml. The sections are typed by the floor that reads them
    (`Experiments(sections=...)`); one no command binds stays unread, so training alone
    never imports what the sweep needs (optuna)."""

    default_experiment: Str
    defaults: dict[str, Any] = {}
    experiments: dict[str, dict[str, Any]] = {}
    sweep: dict[str, Any] | None = None
    findings: dict[str, Any] | None = None


# ---------------------------------------------------------------- helpers


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`; lists and tuples stay values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def unflatten(d: dict[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1}` -> `{"a": {"b": 1}}`."""
    out: dict[str, Any] = {}
    for key, v in d.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Return `base` updated by `over`, merging nested mappings key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def _fmt(value: Any) -> str:
    """A user's value as a message quotes it: strings quoted, and cut where long."""
    return cut(repr(value) if isinstance(value, str) else str(value))


def _model_in(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('model' | 'dict' | 'list', Model) where an annotation holds config sections, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):  # an optional section: `Spec | None`
        inner = [a for a in args if a is not type(None)]
        return _model_in(inner[0]) if len(inner) == 1 else None
    if origin in (dict, list) and args:
        inner = args[-1]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return origin.__name__, inner
    return None


def check_keys(data: Any, model: type[BaseModel], where: str, prefix: str = "") -> None:
    """Raise for the first key in `data` that `model` does not define, naming the closest match.

    Descends into nested sections, including mappings and lists of sections.
    """
    if not isinstance(data, dict):
        return
    fields = model.model_fields
    for key, value in data.items():
        path = cut(f"{prefix}{key}", 120)
        if key not in fields:
            close = difflib.get_close_matches(cut(str(key), 120), list(fields), n=1, cutoff=0.5)
            hint = (
                f"did you mean '{prefix}{close[0]}'?"
                if close
                else "known keys: " + ", ".join(f"{prefix}{f}" for f in fields)
            )
            raise UserError(f"{where}: unknown key '{path}'; {hint}")
        inner = _model_in(fields[key].annotation)
        if inner is None or (
            value is None and type(None) in typing.get_args(fields[key].annotation)
        ):
            continue  # not a section, or an optional one left out (`sweep: null`)
        kind, sub = inner
        if kind == "model":
            if not isinstance(value, dict):
                raise UserError(
                    f"{where}: key '{path}' = {_fmt(value)} is invalid: expected a mapping of "
                    f"{', '.join(sub.model_fields)}"
                )
            check_keys(value, sub, where, path + ".")
        elif kind == "dict" and isinstance(value, dict):
            for k, v in value.items():
                check_keys(v, sub, where, f"{path}.{k}.")
        elif kind == "list" and isinstance(value, list):
            for i, v in enumerate(value):
                check_keys(v, sub, where, f"{path}[{i}].")


def validation_message(err: ValidationError, where_of: "callable") -> str:
    """Turn pydantic's first error into `file: key 'a.b' = value is invalid: what is allowed`.

    A whole mapping that is wrong as a whole (e.g. low > high) is named by its key, without
    echoing its contents.
    """
    e = err.errors()[0]
    path = ""
    for p in e["loc"]:
        path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
    msg = e["msg"].removeprefix("Value error, ")
    msg = msg[0].lower() + msg[1:] if msg else msg
    value = e.get("input")
    what = "" if isinstance(value, dict) else f" = {_fmt(value)}"
    return f"{where_of(path)}: key '{path}'{what} is invalid: {msg}"


def _env_where(sections: bool) -> dict[str, str]:
    """`{dotted key: variable name}` for the set, non-empty variables of `ENV` that set a
    section's key (`sections`) or a training config's."""
    return {
        key: name
        for name, key in ENV.items()
        if os.environ.get(name) and (key.split(".", 1)[0] in SECTIONS) == sections
    }


def env_overrides(sections: bool = False) -> dict[str, Any]:
    """Those variables' values as a nested override."""
    return unflatten({key: os.environ[name] for key, name in _env_where(sections).items()})


_KEY = re.compile(r"(?:[^.\[\]=]+|\[[^\[\]]+\])(?:\.[^.\[\]=]+|\[[^\[\]]+\])*")
_PART = re.compile(r"\[([^\[\]]+)\]|([^.\[\]]+)")
OVERRIDE_SYNTAX = (
    "expected key=value, dotted for nested keys, with a key that holds dots in brackets: "
    "optimizer.lr=0.05, sweep.space[optimizer.lr].high=0.5"
)


def split_key(key: str) -> list[str] | None:
    """`a.b[c.d].e` -> `["a", "b", "c.d", "e"]`: dots separate keys, except inside brackets,
    which hold one key that contains dots (a searched key such as `optimizer.lr`). None where
    the key is malformed (empty parts, unbalanced brackets)."""
    if not _KEY.fullmatch(key):
        return None
    return [bracketed or plain for bracketed, plain in _PART.findall(key)]


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`["optimizer.lr=0.05", "sweep.space[optimizer.lr].high=0.5"]` -> nested dict.

    Dots separate nested keys; a key that itself holds dots is written in brackets. A malformed
    item, or a value beyond the YAML limits, is a `UserError`.
    """
    out: dict[str, Any] = {}
    for item in args:
        key, sep, text = item.partition("=")
        parts = split_key(key) if sep else None
        if not parts:
            raise UserError(f"command line: {OVERRIDE_SYNTAX}; got {_fmt(item)}")
        node = out
        *parents, leaf = parts
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UserError(f"command line: key {_fmt(key)} conflicts with an earlier override")
        if isinstance(node.get(leaf), dict):
            raise UserError(f"command line: key {_fmt(key)} conflicts with an earlier override")
        node[leaf] = parse_value(text, f"command line: key {_fmt(key)}")
    return out


# ---------------------------------------------------------------- loading


class Experiments:
    """experiments.yaml with its overrides and environment, validated once.

    `resolve(name)` gives an experiment's `TrainConfig`; `section(name)` a section's spec.

    Args:
        path: the experiments file.
        overrides: nested command-line overrides. Those under a bound section's name (e.g.
            `sweep`) change that section; the rest (`self.overrides`) change every training config.
        sections: `{name: Section type}` for the sections to validate (see `SECTIONS`). A type
            may define `precheck(data, where)` (a classmethod, on the section's raw mapping and
            on its overrides) and `cross_check(experiments)` (run once the whole file is valid).
        section_files: `{name: path}` for a section read from a file of its own, under the same
            top-level key, instead of from experiments.yaml.
    Raises:
        UserError: one line naming the file (or override, or variable), key path, value and
            what is allowed.
    """

    def __init__(
        self,
        path: Path | str = "experiments.yaml",
        overrides: dict[str, Any] | None = None,
        sections: dict[str, type[Section]] | None = None,
        section_files: dict[str, Path | str | None] | None = None,
    ):
        self.path, self._sections = Path(path), sections or {}
        sections, overrides = self._sections, overrides or {}
        self.overrides = {k: v for k, v in overrides.items() if k not in sections}
        raw = read_yaml(self.path)
        self.files = {name: str(self.path) for name in sections}
        for name, file in (section_files or {}).items():
            if file is not None:
                raw[name], self.files[name] = self._section_file(Path(file), name), str(file)
        model = create_model(
            "ExperimentsFile",
            __base__=ExperimentsFile,
            **{n: (t | None, None) for n, t in sections.items()},
        )
        cli = f"{self.path} (command-line override)"
        env = env_overrides(sections=True)
        given = {n: overrides[n] for n in sections if n in overrides}
        self._sources = {  # dotted key -> what set it, where not the file
            **{k: f"environment {v}" for k, v in _env_where(True).items()},
            **{k: "command-line override" for k in flatten(given)},
        }
        for name, kind in sections.items():
            if name in given and not isinstance(given[name], dict):
                raise UserError(
                    f"{cli}: key '{name}' = {_fmt(given[name])} is invalid: a section is "
                    f"changed key by key, e.g. {name}.<key>=value"
                )
            precheck = getattr(kind, "precheck", None)
            if precheck and isinstance(raw.get(name), dict):
                precheck(raw[name], self.files[name])
            if precheck and name in given:
                precheck(given[name], cli)
            check_keys({name: given.get(name, {})}, model, cli)
            check_keys({name: raw.get(name)}, model, self.files[name])  # its own file's name
            if isinstance(raw.get(name), dict):  # overrides change a section that exists
                raw[name] = deep_merge(
                    deep_merge(raw[name], env.get(name, {})), given.get(name, {})
                )
        check_keys(raw, model, str(self.path))
        try:
            self.file = model.model_validate(raw)
        except ValidationError as e:
            raise UserError(validation_message(e, self.where_of)) from None
        check_keys(self.file.defaults, TrainConfig, str(self.path), "defaults.")
        for name, exp in self.file.experiments.items():
            check_keys(exp, TrainConfig, str(self.path), f"experiments.{name}.")
        if self.file.default_experiment not in self.file.experiments:
            raise UserError(
                f"{self.path}: key 'default_experiment' = {self.file.default_experiment!r} is "
                f"invalid: expected one of {', '.join(self.file.experiments)}"
            )
        for name in self.file.experiments:  # validate every experiment now, not when first used
            self._resolve(name, {})  # the command line's overrides apply to the one it resolves
        for name in sections:
            spec = getattr(self.file, name)
            if spec is not None and hasattr(spec, "cross_check"):
                spec.cross_check(self)

    def _section_file(self, path: Path, name: str) -> Any:
        """A section from a file of its own: a mapping with the one top-level key `name`."""
        raw = read_yaml(path)
        # the section's own keys are checked with the rest, after its `precheck`
        check_keys(raw, create_model(f"{name}_file", **{name: (Any, None)}), str(path))
        if not isinstance(raw.get(name), dict):
            raise UserError(
                f"{path}: key '{name}' = {_fmt(raw.get(name))} is invalid: expected a mapping"
            )
        return raw[name]

    def where_of(self, path: str) -> str:
        """Where the value at dotted `path` of the file came from, for messages: a list given
        whole counts for its items; a mapping with a key set elsewhere names both."""
        file = self.files.get(path.split(".", 1)[0], str(self.path))
        for key, source in self._sources.items():
            if path == key or path.startswith((key + ".", key + "[")):
                return f"{self.path} ({source})"
        inside = sorted({s for k, s in self._sources.items() if k.startswith(path + ".")})
        return f"{file} (with {', '.join(inside)})" if inside else file

    def section(self, name: str) -> Any:
        """The validated section `name` (bound in `sections`), or a one-line error if the file
        has none."""
        spec = getattr(self.file, name, None)
        if name not in self._sections:  # a mistake of ours, not the user's
            raise KeyError(f"section {name!r} was not bound when {self.path} was loaded")
        if spec is None:
            hint = getattr(self._sections[name], "HELP", "see README")
            raise UserError(f"{self.files[name]}: no '{name}:' section; add one ({hint})")
        return spec

    @property
    def names(self) -> list[str]:
        return list(self.file.experiments)

    def resolve(
        self, name: str | None = None, overrides: dict[str, Any] | None = None
    ) -> TrainConfig:
        """Defaults, then the named experiment, the environment, the command-line overrides
        given to the file, then `overrides`, validated as one."""
        name = name or self.file.default_experiment
        if name not in self.file.experiments:
            close = difflib.get_close_matches(name, self.names, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(
                f"{self.path}: unknown experiment {name!r}; {hint}known: {', '.join(self.names)}"
            )
        return self._resolve(name, deep_merge(self.overrides, overrides or {}))

    def _resolve(self, name: str, overrides: dict[str, Any]) -> TrainConfig:
        check_keys(overrides, TrainConfig, f"{self.path} (command-line override)")
        exp = self.file.experiments[name]
        where = layered_where(self.path, overrides, exp, f"experiments.{name}", "defaults")
        return validate_train_config(self.merged(name, overrides), where)

    def merged(self, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
        """The unvalidated mapping a known experiment resolves to: defaults, the experiment, the
        environment, then `overrides`, merged in that order."""
        merged = deep_merge({"name": name}, self.file.defaults)
        for layer in (self.file.experiments[name], env_overrides(), overrides):
            merged = deep_merge(merged, layer)
        return merged


def layered_where(
    file: Path | str, overrides: dict[str, Any], base: dict[str, Any], label: str, fallback: str
) -> Callable[[str], str]:
    """For messages about a training config: `where(dotted path)` names the layer that set the
    key, highest first: the command line, the environment, `base` (as `label`), else `fallback`."""
    over, from_env, from_base = flatten(overrides), _env_where(False), flatten(base)

    def where(path: str) -> str:
        if path in over:
            return f"{file} (command-line override)"
        if path in from_env:
            return f"{file} (environment {from_env[path]})"
        return f"{file} ({label if path in from_base else fallback})"

    return where


def validate_train_config(data: dict[str, Any], where_of) -> TrainConfig:
    """Validate a full, merged mapping into a `TrainConfig`, or raise a one-line `UserError`.

    Beyond the schema, the paths it names are checked against the disk (`check_paths`)."""
    try:
        cfg = TrainConfig.model_validate(data)
    except ValidationError as e:
        raise UserError(validation_message(e, where_of)) from None
    check_paths(cfg, where_of)
    return cfg


def _local_path(uri: str) -> tuple[Path, bool] | None:
    """(path, is_file) for a store on this disk: a SQLite file, or a folder (a plain path or
    `file:` URI); None for a server or an in-memory database."""
    if uri.startswith("sqlite:///"):
        rest = uri.removeprefix("sqlite:///").split("?", 1)[0]
        return (Path(rest), True) if rest and rest != ":memory:" else None
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://")), False
    if uri.startswith("file:"):
        return Path(uri.removeprefix("file:")), False
    if "://" not in uri and uri.split(":", 1)[0] not in TRACKING_SCHEMES_ALSO:  # a plain path
        return Path(uri), False
    return None


def _blocked_by(path: Path, want_file: bool) -> str | None:
    """Why `path` cannot be created or used, or None: an ancestor that is a regular file, or
    the path itself the wrong kind (a folder where a file goes, or a file where a folder goes)."""
    if path.exists():
        if want_file and path.is_dir():
            return f"{path} is a folder, not a file"
        if not want_file and not path.is_dir():
            return f"{path} is a file, not a folder"
        return None
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else f"{parent} is a file, not a folder"
    return None


def check_paths(cfg: TrainConfig, where_of) -> None:
    """Refuse a tracking store, artifact folder or data root that lies inside a regular file
    (or is the wrong kind of thing), now, before any store is opened or anything is written."""
    t = cfg.tracking
    checks = [("data.root", cfg.data.root, (Path(cfg.data.root), False))]
    if t.enabled:
        checks.append(("tracking.uri", masked(t.uri), _local_path(t.uri)))
        if "://" not in t.artifact_root or t.artifact_root.startswith("file:"):
            checks.append(("tracking.artifact_root", t.artifact_root, _local_path(t.artifact_root)))
    for key, shown, local in checks:
        why = _blocked_by(*local) if local else None
        if why:
            raise UserError(f"{where_of(key)}: key '{key}' = {_fmt(shown)} is invalid: {why}")


CONFIG_FILE_KEYS = ("train", "provenance", "searched")


def load_config_file(
    path: Path | str, overrides: dict[str, Any] | None = None
) -> tuple[TrainConfig, dict[str, Any]]:
    """A standalone config such as best_config.yaml: `train:` is a whole `TrainConfig`.

    Returns:
        The validated config (with overrides applied) and the file's `provenance` mapping.
    """
    path = Path(path)
    raw = read_yaml(path)
    for key in raw:
        if key not in CONFIG_FILE_KEYS:
            raise UserError(f"{path}: unknown key '{key}'; expected {', '.join(CONFIG_FILE_KEYS)}")
    if not isinstance(raw.get("train"), dict):
        raise UserError(f"{path}: expected a 'train:' mapping holding the whole training config")
    check_keys(raw["train"], TrainConfig, str(path), "train.")
    check_keys(overrides or {}, TrainConfig, f"{path} (command-line override)")
    merged = deep_merge(deep_merge(raw["train"], env_overrides()), overrides or {})
    cfg = validate_train_config(merged, layered_where(path, overrides or {}, {}, "", "train"))
    provenance = raw.get("provenance") or {}
    return cfg, provenance if isinstance(provenance, dict) else {}
