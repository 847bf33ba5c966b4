"""Posted forms, checked before a handler reads them: same origin, CSRF token, size, type.

`await posted_form(request, expected_csrf)` returns the fields of an
`application/x-www-form-urlencoded` body, or raises FormRefused with the status to answer:
403 for a request from another origin (Origin, Sec-Fetch-Site) or a missing or wrong
`csrf_token` field, 415 for another media type, 413 past 16 KiB, 400 for a body that is
not a form. Every console POST goes through it (login and logout included).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from starlette.requests import Request

from receiver.web.access import CSRF_FIELD, same_origin

FORM_MAX_BYTES = 16 * 1024
FORM_MAX_FIELDS = 50
FORM_TYPE = "application/x-www-form-urlencoded"
CROSS_SITE = "refused: this form was sent from another site"


class FormRefused(Exception):
    """A posted form the console refuses, with the status and the reason to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


async def _capped_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > FORM_MAX_BYTES:
        raise FormRefused(413, f"the form is over {FORM_MAX_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > FORM_MAX_BYTES:
            raise FormRefused(413, f"the form is over {FORM_MAX_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def posted_form(request: Request, expected_csrf: str | None) -> dict[str, str]:
    """The form's fields (the first of each name), once every check above holds."""
    if not same_origin(request.scope, request.headers):
        raise FormRefused(403, CROSS_SITE)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    body = await _capped_body(request)
    if media_type != FORM_TYPE and (media_type or body):  # no body at all: an empty form
        raise FormRefused(415, f"send the form as {FORM_TYPE}")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=FORM_MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise FormRefused(400, "the body is not a form") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    offered = fields.get(CSRF_FIELD, "")
    if expected_csrf is None or not offered or not _equal(offered, expected_csrf):
        raise FormRefused(403, "refused: the form's CSRF token is missing or wrong; reload")
    return fields


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
