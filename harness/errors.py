"""User-facing errors: a message that says what is wrong and how to fix it, and its exit code.

The command line (`cli.errors`) prints them as one scrubbed line, exit code 2 (1 for a run that
failed), no traceback. A user's value quoted in a message is cut with `cut` where it is quoted.
"""

MAX_VALUE = 300  # characters of a user's value quoted in a message


class UserError(Exception):
    """Something the user typed or provided is wrong; the message says what and how to fix it."""

    exit_code = 2


class WorkersFailed(UserError):
    """Worker processes ended with errors before the study had its trials (their output says
    why); running the same command again resumes the study."""

    exit_code = 1


class RunFailed(UserError):
    """A run started and then failed for a reason the message names (e.g. training diverged);
    the run is recorded as failed. Not a typing mistake, so exit code 1."""

    exit_code = 1


def cut(text: str, limit: int = MAX_VALUE) -> str:
    """`text` cut to `limit` characters, ending in `...` where it was cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
