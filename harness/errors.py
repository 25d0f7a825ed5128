"""User-facing errors: one line, exit code 2, no traceback (see `harness.cli.main`)."""


class UserError(Exception):
    """Something the user typed or provided is wrong; the message says what and how to fix it."""

    exit_code = 2


class WorkersFailed(UserError):
    """Worker processes ended with errors before the study had its trials (their output says
    why); running the same command again resumes the study."""

    exit_code = 1
