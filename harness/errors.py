"""User-facing errors: one line, exit code 2, no traceback (see `harness.cli.main`)."""


class UserError(Exception):
    """Something the user typed or provided is wrong; the message says what and how to fix it."""

    exit_code = 2


class WorkersFailed(UserError):
    """Worker processes ended with errors before the study had its trials (their output says
    why); running the same command again resumes the study."""

    exit_code = 1


def run_reporting_errors(action, *args) -> int:
    """Run a command's action; a `UserError` becomes one line on stderr and its exit code (2),
    Ctrl-C becomes "interrupted" and 130. Shared by every entry point."""
    import sys

    try:
        action(*args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
