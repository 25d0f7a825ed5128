"""Findings: re-run S7's claims over several seeds and decide each from the logged runs.

`spec` validates the `findings:` section, `plan` turns it into one training config per setting and
seed, `execute` trains what MLflow does not hold yet, `store` reads the runs back, `verdicts`
decides each claim (statistics from `harness.stats`), `tuned` runs the lr-by-batch grid, and `figures` and `report` write `reports/findings.md`.
The entry point is `python -m cli.findings` (`cli.findings.main`).
"""
