"""The ``avatar`` column over a real socket: pictures uploaded once per content, people
created with the key, an unchanged picture costs no call, a changed one is one upload and
the patches; a bad picture holds its person with the reason; ``create_only`` keeps it.

A create-only avatar whose picture changed is still uploaded (pictures are resolved
before the plan knows who it writes): one call, no write to anyone."""

from __future__ import annotations

from pathlib import Path

from orgsync.ledger import Ledger
from orgsync.sandbox import SandboxServer
from tests.sandbox_run import config, run
from tests.test_profile_sync import writes

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
GIF = b"GIF89a" + bytes(32)
UPLOAD = "/open-apis/im/v1/images"


def _source(src: Path, pictures: dict[str, bytes]) -> None:
    src.mkdir(exist_ok=True)
    for name, data in pictures.items():
        (src / name).write_bytes(data)
    (src / "departments.csv").write_text("department_id,name,parent_id\nD1,研发部,\n", "utf-8")
    (src / "employees.csv").write_text(
        "employee_id,name,email,mobile,department_ids,avatar\n"
        "E1,张伟,e1@example.com,+8613800000001,D1,me.png\n"
        "E2,李娜,e2@example.com,+8613800000002,D1,me.png\n"
        "E3,王芳,e3@example.com,+8613800000003,D1,notes.txt\n", "utf-8")


def _avatars(sb: SandboxServer) -> dict[str, str]:
    return {u.user_id: u.avatar_key for u in sb.tenant.users.values()}


def _uploads(sb: SandboxServer, since: int = 0) -> int:
    return [r["path"] for r in sb.requests()[since:]].count(UPLOAD)


def test_avatars_are_uploaded_once_per_content(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.configure(rate_scale=10.0)
    src = tmp_path / "src"
    _source(src, {"me.png": PNG, "notes.txt": b"hello"})
    cfg = config(sandbox, src, tmp_path / "l.db")
    ledger = Ledger(cfg.ledger.url)
    try:
        out = run(cfg, ledger)
        assert [(i.key, i.reason) for i in out.plan.held() if i.field == "avatar"] == [
            ("E3", "avatar notes.txt is not a JPG, PNG, WEBP, GIF, BMP, ICO, TIFF or HEIC "
                   "picture: fix the picture or the column; the person is left as they are")]
        first = _avatars(sandbox)
        assert set(first) == {"E1", "E2"}
        assert first["E1"] == first["E2"] != ""
        assert _uploads(sandbox) == 1

        before = len(sandbox.requests())
        assert run(cfg, ledger).plan.empty
        assert writes(sandbox, before) == []

        (src / "me.png").write_bytes(GIF)
        before = len(sandbox.requests())
        changed = run(cfg, ledger)
        assert sorted(op.key for op in changed.plan.operations) == ["E1", "E2"]
        assert _uploads(sandbox, before) == 1
        assert _avatars(sandbox)["E1"] == _avatars(sandbox)["E2"] not in ("", first["E1"])
    finally:
        ledger.close()


def test_a_create_only_avatar_is_set_once(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.configure(rate_scale=10.0)
    src = tmp_path / "src"
    _source(src, {"me.png": PNG, "notes.txt": PNG})
    cfg = config(sandbox, src, tmp_path / "l.db",
                 sync={"fields": ["avatar"], "create_only": ["avatar"]})
    ledger = Ledger(cfg.ledger.url)
    try:
        assert run(cfg, ledger).exit_code == 0
        first = _avatars(sandbox)
        assert set(first) == {"E1", "E2", "E3"}
        (src / "me.png").write_bytes(GIF)
        before = len(sandbox.requests())
        assert run(cfg, ledger).plan.empty
        # the new picture is uploaded (before the plan), but nobody's avatar is written
        assert [w["path"] for w in writes(sandbox, before)] == [UPLOAD]
        assert _avatars(sandbox) == first
    finally:
        ledger.close()
