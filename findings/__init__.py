"""Findings: re-run S7's claims over several seeds and decide each from the logged runs.

`claims` holds the claims, one Python function each, and the settings they compare; `spec`
validates the `findings:` section (seeds, overrides, the lr-by-batch study), `plan` turns the
claims' settings into one training config per setting and seed, `execute` trains what MLflow does
not hold yet, `store` reads the runs back, `verdicts` holds the comparisons a claim is decided by
(statistics from `harness.stats`), `tuned` runs the lr-by-batch grid, and `figures` and `report`
write `reports/findings.md`. The entry point is `python -m cli.findings` (`cli.findings.main`).
"""
