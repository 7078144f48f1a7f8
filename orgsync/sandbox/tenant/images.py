"""Image upload (``POST /open-apis/im/v1/images``): the image keys a user's ``avatar_key``
takes (feishu-api-more.md §7, ``/document/server-docs/im-v1/image/create``).

The call is ``multipart/form-data`` with ``image_type`` (``message`` or ``avatar``) and
``image`` (the file): non-empty (234010), at most 10 MB (234006), a JPG/PNG/WEBP/GIF/BMP/
ICO/TIFF/HEIC picture (234011), and the app needs the bot capability (234007). It answers
``{"image_key": "img_v3_…"}``. A user create or patch whose ``avatar_key`` is no uploaded
avatar image is 41036. The sandbox recognises formats by their magic bytes; whether
Feishu accepts a ``message`` image's key as an avatar is UNCONFIRMED: the sandbox does not.
"""

from __future__ import annotations

import hashlib

from orgsync.sandbox.tenant.ids import IdIndex
from orgsync.sandbox.tenant.model import JSON, ApiError

IMAGE_LIMIT = 10 * 1024 * 1024
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
          b"\x00\x00\x01\x00", b"II*\x00", b"MM\x00*")


def image_format_ok(data: bytes) -> bool:
    """Whether ``data`` starts like a picture format Feishu takes (WEBP and HEIC by their
    RIFF / ftyp boxes)."""
    return (data.startswith(_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
            or data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"))


class Images(IdIndex):
    """Uploaded images, by ``image_key``, each with its ``image_type``."""

    def images(self) -> dict[str, JSON]:
        """The uploaded images, by key."""
        return self.catalogs.setdefault("image", {})

    def upload_image(self, form: dict[str, str | bytes], *, bot_enabled: bool) -> JSON:
        """POST im/v1/images with the form's fields → ``{"image_key": …}``."""
        if not bot_enabled:
            raise ApiError(234007, "App does not enable bot feature", 400)
        image_type, image = form.get("image_type"), form.get("image")
        if image_type not in ("message", "avatar") or not isinstance(image, bytes):
            raise ApiError(234001, "Invalid request param.", 400)
        if not image:
            raise ApiError(234010, "File's size can't be 0.", 400)
        if len(image) > IMAGE_LIMIT:
            raise ApiError(234006, "The file size exceed the max value.", 400)
        if not image_format_ok(image):
            raise ApiError(234011, "Can't recognise image format.", 400)
        # UNCONFIRMED: whether one content uploaded twice gets the same key; the sandbox
        # mints a new one each time, as the docs suggest nothing else.
        key = f"img_v3_{hashlib.sha256(image).hexdigest()[:8]}_{len(self.images()):04d}"
        self.images()[key] = {"image_type": image_type, "size": len(image)}
        return {"image_key": key}

    def check_avatar_key(self, key: str) -> None:
        """41036 unless ``key`` is an uploaded avatar image ("" clears: UNCONFIRMED)."""
        if key and (self.images().get(key) or {}).get("image_type") != "avatar":
            raise ApiError(41036, "avatar key is invalid", 400)
