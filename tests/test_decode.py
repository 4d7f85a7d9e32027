"""decode: bytes -> RawPage or Dropped with an actionable reason."""

from __future__ import annotations

import orjson
import pytest

from worker.document import Dropped, RawPage
from worker.steps.decode import decode


def page(**fields) -> bytes:
    return orjson.dumps(fields)


def test_valid_page_is_normalised():
    result = decode(
        page(url=" https://a.example/x ", text="Hello", fetched_at="2025-01-11T13:00:00+01:00", language="EN-gb")
    )
    assert result == RawPage(
        url="https://a.example/x",
        text="Hello",
        fetched_at="2025-01-11T12:00:00Z",
        language="en",
        size_bytes=result.size_bytes,
    )


def test_key_is_the_url_when_the_field_is_absent():
    result = decode(orjson.dumps({"html": "<p>x</p>"}), key=b"https://a.example/k")
    assert isinstance(result, RawPage) and result.url == "https://a.example/k"


def test_utf16_json_is_accepted():
    result = decode(page(url="https://a.example/u", text="caf\u00e9").decode().encode("utf-16"))
    assert isinstance(result, RawPage) and result.text == "caf\u00e9"


@pytest.mark.parametrize(
    ("value", "reason", "names"),
    [
        (b"", "invalid_json", "empty"),
        (b"{oops", "invalid_json", "not valid JSON"),
        (b'"just a string"', "invalid_json", "not an object"),
        ('{"url": "https://a.example", "text": "caf\xe9"}'.encode("latin-1"), "invalid_json", "UTF-8"),
        (page(text="x"), "invalid_field", "'url'"),
        (page(url="mailto:x@example.com", text="x"), "invalid_field", "'url'"),
        (page(url="https://a.example"), "invalid_field", "'html' and 'text'"),
        (page(url="https://a.example", html="<p/>", text="x"), "invalid_field", "'html' and 'text'"),
        (page(url="https://a.example", html=12), "invalid_field", "'html'"),
        (page(url="https://a.example", text="x", fetched_at="yesterday"), "invalid_field", "'fetched_at'"),
        (page(url="https://a.example", text="x", fetched_at="2025-01-11T12:00:00"), "invalid_field", "'fetched_at'"),
        (page(url="https://a.example", text="x", headers={"a": 1}), "invalid_field", "'headers'"),
        (page(url="https://a.example", text="x", event_type="article.v1"), "invalid_field", "'event_type'"),
        (
            page(url="https://a.example", html="x", headers={"Content-Type": "image/png"}),
            "unsupported_content",
            "Content-Type",
        ),
        (b"%PDF-1.7 binary", "unsupported_content", "binary"),
        (page(url="https://a.example", text="   "), "empty_after_cleaning", "'text'"),
    ],
)
def test_bad_input_names_its_reason_and_field(value, reason, names):
    result = decode(value)
    assert isinstance(result, Dropped)
    assert result.reason == reason
    assert names in result.detail


def test_size_limit():
    result = decode(page(url="https://a.example", text="x" * 2000), max_bytes=1000)
    assert isinstance(result, Dropped) and result.reason == "too_large" and "INGEST_MAX_PAGE_BYTES" in result.detail
