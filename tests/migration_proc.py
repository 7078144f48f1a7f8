"""Open ledgers in processes that SIGKILL themselves at their Nth SQL statement.

``python -m tests.migration_proc N URL [N URL …]`` imports the ledger and Alembic
once, then for each pair forks a child that counts the SQL statements it sends
(a ``before_cursor_execute`` listener on every engine, installed here and never
by orgsync itself), SIGKILLs itself just before statement ``N`` (``0``: never)
and opens ``Ledger(URL)`` — the start that migrates it. The children run one at a
time. Prints one JSON line: for each pair, how many statements the child sent
before it finished, or ``null`` when it was killed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

# imported before the fork, so that each child starts fast
import alembic.command
import alembic.runtime.migration
import alembic.script  # noqa: F401
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite  # noqa: F401
from sqlalchemy.engine import Engine

from orgsync.ledger import Ledger


def _child(kill_at: int, url: str, out: int) -> None:
    sent = 0

    def count(*_args: Any) -> None:
        nonlocal sent
        sent += 1
        if sent == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(Engine, "before_cursor_execute", count)
    Ledger(url).close()
    os.write(out, str(sent).encode())


def run(pairs: list[tuple[int, str]]) -> list[int | None]:
    """Run each ``(N, url)`` in its own child; the statement counts of those not killed."""
    results: list[int | None] = []
    for kill_at, url in pairs:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            code = 0
            try:
                _child(kill_at, url, write)
            except BaseException as exc:  # reported through the exit code
                print(f"migration_proc: {url}: {exc!r}", file=sys.stderr)
                code = 1
            os._exit(code)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            sent = pipe.read()
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            results.append(None)
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            results.append(int(sent))
        else:
            raise SystemExit(f"the start of {url} (kill at {kill_at}) failed: status {status}")
    return results


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(run([(int(args[i]), args[i + 1]) for i in range(0, len(args), 2)])))
