"""The command line, the top floor: it alone parses arguments and prints errors.

`python -m cli` (`cli.main`): data, train, sweep, confirm, export, ui, dashboard, bench.
`python -m cli.findings`: the seed's claims over seeds, `reports/findings.md`.
Below it, each floor imports only the floors under it: `findings` <- `sweep` <- `tracking` <-
`harness` (the core: config, data, trainer, statistics) <- `model_zoo` (tests/test_layers.py).
"""
