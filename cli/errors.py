"""Errors as the user sees them: one line on stderr, credentials masked, and an exit code.

Whatever ends a command is printed here, and only after `one_line` has scrubbed it: credentials
masked (`harness.urls.scrub_text`), control characters escaped, length bounded.
"""

import argparse
import os
import sys
import traceback
import unicodedata

from harness.errors import UserError, cut
from harness.urls import scrub_text

MAX_LINE = 1000  # characters of a whole error line

# Libraries whose exceptions report the outside world (a store that refuses, a server that
# fails, a disk that is full), not a bug here: their message is enough, as one scrubbed line.
_WORLD = {"mlflow", "sqlalchemy", "optuna", "psycopg2", "requests", "urllib3", "alembic"}


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


# The process's MLflow settings, set by the command line (the process's owner), never by a
# library on import: no telemetry from a sweep, and no "View run at <tracking URI>" line per run
# against a server (noise from many workers, and the URI may carry a password).
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}


def run_reporting_errors(action, *args) -> int:
    """Run a command's action and return its exit code; shared by every entry point.

    Sets `MLFLOW_ENV` first (where the user has not). A `UserError` becomes one line on stderr and its exit code (2, or 1 for a run that failed);
    Ctrl-C becomes "interrupted" and 130; a store or disk that fails (an exception from MLflow,
    SQLAlchemy, Optuna, an OSError) one line and 1; anything else (a bug) its traceback and 1.
    Every line is scrubbed of credentials first.
    """
    for name, value in MLFLOW_ENV.items():
        os.environ.setdefault(name, value)
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


class Parser(argparse.ArgumentParser):
    """argparse with its errors as the project's: one line, exit code 2 (argparse prints the
    usage and then the error, three lines)."""

    def error(self, message: str):
        print(f"error: {one_line(f'{self.prog}: {message}')} (see --help)", file=sys.stderr)
        sys.exit(2)
