"""Whether Feishu can be used at all: reachable, and accepting the app's credentials.

One home for the words: a run that meets either failure stops with
:class:`~orgsync.errors.FeishuUnusable` (exit 9), and ``orgsync doctor`` reports the
same failure, in the same words, as its ``reachable`` or ``credentials`` check.

Credential codes of the token call (feishu-api-more.md §1.10): 10003 invalid parameter
(an unknown app_id), 10014 app unauthorized (a disabled app; also the common real-world
answer to a wrong secret), 10015 wrong app secret, 20002 app_id and app_secret do not
match. The HTTP status they come with is not documented; only the code is read.
"""

from __future__ import annotations

from orgsync.errors import FeishuError, FeishuUnusable
from orgsync.feishu.endpoints import TENANT_TOKEN
from orgsync.feishu.retry import NO_ENVELOPE
from orgsync.urls import mask_url

REACHABLE = "reachable"
CREDENTIALS = "credentials"

_CONSOLE = "the developer console (Credentials & Basic Info)"
CREDENTIAL_CODES: dict[int, tuple[str, str]] = {
    10003: ("Feishu does not know this app (10003 invalid parameter)",
            f"set feishu.app_id to the App ID (cli_...) shown in {_CONSOLE}"),
    10014: ("Feishu refuses the app (10014 app unauthorized: the app is disabled, "
            "or its secret is wrong)",
            f"check that the app is enabled and feishu.app_secret matches {_CONSOLE}"),
    10015: ("Feishu refuses the app secret (10015 wrong app secret)",
            f"set feishu.app_secret to the current App Secret from {_CONSOLE} "
            "(resetting it there invalidates the old one)"),
    20002: ("Feishu says app_id and app_secret do not match (20002)",
            f"take feishu.app_id and feishu.app_secret from the same app in {_CONSOLE}"),
}


def unreachable(error: FeishuError, origin: str) -> FeishuUnusable:
    """The stop for a call that got no answer at all after its retries."""
    return FeishuUnusable(
        REACHABLE, f"Feishu at {mask_url(origin)} cannot be reached: {error.msg}",
        "check feishu.base_url, DNS, the proxy (HTTPS_PROXY) and the firewall; "
        "'orgsync doctor' checks each", code=error.code)


def refused(error: FeishuError) -> FeishuUnusable:
    """The stop for a token call that refused the credentials."""
    detail, remedy = CREDENTIAL_CODES[error.code]
    return FeishuUnusable(CREDENTIALS, detail, remedy, code=error.code)


def unusable(error: FeishuError, origin: str, *, answered: bool = False) -> FeishuUnusable | None:
    """The stop ``error`` (a call's final error) means, or None when only that call failed.

    ``answered`` says an earlier attempt of the same call got an HTTP response: Feishu is
    then reachable, and a last attempt that lost its connection fails only that call.
    """
    if error.code == NO_ENVELOPE and error.http_status == 0 and not answered:
        return unreachable(error, origin)
    if error.endpoint == TENANT_TOKEN.key and error.code in CREDENTIAL_CODES:
        return refused(error)
    return None
