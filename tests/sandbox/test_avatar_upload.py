"""Avatar pictures over a real socket: FeishuClient.upload_avatar's multipart upload
(``POST im/v1/images``, image_type avatar) answers an image_key a user's avatar_key takes;
the tenant's codes for an empty, unknown-format or bot-less upload and for a key it never
issued (feishu-api-more.md §7)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orgsync.errors import FeishuError
from orgsync.feishu import FeishuClient
from orgsync.sandbox import SandboxServer
from tests.sandbox_run import config

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def test_an_uploaded_avatar_is_a_users_avatar_key(sandbox: SandboxServer, tmp_path: Path) -> None:
    cfg = config(sandbox, tmp_path, tmp_path / "l.db")

    async def go() -> tuple[str, list[int]]:
        async with FeishuClient(cfg.feishu) as client:
            key = await client.upload_avatar(PNG)
            await client.create_user({"user_id": "E1", "name": "张伟", "mobile": "+8613800000001",
                                      "department_ids": ["0"], "employee_type": 1,
                                      "avatar_key": key})
            codes = []
            for bad in (b"", b"not a picture"):
                with pytest.raises(FeishuError) as refused:
                    await client.upload_avatar(bad)
                codes.append(refused.value.code)
            with pytest.raises(FeishuError) as refused:
                await client.patch_user("E1", {"avatar_key": "img_v3_never_uploaded"})
            codes.append(refused.value.code)
            sandbox.configure(bot_enabled=False)
            with pytest.raises(FeishuError) as refused:
                await client.upload_avatar(PNG)
            codes.append(refused.value.code)
            return key, codes

    key, codes = asyncio.run(go())
    assert key.startswith("img_v3_")
    assert sandbox.tenant.find_user_any("E1").avatar_key == key
    assert codes == [234010, 234011, 41036, 234007]
    uploads = [r for r in sandbox.requests() if r["path"] == "/open-apis/im/v1/images"]
    assert uploads[0]["body"] == {"image_type": "avatar", "image": f"<{len(PNG)} bytes>"}
