"""The full-resync read in a process of its own, so that its peak memory is its own.

``python -m orgsync.bench.resync_child SETTINGS`` reads the directory with
:func:`orgsync.feishu.reader.read_directory` through a client built from the JSON file
``SETTINGS`` (:class:`orgsync.feishu.FeishuSettings` fields; the file keeps the sandbox's
secret off the command line) and prints one JSON line: the read's seconds, the
departments and users read, the client's stats.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from orgsync.feishu import FeishuClient, FeishuSettings
from orgsync.feishu.reader import read_directory


async def _read(settings: FeishuSettings) -> dict[str, Any]:
    async with FeishuClient(settings) as client:
        start = time.perf_counter()
        state = await read_directory(client)
        return {"seconds": time.perf_counter() - start, "departments": len(state.departments),
                "users": len(state.users), "client_stats": client.stats.as_dict()}


def main(argv: list[str] | None = None) -> None:
    """Read, print the JSON line."""
    from orgsync import logs

    logs.configure(level="warning", stream=sys.stderr)  # the JSON line alone on stdout
    args = sys.argv[1:] if argv is None else argv
    settings = FeishuSettings(**json.loads(Path(args[0]).read_text(encoding="utf-8")))
    print(json.dumps(asyncio.run(_read(settings))))


if __name__ == "__main__":
    main()
