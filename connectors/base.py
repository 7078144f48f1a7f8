"""The one interface every source connector implements.

A connector reads one source (CSV files, an LDAP directory, an HRIS API) and
returns the canonical model. It knows nothing about Feishu, the ledger or the
previous run.

Contract for connector authors:

* ``from_config`` validates its own options and raises
  :class:`~orgsync.errors.ConfigError` with ``key="source.<option>"`` for a bad
  one — before anything is read.
* ``read`` returns the whole org or raises :class:`~orgsync.errors.SourceError`.
  Never a partial org: a missing file, a dropped connection or a missing
  column must abort the run, or the diff would see everyone as a leaver.
* A *row* that cannot be used is not a reason to abort: report it as an
  :class:`~orgsync.source.Issue` (``severity="error"``, ``where`` = the row's
  position) and put its key, when known, into the held sets so that the diff
  leaves it alone. :func:`orgsync.validate.validate` runs afterwards for the
  rules every source shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

from orgsync.source import SourceData


class Connector(Protocol):
    """Reads one source. Knows nothing about Feishu."""

    type_name: ClassVar[str]

    def read(self) -> SourceData:
        """The whole org; raises :class:`~orgsync.errors.SourceError` if it cannot be read."""
        ...


class ConnectorClass(Connector, Protocol):
    """A connector class as the registry sees it: it can build itself from config."""

    @classmethod
    def from_config(cls, options: Mapping[str, Any], *, base_dir: Path, file: str) -> Self:
        """Validate ``options`` (the ``source`` section minus ``type``) and build the connector.

        ``base_dir`` is the config file's directory (relative paths resolve
        against it); ``file`` names the config file in error messages.
        """
        ...
