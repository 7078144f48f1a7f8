"""Calendar time-off events (feishu-api-more.md §8.1–8.2): the 请假 mark on a profile.

``POST calendar/v4/timeoff_events`` creates one event for one user and answers its
``timeoff_event_id``; ``DELETE calendar/v4/timeoff_events/:id`` removes it. Feishu has no
list or get: whoever creates an event must keep its id. The doc pages are
``/document/server-docs/calendar-v4/timeoff_event/create`` and ``…/delete``.
"""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orgsync.sandbox.tenant.body import opt_str
from orgsync.sandbox.tenant.ids import IdIndex
from orgsync.sandbox.tenant.model import JSON, ApiError, IdTypes

CREATE_SCOPES = ("calendar:timeoff", "calendar:time_off:create")
DELETE_SCOPES = ("calendar:timeoff", "calendar:time_off:delete")
# UNCONFIRMED: the docs say defaults are used for an empty title/description but not which;
# the create page's example title stands in for them.
DEFAULT_TITLE = "请假中(全天) / 1-Day Time Off"
DEFAULT_DESCRIPTION = ""
_SECONDS = re.compile(r"^[0-9]{1,12}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def bad_params(what: str) -> ApiError:
    """190002 (HTTP 400), the calendar's "invalid parameters" answer."""
    return ApiError(190002, f"invalid parameters in request: {what}", 400)


class Calendar(IdIndex):
    """Time-off events, keyed by ``timeoff_event_id``, each remembering the app that made it."""

    def create_timeoff(self, body: JSON, ids: IdTypes, *, app_id: str,
                       bot_enabled: bool) -> JSON:
        """POST calendar/v4/timeoff_events: the created event's ``data``."""
        self._require_scope(CREATE_SCOPES)
        if not bot_enabled:
            raise ApiError(190007, "app bot_id not found: enable the app's bot capability", 404)
        ref = opt_str(body, "user_id")
        zone = opt_str(body, "timezone")
        start = opt_str(body, "start_time")
        end = opt_str(body, "end_time")
        if not ref or not zone or not start or not end:
            raise bad_params("user_id, timezone, start_time and end_time are required")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise bad_params(f"unknown timezone {zone!r}") from None
        _check_range(start, end)
        user = self.find_user(ref, ids.user)
        if user is None or user.resigned:
            raise ApiError(195100, "user is resigned or not in this tenant", 404)
        event_id = "timeoff:" + self._hex(64)
        event: JSON = {
            "timeoff_event_id": event_id, "user_id": ref, "timezone": zone,
            "start_time": start, "end_time": end,
            "title": opt_str(body, "title") or DEFAULT_TITLE,
            "description": opt_str(body, "description") or DEFAULT_DESCRIPTION}
        self.timeoff_events[event_id] = {**event, "open_id": user.open_id, "app_id": app_id,
                                         "create_time": self.clock.now()}
        return dict(event)

    def delete_timeoff(self, event_id: str, *, app_id: str) -> JSON:
        """DELETE calendar/v4/timeoff_events/:id: ``{}``.

        An event of another app answers 195000 (documented). UNCONFIRMED: the answer for an
        unknown (or already deleted) id; the sandbox sends 190002, the generic bad-params code.
        Deleting the event of a since-resigned user is allowed (the docs list 195100 for both
        calls; UNCONFIRMED whether delete ever sends it).
        """
        self._require_scope(DELETE_SCOPES)
        event = self.timeoff_events.get(event_id)
        if event is None:
            raise bad_params(f"timeoff_event_id {event_id!r} not found")
        if event["app_id"] != app_id:
            raise ApiError(195000, "the time-off event was not created by this app", 403)
        del self.timeoff_events[event_id]
        return {}

    def _require_scope(self, scopes: tuple[str, ...]) -> None:
        """99991672 naming the scopes when the app holds none of them (feishu-api-more.md §2)."""
        if self.permissions is None or any(s in self.permissions for s in scopes):
            return
        raise ApiError(99991672, "Access denied. One of the following scopes is required: "
                                 f"[{', '.join(scopes)}]", 400)


def _check_range(start: str, end: str) -> None:
    """Both second timestamps or both ``YYYY-MM-DD`` dates (documented), end not before start
    (UNCONFIRMED: the docs do not say; the sandbox refuses it with 190002)."""
    if _SECONDS.match(start) and _SECONDS.match(end):
        if int(end) < int(start):
            raise bad_params("end_time before start_time")
        return
    if _DATE.match(start) and _DATE.match(end):
        try:
            first, last = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError:
            raise bad_params("start_time/end_time is not a date") from None
        if last < first:
            raise bad_params("end_time before start_time")
        return
    raise bad_params("start_time and end_time must both be second timestamps or both dates")
