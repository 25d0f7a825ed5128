"""Findings: re-run the seed's claims over several seeds and decide each from the logged runs.

`spec` validates the `findings:` section, `plan` turns it into one training config per setting and
seed, `execute` trains what MLflow does not hold yet, `store` reads the runs back, `stats` and
`verdicts` decide each claim, and `figures` and `report` write `reports/findings.md`.
The entry point is `python -m findings` (`findings.cli.main`).
"""
