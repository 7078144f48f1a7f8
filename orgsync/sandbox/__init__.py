"""A faithful local Feishu (contact v3, IM, tenant tokens) for demos, tests and benchmarks.

``SandboxServer`` runs it on a real socket in the background; ``serve`` runs it in the
foreground (``orgsync sandbox``); ``create_app`` gives the bare Starlette app.
"""

from __future__ import annotations

from orgsync.sandbox.app import create_app
from orgsync.sandbox.config import SandboxConfig
from orgsync.sandbox.server import SandboxServer, serve

__all__ = ["SandboxConfig", "SandboxServer", "create_app", "serve"]
