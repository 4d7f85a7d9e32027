"""Bytes off the wire -> a validated `RawPage`, or `Dropped` with the field that is wrong.

A page comes as a plain `raw_page.v1` JSON object (CloudEvents binary mode puts its attributes
in `ce_*` headers and leaves the body alone), or wrapped as a structured-mode CloudEvent: a JSON
envelope with `specversion` whose `data` (or `data_base64`) is the page.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import orjson

from worker.document import Dropped, RawPage
from worker.events import Headers, header_value, trace_parent
from worker.steps.common import parse_timestamp, rfc3339

EVENT_TYPE = "raw_page.v1"
MAX_URL_CHARS = 4096
# Leading bytes of formats that are not pages even when sent in the `html` field.
BINARY_SIGNATURES = (b"%PDF-", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b")
HTML_CONTENT_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "application/xml", "text/xml")
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"


def decode(
    value: bytes | None,
    key: bytes | None = None,
    max_bytes: int = 5_000_000,
    headers: Headers = (),
) -> RawPage | Dropped:
    """Parse and validate one `raw_page.v1` message; the Kafka key is the url when `url` is absent.

    `headers` are the Kafka message headers as (name, value) pairs; a `content-type` of
    `application/cloudevents+json` marks a structured-mode CloudEvent.
    """
    if not value:
        return Dropped("invalid_json", "The message value is empty; send a raw_page.v1 JSON object.")
    if len(value) > max_bytes:
        return Dropped(
            "too_large",
            f"The message is {len(value):,} bytes, over the {max_bytes:,}-byte limit "
            "(INGEST_MAX_PAGE_BYTES); strip scripts and styles before sending or raise the limit.",
        )
    payload = _parse_json(value)
    if isinstance(payload, Dropped):
        return payload
    if not isinstance(payload, dict):
        return Dropped("invalid_json", f"The message is a JSON {type(payload).__name__}, not an object.")
    content_type = (header_value(headers, "content-type") or "").split(";")[0].strip().lower()
    if content_type == STRUCTURED_CONTENT_TYPE or "specversion" in payload:
        envelope, payload = payload, _unwrap_cloudevent(payload)
        if isinstance(payload, Dropped):
            return payload
        page = _validate(payload, key, len(value))
        trace = envelope.get("traceparent")  # the CloudEvents distributed-tracing extension
        if isinstance(page, RawPage) and isinstance(trace, str):
            return replace(page, trace=trace_parent([("traceparent", trace)]))
        return page
    return _validate(payload, key, len(value))


def known_url(value: bytes | None, key: bytes | None) -> str | None:
    """The url a message names, as well as it can be read from a message `decode` refused: its
    `url` field (inside a CloudEvent's `data` too), else its Kafka key; None when neither says.

    For the dead letter, so that a page refused for any reason can still be traced to its url.
    """
    payload: Any = None
    if value and not value.startswith(BINARY_SIGNATURES):
        try:
            payload = orjson.loads(value)
        except orjson.JSONDecodeError:
            payload = None
    if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
        payload = payload["data"]
    url = payload.get("url") if isinstance(payload, dict) else None
    if isinstance(url, str) and url.strip():
        return url.strip()[:MAX_URL_CHARS]
    if key:
        text = key.decode("utf-8", "replace").strip()
        return text[:MAX_URL_CHARS] or None
    return None


def _unwrap_cloudevent(envelope: dict[str, Any]) -> dict[str, Any] | Dropped:
    """The page inside a structured-mode CloudEvent (CloudEvents 1.0 JSON format)."""
    version = envelope.get("specversion")
    if not isinstance(version, str) or not version.startswith("1."):
        return Dropped("invalid_field", f"CloudEvent attribute 'specversion' is {version!r}; only 1.0 is understood.")
    data_type = envelope.get("datacontenttype")
    if isinstance(data_type, str) and not data_type.split(";")[0].strip().lower().endswith(("/json", "+json")):
        return Dropped(
            "unsupported_content",
            f"CloudEvent attribute 'datacontenttype' is {data_type!r}; the data must be a raw_page.v1 JSON object.",
        )
    data: Any = envelope.get("data")
    if data is None and isinstance(envelope.get("data_base64"), str):
        try:
            data = _parse_json(base64.b64decode(envelope["data_base64"], validate=True))
        except binascii.Error:
            return Dropped("invalid_field", "CloudEvent attribute 'data_base64' is not valid base64.")
        if isinstance(data, Dropped):
            return data
    if isinstance(data, str):  # data given as a JSON document in a string
        data = _parse_json(data.encode())
        if isinstance(data, Dropped):
            return data
    if not isinstance(data, dict):
        return Dropped(
            "invalid_field", "CloudEvent attribute 'data' must hold the raw_page.v1 object (url and html or text)."
        )
    return data


def _parse_json(value: bytes) -> Any:
    if value.startswith(BINARY_SIGNATURES):
        return Dropped(
            "unsupported_content", "The message is a binary file (PDF, image or archive), not a JSON page event."
        )
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc):
            return _too_deep()
    try:
        # The standard library detects UTF-16/32 and a UTF-8 byte-order mark, which orjson refuses.
        return json.loads(value)
    except UnicodeDecodeError:
        return Dropped("invalid_json", "The message is not UTF-8 text; encode the JSON event as UTF-8.")
    except RecursionError:
        return _too_deep()
    except ValueError as exc:
        return Dropped(
            "invalid_json", f"The message is not valid JSON ({exc}); send one raw_page.v1 object per message."
        )


def _too_deep() -> Dropped:
    return Dropped(
        "invalid_json", "The message nests JSON arrays or objects too deeply (over 1,024 levels); a page event is flat."
    )


def _validate(payload: dict[str, Any], key: bytes | None, size: int) -> RawPage | Dropped:
    event_type = payload.get("event_type", EVENT_TYPE)
    if event_type != EVENT_TYPE:
        return Dropped("invalid_field", f"Field 'event_type' is {event_type!r}; this topic takes {EVENT_TYPE!r}.")
    url = payload.get("url")
    if url is None and key:
        url = key.decode("utf-8", "replace")
    if not isinstance(url, str) or not url.strip():
        return Dropped("invalid_field", "Field 'url' is missing or empty; every page needs its absolute http(s) URL.")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL_CHARS:
        return Dropped("invalid_field", f"Field 'url' is not an absolute http(s) URL: {url[:200]!r}.")
    html, text = payload.get("html"), payload.get("text")
    if (html is None) == (text is None):
        return Dropped("invalid_field", "Exactly one of the fields 'html' and 'text' must be set.")
    body = html if html is not None else text
    field_name = "html" if html is not None else "text"
    if not isinstance(body, str):
        return Dropped("invalid_field", f"Field '{field_name}' must be a string, not {type(body).__name__}.")
    if not body.strip():
        return Dropped("empty_after_cleaning", f"Field '{field_name}' is empty; the crawler fetched no content.")
    headers = payload.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        return Dropped("invalid_field", "Field 'headers' must map header names to string values.")
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if content_type and not content_type.split(";")[0].strip().lower().startswith(HTML_CONTENT_TYPES):
        return Dropped(
            "unsupported_content",
            f"Header 'Content-Type' is {content_type!r}; only HTML and plain-text pages are processed.",
        )
    fetched_at = payload.get("fetched_at")
    if fetched_at is not None:
        fetched_at = _rfc3339(fetched_at)
        if fetched_at is None:
            return Dropped(
                "invalid_field", f"Field 'fetched_at' is not an RFC 3339 timestamp: {payload.get('fetched_at')!r}."
            )
    for name in ("source", "language"):
        if payload.get(name) is not None and not isinstance(payload[name], str):
            return Dropped("invalid_field", f"Field '{name}' must be a string.")
    language = payload.get("language")
    return RawPage(
        url=url,
        html=html,
        text=text,
        fetched_at=fetched_at,
        source=payload.get("source"),
        language=language.strip().lower()[:2] if language and language.strip() else None,
        headers=dict(headers),
        size_bytes=size,
    )


_RFC3339_START = re.compile(r"\s*\d{4}-\d{2}-\d{2}[Tt]")


def _rfc3339(value: Any) -> str | None:
    """The timestamp normalised to UTC `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, or None if invalid."""
    if not isinstance(value, str) or not _RFC3339_START.match(value):
        return None
    moment = parse_timestamp(value)
    if moment is None or moment.tzinfo is None:
        return None
    try:
        return rfc3339(moment)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00 is past the largest UTC time
        return None

