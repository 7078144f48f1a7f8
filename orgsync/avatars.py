"""Avatar pictures a source names by file path or URL: loaded, checked, and uploaded to
Feishu once per content (the ledger remembers content hash → ``image_key``).

Facts (feishu-api-more.md §7, ``avatar_key``; ``/document/server-docs/im-v1/image/create``):
a user's ``avatar_key`` is an ``image_key`` from ``POST im/v1/images`` with
``image_type=avatar``: non-empty, at most 10 MB, JPG/PNG/WEBP/GIF/BMP/ICO/TIFF/HEIC.

A URL is fetched with a plain GET: http(s) only, no credentials, cookies or proxy
environment sent, no redirect followed (a redirect is an error the source must fix), the
body read only up to the 10 MB cap. Every problem is a :class:`PictureError` whose text
names the location and the reason, for the record to be held with.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import httpx

from orgsync.source import Issue, SourceData

if TYPE_CHECKING:
    from orgsync.ledger import Ledger

LIMIT: Final = 10 * 1024 * 1024
"""Feishu's size cap for an uploaded image (234006)."""
_TIMEOUT: Final = 10.0  # seconds, per fetch
AVATAR: Final = "avatar"
"""The profile field (and its catalog, :data:`orgsync.feishu.schema.CATALOG_FIELDS`)."""
_KEYS: Final = f"catalog.{AVATAR}"  # ledger meta: sha256 → image_key (catalogs.named reads it)
_MAGIC: Final = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
                 b"\x00\x00\x01\x00", b"II*\x00", b"MM\x00*")


class PictureError(ValueError):
    """A picture that cannot be an avatar: the text says where and why."""


@dataclass(frozen=True, slots=True)
class Picture:
    """A loaded picture: its content and the content's sha256 (hex)."""

    data: bytes
    sha256: str


class UploadAPI(Protocol):
    """The part of :class:`orgsync.feishu.FeishuClient` this module calls."""

    async def upload_avatar(self, image: bytes) -> str: ...


def is_picture(data: bytes) -> bool:
    """Whether ``data`` starts like a picture format Feishu takes."""
    return (data.startswith(_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
            or data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"))


def checked(data: bytes, where: str) -> Picture:
    """``data`` as a :class:`Picture`, or PictureError when Feishu would refuse it."""
    if not data:
        raise PictureError(f"avatar {where} is empty")
    if len(data) > LIMIT:
        raise PictureError(f"avatar {where} is larger than 10 MB")
    if not is_picture(data):
        raise PictureError(f"avatar {where} is not a JPG, PNG, WEBP, GIF, BMP, ICO, TIFF or "
                           "HEIC picture")
    return Picture(data, hashlib.sha256(data).hexdigest())


async def load(location: str, base_dir: Path) -> Picture:
    """The picture at ``location``: an http(s) URL, or a file path (relative to
    ``base_dir``). PictureError names the location and what is wrong."""
    if location.startswith(("http://", "https://")):
        return checked(await _fetch(location), location)
    if "://" in location:
        raise PictureError(f"avatar {location}: only http(s) URLs and file paths are read")
    path = base_dir / location
    try:
        with path.open("rb") as f:
            data = f.read(LIMIT + 1)
    except OSError as exc:
        raise PictureError(f"avatar {location} cannot be read ({exc.strerror})") from None
    return checked(data, location)


async def _fetch(url: str) -> bytes:
    """GET ``url`` without credentials, reading at most LIMIT + 1 bytes."""
    try:
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False,
                                     timeout=_TIMEOUT) as http, \
                http.stream("GET", url) as response:
            if response.status_code != 200:
                raise PictureError(f"avatar {url} answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > LIMIT:
                    break
            return bytes(body)
    except httpx.HTTPError as exc:
        raise PictureError(f"avatar {url} cannot be fetched ({type(exc).__name__})") from None


async def resolve(raw: SourceData, client: UploadAPI, ledger: Ledger, base_dir: Path, *,
                  apply: bool) -> SourceData:
    """``raw`` with each ``avatar`` location replaced by its content's sha256 and
    :attr:`SourceData.catalogs` mapping each sha256 to its ``image_key`` (``apply``:
    uploaded now when the ledger has none; else shown as new). Someone whose picture
    cannot be loaded is held with the reason, and left as they are."""
    if AVATAR not in raw.profile_fields:
        return raw
    issues, held = list(raw.issues), set(raw.held_employees)
    loaded: dict[str, Picture | PictureError] = {}
    keys: dict[str, str] = {}
    people = dict(raw.snapshot.employees)
    known: dict[str, str] = json.loads(ledger.get_meta(_KEYS) or "{}")
    for key, e in sorted(people.items()):
        location = e.profile.get(AVATAR)
        if not isinstance(location, str) or not location:
            continue
        if location not in loaded:
            try:
                loaded[location] = await load(location, base_dir)
            except PictureError as exc:
                loaded[location] = exc
        picture = loaded[location]
        if isinstance(picture, PictureError):
            held.add(key)
            issues.append(Issue("employee", key, AVATAR, f"{picture}: fix the picture or the "
                                "column; the person is left as they are", "error",
                                raw.where("employee", key)))
            continue
        if picture.sha256 not in keys:
            keys[picture.sha256] = (await image_key(picture, client, ledger) if apply
                                    else known.get(picture.sha256, "(new avatar)"))
        people[key] = replace(e, profile={**e.profile, AVATAR: picture.sha256})
    return replace(raw, snapshot=replace(raw.snapshot, employees=people), issues=issues,
                   held_employees=held, catalogs={**raw.catalogs, AVATAR: keys})


async def image_key(picture: Picture, client: UploadAPI, ledger: Ledger) -> str:
    """The ``image_key`` of ``picture``: the ledger's, else uploaded now and remembered
    (so an unchanged avatar costs no call)."""
    known: dict[str, str] = json.loads(ledger.get_meta(_KEYS) or "{}")
    if picture.sha256 not in known:
        known[picture.sha256] = await client.upload_avatar(picture.data)
        ledger.set_meta(_KEYS, json.dumps(known, sort_keys=True))
    return known[picture.sha256]
