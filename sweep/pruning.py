"""Pruning when accuracy lags: Optuna's pruners by name, combined so that any one may prune."""

import optuna
from optuna.pruners import BasePruner

from sweep.spec import PrunerSpec


class AnyPruner(BasePruner):
    """Prune when any of the wrapped pruners would (e.g. the median rule or an accuracy floor)."""

    def __init__(self, pruners: list[BasePruner]):
        self.pruners = pruners

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return any(p.prune(study, trial) for p in self.pruners)


def build_pruner(specs: list[PrunerSpec]) -> BasePruner:
    """One pruner for the study: Nop when none is configured, the pruner itself when one is."""
    pruners = [s.build() for s in specs]
    if not pruners:
        return optuna.pruners.NopPruner()
    return pruners[0] if len(pruners) == 1 else AnyPruner(pruners)
