"""decode: bytes -> RawPage or Dropped with an actionable reason."""

from __future__ import annotations

import base64

import orjson
import pytest

from worker.document import Dropped, RawPage
from worker.steps.decode import decode, known_url


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


def test_deeply_nested_json_is_invalid_json_not_a_crash():
    for value in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        result = decode(value)
        assert isinstance(result, Dropped) and result.reason == "invalid_json" and "deeply" in result.detail
        # UTF-16 goes through the standard library's parser, which has its own recursion limit.
        result = decode(value.decode().encode("utf-16"))
        assert isinstance(result, Dropped) and result.reason == "invalid_json"


STRUCTURED = [("content-type", b"application/cloudevents+json; charset=utf-8")]


def cloudevent(**attributes) -> bytes:
    return orjson.dumps({"specversion": "1.0", "id": "1", "source": "/crawler", "type": "raw_page.v1", **attributes})


@pytest.mark.parametrize("headers", [STRUCTURED, (), {"Content-Type": "application/cloudevents+json"}])
def test_structured_cloudevent_pages_are_unwrapped(headers):
    value = cloudevent(datacontenttype="application/json", data={"url": "https://a.example/ce", "text": "Hi"})
    result = decode(value, headers=headers)
    assert isinstance(result, RawPage) and (result.url, result.text) == ("https://a.example/ce", "Hi")


def test_structured_cloudevent_data_as_base64_or_string():
    page_json = orjson.dumps({"url": "https://a.example/b", "html": "<p>x</p>"})
    for value in (cloudevent(data_base64=base64.b64encode(page_json).decode()), cloudevent(data=page_json.decode())):
        result = decode(value, headers=STRUCTURED)
        assert isinstance(result, RawPage) and result.html == "<p>x</p>"


@pytest.mark.parametrize(
    ("value", "reason", "names"),
    [
        (cloudevent(specversion="0.3", data={}), "invalid_field", "'specversion'"),
        (cloudevent(), "invalid_field", "'data'"),
        (cloudevent(data=[1, 2]), "invalid_field", "'data'"),
        (cloudevent(data_base64="***"), "invalid_field", "'data_base64'"),
        (cloudevent(datacontenttype="text/html", data="<p>x</p>"), "unsupported_content", "'datacontenttype'"),
        (cloudevent(data={"url": "https://a.example"}), "invalid_field", "'html' and 'text'"),
        (cloudevent(data="{oops"), "invalid_json", "not valid JSON"),
    ],
)
def test_bad_structured_cloudevents_name_their_reason(value, reason, names):
    result = decode(value, headers=STRUCTURED)
    assert isinstance(result, Dropped) and result.reason == reason and names in result.detail


def test_binary_mode_headers_leave_the_body_alone():
    headers = [("ce_specversion", b"1.0"), ("ce_type", b"raw_page.v1"), ("content-type", b"application/json")]
    result = decode(page(url="https://a.example/bin", text="x"), headers=headers)
    assert isinstance(result, RawPage) and result.url == "https://a.example/bin"


def test_structured_cloudevent_trace_context_is_kept():
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    result = decode(cloudevent(traceparent=trace, data={"url": "https://a.example/t", "text": "x"}))
    assert isinstance(result, RawPage) and result.trace == trace
    result = decode(cloudevent(traceparent="garbage", data={"url": "https://a.example/t", "text": "x"}))
    assert isinstance(result, RawPage) and result.trace is None
    assert decode(page(url="https://a.example/t", text="x", traceparent=trace)).trace is None  # not a CloudEvent


def test_dead_letters_carry_the_url_whenever_the_message_names_it():
    from worker.offline import process_lines
    from worker.settings import Settings

    lines = [
        b'{"url": "https://example.com/a", "html": 5}',
        b'{"url": "https://example.com/b"}',
        b'{"specversion": "0.3", "data": {"url": "https://example.com/c", "html": "<p>x</p>"}}',
        b'{"url": "not a url", "html": "<p>x</p>"}',
        b"not json",
    ]
    events = list(process_lines(lines, Settings(), tag_entities=False))
    assert [e["event_type"] for e in events] == ["dead_letter.v1"] * 5
    assert [e["url"] for e in events] == [
        "https://example.com/a", "https://example.com/b", "https://example.com/c", "not a url", None]
    assert known_url(b"not json", b"https://example.com/key") == "https://example.com/key"
    assert known_url(b"\x89PNG\r\n", None) is None
