"""Store URLs (Optuna storage, MLflow tracking) as the user may see them: passwords never shown.

One scrubbing function, `scrub_text`, masks credentials in any URL-like text inside a string,
whether or not the URL parses: everything that is printed, logged as an MLflow param or tag,
written to an artifact or kept in the study passes through it (library exception text included).
`masked(url)` and `scrub(text, *urls)` are the same scrubber, kept for their callers.
"""

import re
from urllib.parse import quote, unquote

from sqlalchemy.engine import make_url

MASK = "***"

# `scheme://userinfo@`: the userinfo runs to the LAST `@` before whitespace or a quote, so a
# password holding an unencoded `@` (or `/`, `:`, `[`) is masked whole; a URL that does not parse
# (a bad port such as `:5432x`, an unclosed `[`) is masked all the same, because nothing after the
# `@` is looked at. Over-masking a path that holds an `@` is the price, and a safe one.
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]{0,31}://)(?P<info>[^\s'\"<>`@]*(?:@[^\s'\"<>`@]*)*)@"
)
# credentials passed as query parameters (`?password=...`, libpq's and many SDKs' form)
_QUERY = re.compile(
    r"(?P<key>(?:(?<=[?&;,(\s])|^)(?:password|passwd|pwd|pass|secret|token|access_token|api_key|apikey)=)"
    r"(?P<value>[^&;#\s'\"<>`]*)",
    re.IGNORECASE,
)


def _mask_userinfo(m: re.Match) -> str:
    info = m["info"]
    if not info:
        return m.group(0)
    user, sep, _ = info.partition(":")
    # `user:password@` keeps the user name (it says which account); a user part alone is a
    # token (`https://TOKEN@host`), so it is masked whole. A "user" holding `/` means the match
    # swallowed more than a user name: mask it all.
    if sep and user and "/" not in user and user != MASK:
        return f"{m['scheme']}{user}:{MASK}@"
    if info in (MASK, f":{MASK}") or info.endswith(f":{MASK}"):
        return m.group(0)  # already masked
    return f"{m['scheme']}{MASK}@"


def scrub_text(text: str) -> str:
    """`text` with the credentials of every URL-like substring replaced by ***.

    Masks `scheme://user:PASSWORD@...` (keeping the user), `scheme://TOKEN@...` (a user part
    alone is a credential), passwords holding `@`, percent-encoded or not, URLs that do not parse,
    and `password=` / `token=` query parameters.

    Args:
        text: any text that may quote a URL: a message, a library's exception text, a tag.
    Returns:
        The same text with every credential replaced by `***`.
    """
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(_mask_userinfo, text)
    return _QUERY.sub(lambda m: m["key"] + (MASK if m["value"] else ""), text)


def with_driver(url: str) -> str:
    """The URL SQLAlchemy should open: a bare `postgresql://` (or `postgres://`) names the
    psycopg2 driver this project installs, because SQLAlchemy 2.1 took psycopg 3 as the default
    for it. Any other URL (and one that names its driver) is returned unchanged."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url.removeprefix(scheme)
    return url


def password(url: str) -> str | None:
    """The URL's password (decoded), or None when it has none or is not a URL SQLAlchemy parses."""
    try:
        return make_url(url).password
    except Exception:  # not a URL SQLAlchemy can parse (e.g. 'databricks', a bare path)
        return None


def _secrets(url: str) -> set[str]:
    """Every form a credential of `url` may take in text: the password (or a user-only token)
    as written, percent-decoded and percent-encoded; found without parsing the URL."""
    m = _USERINFO.search(url)
    found = set()
    if m:
        user, sep, pw = m["info"].partition(":")
        found.add(pw if sep else user)
    if pw := password(url):
        found.add(pw)
    # a password holding an unencoded `@` is split there by other parsers, which then quote a
    # piece of it as the host name: every piece is a secret too
    found |= {piece for s in found for piece in s.split("@")}
    forms = set()
    for s in found - {"", MASK}:
        forms |= {s, unquote(s), quote(unquote(s), safe="")}
    return {f for f in forms if len(f) >= 3}  # a 1-2 character "secret" would garble the text


def masked(url: str) -> str:
    """The URL with any credential replaced by ***, for logs, tags and artifacts.

    Args:
        url: a database URL (sqlite, postgresql, ...) or an http(s) URL, parsable or not.
    Returns:
        The same URL, `user:***@host` where it carried a password and `***@host` where it
        carried a user part alone; unchanged otherwise. Never the password itself.
    """
    return scrub(url, url)


def has_masked_password(url: str) -> bool:
    """True for a URL whose credential is the *** that `masked` writes (e.g. from an export)."""
    m = _USERINFO.search(url)
    if m and (m["info"] == MASK or m["info"].endswith(":" + MASK)):
        return True
    return any(q["value"] == MASK for q in _QUERY.finditer(url))


def scrub(text: str, *urls: str | None) -> str:
    """`text` through `scrub_text`, and every credential of `urls` (raw or percent-encoded)
    replaced by *** wherever else it appears (a library may quote a password on its own)."""
    text = scrub_text(text)
    for url in urls:
        for secret in sorted(_secrets(url) if url else (), key=len, reverse=True):
            text = text.replace(secret, MASK)
    return text
