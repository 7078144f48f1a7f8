"""orgsync's error hierarchy and the process exit codes it maps to.

::

    OrgsyncError (exit 1)
    ├── ConfigError      (exit 3)  bad or missing config: names file, key and remedy
    ├── SourceError      (exit 4)  a connector failed or returned an implausible org; nothing written
    │   └── SourceRefused          the read worked, but a guard refused what it returned
    ├── PlanHeld         (exit 5)  a plan tripped a safety threshold; held until approved by id
    ├── PlanStale        (exit 5 when the new plan is held, else 1)  the plan approved is
    │                              not the plan the source gives now; nothing was applied
    ├── WriterBusy       (exit 7)  another run holds the ledger's writer lock; nothing was done
    ├── Fenced           (exit 1)  this run lost the writer lock; it stopped before its next write
    ├── LedgerError      (exit 8)  the ledger cannot be opened, is damaged, its disk is full,
    │                              or it is inconsistent: the message says which and the remedy
    ├── FeishuUnusable   (exit 9)  Feishu cannot be reached, or it refuses the app's credentials:
    │                              the run stops at once (no operation is worth trying)
    └── FeishuError      (exit 1)  a Feishu API call failed: code, msg, HTTP status, log id, endpoint
        ├── FeishuRetryable        rate limit, 5xx, timeouts, lock conflicts: worth retrying
        └── FeishuTerminal         everything else: retrying the same call cannot help
            └── FeishuCredentials  (exit 3)  the token call refused app_id/app_secret

Exit code 2 is not an error: ``plan --detailed-exitcode`` and ``check`` use it for
"there are changes" (see :data:`EXIT_CHANGES`). Exit code 6 is no exception either:
an apply that ran to the end with failed operations (each journaled with its
reason) returns :data:`EXIT_APPLY_FAILED`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_CONFIG = 3
EXIT_SOURCE = 4
EXIT_HELD = 5
EXIT_APPLY_FAILED = 6
EXIT_BUSY = 7
EXIT_LEDGER = 8
EXIT_FEISHU = 9


class OrgsyncError(Exception):
    """Root of every error orgsync raises on purpose; carries the process exit code."""

    exit_code: int = EXIT_ERROR


class ConfigError(OrgsyncError):
    """The configuration is unusable. The message names the file, the key and the remedy."""

    exit_code = EXIT_CONFIG

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 remedy: str | None = None) -> None:
        self.file = file
        self.key = key
        self.remedy = remedy
        where = ": ".join(p for p in (file, key) if p)
        text = f"{where}: {message}" if where else message
        if remedy:
            text = f"{text} ({remedy})"
        super().__init__(text)


class SourceError(OrgsyncError):
    """The source could not be read, or what it returned must not be trusted.

    Raised before any diff is computed, so a failed read can never look like
    "everyone left".
    """

    exit_code = EXIT_SOURCE


class SourceRefused(SourceError):
    """The source was read, but a guard refused it (an empty org, an implausible shrink)."""


class PlanHeld(OrgsyncError):
    """A plan exceeds a safety threshold and was stored instead of applied."""

    exit_code = EXIT_HELD

    def __init__(self, message: str, *, plan_id: str, reasons: list[str]) -> None:
        self.plan_id = plan_id
        self.reasons = reasons
        super().__init__(message)


class PlanStale(OrgsyncError):
    """``approve`` named a plan, but the source now gives another (``plan_id``): nothing
    was applied, and the new plan is held when it needs approval too (``reasons``)."""

    def __init__(self, message: str, *, plan_id: str, reasons: list[str]) -> None:
        self.plan_id = plan_id
        self.reasons = reasons
        self.exit_code = EXIT_HELD if reasons else EXIT_ERROR
        super().__init__(message)


class WriterBusy(OrgsyncError):
    """Another orgsync run holds the ledger's writer lock (see :mod:`orgsync.writer`).

    Raised before anything is read or written; the message names the holder
    (command, host, pid, since when).
    """

    exit_code = EXIT_BUSY


class Fenced(OrgsyncError):
    """This run no longer holds the ledger's writer lock: it must not write to Feishu.

    Raised by the ledger when it journals a write (the check runs in the same
    transaction); the run stops before that write, and the next writer resumes
    what it left unfinished.
    """


class LedgerError(OrgsyncError):
    """The ledger cannot be opened, migrated, written (disk full) or trusted (damaged)."""

    exit_code = EXIT_LEDGER


class FeishuUnusable(OrgsyncError):
    """Feishu cannot be used at all: it is unreachable (DNS, TLS, connect, no answer)
    or it refuses the app's credentials.

    Not a :class:`FeishuError`: no caller may take it for one call's failure and go
    on to the next call (which would fail the same way after its own retries). The
    client raises it once the first call meets it; a run stops there. ``check`` is
    the name of the ``orgsync doctor`` check that says the same (``reachable`` or
    ``credentials``), ``code`` Feishu's code (``-1`` without an answer).
    """

    exit_code = EXIT_FEISHU

    def __init__(self, check: str, detail: str, remedy: str, *, code: int = -1) -> None:
        self.check = check
        self.detail = detail
        self.remedy = remedy
        self.code = code
        super().__init__(f"{detail}. {remedy}")


class FeishuError(OrgsyncError):
    """A Feishu open-platform call failed.

    ``code`` is Feishu's business code (``-1`` when there was no envelope, e.g. a
    timeout or a dropped connection), ``http_status`` the HTTP status (``0`` when
    there was no response).
    """

    retryable: bool = False

    def __init__(self, code: int, msg: str, *, http_status: int = 0, log_id: str | None = None,
                 endpoint: str = "", retry_after: float | None = None) -> None:
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.log_id = log_id
        self.endpoint = endpoint
        self.retry_after = retry_after
        parts = [f"Feishu error {code}: {msg}"]
        if endpoint:
            parts.append(f"endpoint={endpoint}")
        if http_status:
            parts.append(f"http={http_status}")
        if log_id:
            parts.append(f"log_id={log_id}")
        super().__init__(" ".join(parts))


class FeishuRetryable(FeishuError):
    """Rate limits, 5xx, timeouts, dropped connections and lock conflicts."""

    retryable = True


class FeishuTerminal(FeishuError):
    """A rejection that the same call cannot overcome (validation, permissions, conflicts)."""


class FeishuCredentials(FeishuTerminal):
    """The token call refused the app's credentials (10003, 10014, 10015, 20002).

    A configuration error: nothing can work until the config or the app is fixed, so
    it exits like one; ``remedy`` says what to fix.
    """

    exit_code = EXIT_CONFIG

    def __init__(self, code: int, msg: str, *, remedy: str, http_status: int = 0,
                 log_id: str | None = None, endpoint: str = "") -> None:
        super().__init__(code, msg, http_status=http_status, log_id=log_id, endpoint=endpoint)
        self.remedy = remedy
        self.args = (f"{self.args[0]} ({remedy})",)
