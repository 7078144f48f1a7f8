"""Source type name (``source.type`` in the config) → connector class.

Built-in connectors are imported lazily, so a connector's optional dependency
(``ldap3`` and the like) is only needed when a config uses it. Plug-ins call
:func:`register`.
"""

from __future__ import annotations

import difflib
import importlib

from connectors.base import Connector, ConnectorClass
from orgsync.config import SourceConfig
from orgsync.errors import ConfigError

# type name -> "module:Class", imported on first use
_BUILTIN: dict[str, str] = {
    "csv": "connectors.csvfile:CsvConnector",
    "hris": "connectors.hris:HrisConnector",
    "ldap": "connectors.ldap:LdapConnector",
    "xlsx": "connectors.xlsx:XlsxConnector",
}
_registered: dict[str, type[ConnectorClass]] = {}


def register(type_name: str, cls: type[ConnectorClass]) -> None:
    """Make ``cls`` the connector for ``source.type: <type_name>`` (replacing any other)."""
    _registered[type_name] = cls


def known_types() -> list[str]:
    """Every type name a config may use, sorted."""
    return sorted({*_BUILTIN, *_registered})


def connector_class(type_name: str, *, file: str = "<config>") -> type[ConnectorClass]:
    """The class registered for ``type_name``; ConfigError naming the known types if none."""
    if type_name in _registered:
        return _registered[type_name]
    target = _BUILTIN.get(type_name)
    if target is None:
        known = known_types()
        close = difflib.get_close_matches(type_name, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"unknown source type '{type_name}'",
            file=file,
            key="source.type",
            remedy=f"{hint}known types: {', '.join(known)}",
        )
    module_name, _, class_name = target.partition(":")
    cls: type[ConnectorClass] = getattr(importlib.import_module(module_name), class_name)
    _registered[type_name] = cls
    return cls


def build_connector(source: SourceConfig) -> Connector:
    """Build the connector the ``source`` section asks for (options validated by the class)."""
    cls = connector_class(source.type, file=source.file)
    return cls.from_config(source.options, base_dir=source.base_dir, file=source.file)
