"""Avatar pictures (orgsync.avatars): loaded from a file or fetched from a real local HTTP
server without credentials, checked as Feishu would, and uploaded to the sandbox once per
content (the ledger remembers the key)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orgsync.avatars import LIMIT, PictureError, image_key, load
from orgsync.feishu import FeishuClient
from orgsync.ledger import Ledger
from orgsync.sandbox import SandboxServer
from tests.sandbox_run import config

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
_BODIES = {"/a.png": PNG, "/big.png": PNG + bytes(LIMIT), "/text": b"hello"}


class _Pictures(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []  # noqa: RUF012 - the requests' headers, for the test

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/a.png")
            self.end_headers()
            return
        body = _BODIES.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(name="pictures")
def _pictures() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pictures)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_a_file_is_read_relative_to_the_source_and_checked(tmp_path: Path) -> None:
    (tmp_path / "me.png").write_bytes(PNG)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"hello")
    assert asyncio.run(load("me.png", tmp_path)).data == PNG
    for location, reason in (("empty.png", "avatar empty.png is empty"),
                             ("notes.txt", "avatar notes.txt is not a JPG, PNG"),
                             ("gone.png", "avatar gone.png cannot be read"),
                             ("ftp://x/a.png", r"only http\(s\) URLs and file paths")):
        with pytest.raises(PictureError, match=reason):
            asyncio.run(load(location, tmp_path))


def test_a_url_is_fetched_without_credentials_and_capped(pictures: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # never used: trust_env is off
    _Pictures.seen.clear()
    assert asyncio.run(load(f"{pictures}/a.png", tmp_path)).data == PNG
    assert not {"authorization", "cookie", "proxy-authorization"} & {
        h.lower() for h in _Pictures.seen[0]}
    for path, reason in (("/big.png", "is larger than 10 MB"), ("/moved", "answered HTTP 302"),
                         ("/none", "answered HTTP 404"), ("/text", "is not a JPG")):
        with pytest.raises(PictureError, match=reason):
            asyncio.run(load(f"{pictures}{path}", tmp_path))


def test_one_content_is_uploaded_once(sandbox: SandboxServer, tmp_path: Path) -> None:
    cfg = config(sandbox, tmp_path, tmp_path / "l.db")
    (tmp_path / "me.png").write_bytes(PNG)
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")

    async def go() -> list[str]:
        async with FeishuClient(cfg.feishu) as client:
            picture = await load("me.png", tmp_path)
            return [await image_key(picture, client, ledger) for _ in range(2)]

    try:
        keys = asyncio.run(go())
        again = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
        try:
            async def later() -> str:
                async with FeishuClient(cfg.feishu) as client:
                    return await image_key(await load("me.png", tmp_path), client, again)
            keys.append(asyncio.run(later()))
        finally:
            again.close()
    finally:
        ledger.close()
    assert keys[0].startswith("img_v3_")
    assert keys == [keys[0]] * 3
    assert [r["path"] for r in sandbox.requests()].count("/open-apis/im/v1/images") == 1
