"""``type: hris``: HR systems over JSON REST (generic, plus SCIM 2.0 and BambooHR presets)."""

from __future__ import annotations

from connectors.hris.connector import HrisConnector

__all__ = ["HrisConnector"]
