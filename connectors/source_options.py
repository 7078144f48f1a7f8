"""Source options several connectors share.

A connector's ``preset`` is plain config the user's options are merged onto
(:func:`with_preset`); ``mapping.<table>`` holds the field rules of
:mod:`connectors.mapping` (:func:`read_mapping`); ``mobile_region`` is the
region of mobiles written without a country code (:func:`mobile_region`). Every
key is read with :class:`orgsync.options.Section`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.mapping import FieldRule, parse_rules
from orgsync.errors import ConfigError
from orgsync.options import Section
from orgsync.source import EntityKind


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base`` (a preset): mappings merge key by key, the rest replaces.

    An explicit ``None`` in ``override`` is kept, so a user can remove a preset's
    mapping rule with ``field: null``.
    """
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def with_preset(options: Mapping[str, Any], presets: Mapping[str, Mapping[str, Any]], *,
                kind: str, file: str) -> Mapping[str, Any]:
    """``options`` merged onto the preset they name (``source.preset``), if any.

    An unknown preset is a ConfigError naming ``source.preset`` and the known ones.
    """
    name = options.get("preset")
    if name is None:
        return options
    if name not in presets:
        raise ConfigError(f"unknown {kind} preset {name!r}", file=file, key="source.preset",
                          remedy=f"use one of {', '.join(presets)}")
    return merge_preset(presets[name], options)


def merge_preset(preset: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The user's ``options`` on top of a connector ``preset`` (:func:`deep_merge`).

    A ``departments`` section whose ``from`` differs from the preset's replaces
    the preset's section whole: the other style's options would not apply.
    """
    merged = deep_merge(preset, options)
    mine, theirs = options.get("departments"), preset.get("departments")
    if (isinstance(mine, Mapping) and isinstance(theirs, Mapping) and "from" in mine
            and mine["from"] != theirs.get("from")):
        merged["departments"] = dict(mine)
    return merged


def read_mapping(opts: Section, entity: EntityKind, table: str) -> dict[str, FieldRule]:
    """The rule table at ``mapping.<table>`` (presets are merged into ``opts`` beforehand)."""
    mapping = opts.section("mapping")
    spec = mapping.raw(table)
    mapping.rest()  # sibling tables are read by their own calls
    return parse_rules(spec, entity=entity, file=opts.file, key=mapping.key(table))


def mobile_region(opts: Section) -> str:
    """``mobile_region``: the two-letter region of mobiles written without ``+country``."""
    region = opts.string("mobile_region", "CN")
    if len(region) != 2 or not region.isalpha():
        raise opts.error("mobile_region", f"'{region}' is not a two-letter region code",
                         "e.g. CN, US, SG")
    return region.upper()
