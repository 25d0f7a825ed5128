"""Store URLs (Optuna storage, MLflow tracking) as the user may see them: passwords never shown.

Every URL that is printed, logged as an MLflow param or tag, written to an artifact or kept in
the study goes through `masked`; error text that may quote a URL goes through `scrub`.
"""

from urllib.parse import quote

from sqlalchemy.engine import make_url


def with_driver(url: str) -> str:
    """The URL SQLAlchemy should open: a bare `postgresql://` (or `postgres://`) names the
    psycopg2 driver this project installs, because SQLAlchemy 2.1 took psycopg 3 as the default
    for it. Any other URL (and one that names its driver) is returned unchanged."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url.removeprefix(scheme)
    return url


def password(url: str) -> str | None:
    """The URL's password (decoded), or None when it has none or is not a URL."""
    try:
        return make_url(url).password
    except Exception:  # not a URL SQLAlchemy can parse (e.g. 'databricks', a bare path)
        return None


def masked(url: str) -> str:
    """The URL with any password replaced by ***, for logs, tags and artifacts.

    Args:
        url: a database URL (sqlite, postgresql, ...) or an http(s) URL.
    Returns:
        The same URL, `user:***@host` where it carried a password; unchanged otherwise.
    """
    if password(url) is None:
        return url
    return make_url(url).render_as_string(hide_password=True)


def has_masked_password(url: str) -> bool:
    """True for a URL whose password is the *** that `masked` writes (e.g. from an export)."""
    return password(url) == "***"


def scrub(text: str, *urls: str | None) -> str:
    """`text` with every password of `urls` (raw or percent-encoded) replaced by ***."""
    for url in urls:
        secret = password(url) if url else None
        if secret:
            for form in {secret, quote(secret, safe="")}:
                text = text.replace(form, "***")
    return text
