"""The helpers shared by steps: host, timestamps, densest run."""

from __future__ import annotations

from worker.steps.common import (
    CACHED_TEXT_CHARS,
    densest_run,
    epoch_seconds,
    host,
    parse_timestamp,
    rfc3339,
    short_text_cache,
)


def test_host_is_lower_case_without_www_port_or_credentials() -> None:
    assert host("https://WWW.Example.com:8443/a?b") == "example.com"
    assert host("http://user:pw@news.example.org/x") == "news.example.org"
    assert host("not a url") == "" and host(None) == ""
    assert host("http://[::1") == ""  # an invalid IPv6 literal is no host, not an exception


def test_timestamps_in_rfc3339_and_rfc2822_read_the_same_moment() -> None:
    iso = parse_timestamp("2019-11-18T07:45:00Z")
    mail = parse_timestamp("Mon, 18 Nov 2019 07:45:00 GMT")
    assert iso is not None and mail is not None and iso == mail
    assert rfc3339(iso) == "2019-11-18T07:45:00Z"
    assert epoch_seconds("2019-11-18T08:45:00+01:00") == iso.timestamp()
    assert epoch_seconds("2019-11-18T07:45:00") is None  # no zone: not a moment
    assert parse_timestamp("yesterday") is None and epoch_seconds(None) is None


def test_densest_run_is_the_best_contiguous_total() -> None:
    assert densest_run([-1, 5, -2, 4, -10, 3]) == (7, 1, 4)
    assert densest_run([-1, -2]) == (0, 0, 0)
    assert densest_run([2, -2, 2]) == (2, 0, 1)  # the first run reaching the best total wins


def test_only_short_texts_are_cached() -> None:
    calls: list[str] = []

    @short_text_cache(maxsize=4)
    def words(text: str) -> list[str]:
        calls.append(text)
        return text.split()

    short, long = "nav menu", "x " * CACHED_TEXT_CHARS
    assert words(short) == words(short) == ["nav", "menu"]
    assert words(long) == words(long)
    assert calls == [short, long, long]  # the short text worked out once, the long one each time
