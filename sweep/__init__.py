"""The sweep: an Optuna study over the seed's knobs, each trial a tracked training run.

Search space, sampler and pruning live only here; trials call the plain trainer and log through
`tracking/`. Entry points: `run_sweep` (make sweep), `export_best` (make export). Modules:
`study` (the sweep), `loop` (one process's trials: Optuna's loop and callbacks), `workers`
(several processes), `storage` (where the study lives), `recovery` (what dead workers leave
behind), `objective`, `confirm` (the top trials re-run over paired seeds), `spec` (the `sweep:` section
and its validation), `space`, `pruning`,
`summary`, `export`.
"""

from sweep.export import export_best
from sweep.study import run_sweep

__all__ = ["export_best", "run_sweep"]
