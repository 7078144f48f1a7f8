"""URLs as orgsync shows them: userinfo and query values masked, wherever a URL is printed.

A URL in a log line, an error message or a stored run error may carry a secret: a
password in its userinfo (``postgresql://orgsync:pw@db/orgsync``), a token as its
userinfo (``https://TOKEN@hr.example.com``) or in its query (``/people?api_key=…``).
:func:`mask_url` hides all three; :func:`mask_urls` does so for every URL inside a
text. Paths, hosts, ports and query parameter *names* stay readable.

The userinfo ends at the *last* ``@`` before the query (RFC 3986: a host never holds
``@``), so an unencoded ``@`` in a password is masked in full. SQLAlchemy reads such
a URL differently (its password stops at the first ``@`` and the rest becomes the
host); :func:`userinfo_is_ambiguous` detects that so the configuration can refuse it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MASK = "***"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# a URL inside free text: a scheme, then anything up to whitespace or a quote, without
# the sentence's trailing punctuation
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,;:)\]]")
_QUERY_VALUE = re.compile(r"([^&;=]*)=[^&;]*")


def mask_url(url: str) -> str:
    """``url`` with its userinfo and every query (and fragment) value replaced by ``***``.

    ``postgresql://orgsync:p@ss@db/o?sslmode=require`` → ``postgresql://orgsync:***@db/o?sslmode=***``;
    a relative ``/people?api_key=abc`` → ``/people?api_key=***``. A user name is kept when
    a password follows it; a lone userinfo (often a token) is masked whole.
    """
    head = ""
    scheme = _SCHEME.match(url)
    if scheme:
        head, url = url[:scheme.end()], url[scheme.end():]
        # an unencoded '/', '?' or '#' in a password would end the authority early: the
        # userinfo runs to the last '@' before the query, or else before the first '/'
        query_at, slash_at = url.find("?"), url.find("/")
        at = url.rfind("@", 0, query_at if query_at >= 0 else len(url))
        if at < 0:
            at = url.rfind("@", 0, slash_at if slash_at >= 0 else len(url))
        if at >= 0:
            user, colon, _ = url[:at].partition(":")
            head += f"{user}:{MASK}@" if colon and "/" not in user else f"{MASK}@"
            url = url[at + 1:]
    rest, hash_, fragment = url.partition("#")
    path, q, query = rest.partition("?")
    masked_query = "&".join(_mask_param(p) for p in query.split("&")) if q else ""
    return f"{head}{path}{q}{masked_query}{hash_}{MASK if fragment else ''}"


def _mask_param(param: str) -> str:
    if not param:
        return param
    name, eq, _ = param.partition("=")
    return f"{name}={MASK}" if eq else MASK


def mask_urls(text: str) -> str:
    """``text`` with every ``scheme://…`` URL in it passed through :func:`mask_url`."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


PERCENT_ENCODE = ("percent-encode the user name and password: @ → %40, : → %3A, / → %2F, "
                  "? → %3F, # → %23, % → %25")


def userinfo_is_ambiguous(url: str) -> bool:
    """True when SQLAlchemy would read ``url``'s user, password or host differently from RFC 3986.

    That happens when the password holds an unencoded ``@``, ``/``, ``?``, ``#`` or
    ``:``: part of the password would go to the server as the host name (and come back
    in the resolver's error). Such a URL must be percent-encoded before use.
    """
    from sqlalchemy.engine import make_url

    if "@" not in url:
        return False
    try:
        theirs = make_url(url)
        ours = urlsplit(url)
        host, password, port = ours.hostname, ours.password, ours.port
    except ValueError:
        return True
    return ((theirs.host or "").lower() != (host or "")
            or (theirs.password or None) != (unquote(password) if password else None)
            or theirs.port != port)
