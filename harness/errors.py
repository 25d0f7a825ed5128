"""User-facing errors: one line, exit code 2, no traceback (see `harness.cli.main`).

Whatever ends a command is printed here, and only after `one_line` has scrubbed it: credentials
masked (`harness.urls.scrub_text`), control characters escaped, length bounded. A user's value
quoted in a message is cut with `cut` where it is quoted.
"""

import sys
import traceback
import unicodedata

from harness.urls import scrub_text

MAX_VALUE = 300  # characters of a user's value quoted in a message
MAX_LINE = 1000  # characters of a whole error line


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


# Libraries whose exceptions report the outside world (a store that refuses, a server that
# fails, a disk that is full), not a bug here: their message is enough, as one scrubbed line.
_WORLD = {"mlflow", "sqlalchemy", "optuna", "psycopg2", "requests", "urllib3", "alembic"}


def cut(text: str, limit: int = MAX_VALUE) -> str:
    """`text` cut to `limit` characters, ending in `...` where it was cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _visible(ch: str) -> str:
    # control and format characters (escape sequences, NUL, line and paragraph separators,
    # bidi overrides) would break the one line or rewrite the terminal: shown escaped instead
    if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
        return ch.encode("unicode_escape").decode("ascii")
    return ch


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """`text` as one printable line: credentials masked, control characters escaped, cut."""
    text = scrub_text(text)
    return cut("".join(_visible(c) for c in text), limit)


def _is_world(e: BaseException) -> bool:
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] in _WORLD


def run_reporting_errors(action, *args) -> int:
    """Run a command's action and return its exit code; shared by every entry point.

    A `UserError` becomes one line on stderr and its exit code (2, or 1 for a run that failed);
    Ctrl-C becomes "interrupted" and 130; a store or disk that fails (an exception from MLflow,
    SQLAlchemy, Optuna, an OSError) one line and 1; anything else (a bug) its traceback and 1.
    Every line is scrubbed of credentials first.
    """
    try:
        action(*args)
    except UserError as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if _is_world(e):
            first = (str(e).strip().splitlines() or [""])[0]
            print(f"error: {one_line(f'{type(e).__name__}: {first}')}", file=sys.stderr)
        else:
            sys.stderr.write(scrub_text("".join(traceback.format_exception(e))))
        return 1
    return 0
