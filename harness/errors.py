"""User-facing errors: one line, exit code 2, no traceback (see `harness.cli.main`)."""


class UserError(Exception):
    """Something the user typed or provided is wrong; the message says what and how to fix it."""

    exit_code = 2
