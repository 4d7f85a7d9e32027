"""The worker against a broker that requires TLS, with certificates made by the test.

The broker is Tansu behind stunnel (tests/tls_broker.py): the only address it advertises is the
TLS port, so every connection after bootstrap (metadata, produce, fetch, the consumer group)
is TLS. What is covered, end to end with real processes:

- `ingest-worker run` over mutual TLS (server certificate checked against a CA file, hostname
  checked, client certificate required): topic creation, the Faust agents, the lag monitor;
  confluent-kafka (librdkafka) produces the raw pages and reads the output events over TLS;
- `ingest-worker produce` and `tail` over TLS;
- failures that must end a command within seconds with one line on stderr and a non-zero exit:
  a CA that did not sign the broker's certificate, no client certificate where one is required,
  a plaintext client on the TLS port, nothing listening, a broker advertising an address nobody
  listens on, a SASL login the listener does not offer.

Not covered against a broker: a SASL login (PLAIN or SCRAM) that succeeds or is refused for a
wrong password. Tansu 0.6 offers no SASL mechanism unless started with `--authentication`, and
then refuses `tansu user create` (the only way to add a user) because that request is not
authenticated, so no user can exist. The SASL options handed to aiokafka and to Faust, and the
message for a refused login, are checked in tests/test_connection.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from conftest import isolated_settings, read_fixture, validate_event
from tls_broker import Authority, TLSBroker, issue, make_authority

from worker.cli.sample_pages import load_samples
from worker.kafka.embedded import EmbeddedBroker, free_port
from worker.kafka.topics import ensure_topics
from worker.settings import Settings

pytestmark = pytest.mark.integration
SEED_URL = "https://worldnewsdesk.example/ukraine-says-it-has-captured-two-north-korean-soldiers"
FAILS_WITHIN_SECONDS = 30  # interpreter and imports included; the connection attempt itself takes milliseconds


class PKI:
    """The test's certificates: the broker's CA, an unrelated CA, and a client certificate."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.authority: Authority = make_authority(folder, "broker-ca")
        self.stranger: Authority = make_authority(folder, "unrelated-ca")
        self.client_cert, self.client_key = issue(self.authority, folder, "ingest-worker", server=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(pki: PKI) -> Iterator[TLSBroker]:
    """A broker whose advertised listener requires TLS."""
    with TLSBroker(pki.folder, pki.authority) as broker:
        yield broker


@pytest.fixture(scope="module")
def mtls_broker(pki: PKI) -> Iterator[TLSBroker]:
    """A broker whose advertised listener requires TLS and a client certificate from the CA."""
    with TLSBroker(pki.folder, pki.authority, client_ca=pki.authority.cert_path) as broker:
        yield broker


def tls_settings(broker: TLSBroker, pki: PKI, name: str, data_dir: Path, client_cert: bool) -> Settings:
    settings = isolated_settings(broker.url, name, data_dir)
    files = {"broker_ssl_certfile": str(pki.client_cert), "broker_ssl_keyfile": str(pki.client_key)}
    return settings.with_overrides(
        broker_security_protocol="SSL", broker_ssl_cafile=str(pki.authority.cert_path), **(files if client_cert else {})
    )


def librdkafka_config(settings: Settings) -> dict[str, Any]:
    """The same connection for confluent-kafka: TLS, CA file, client certificate, hostname check."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.broker.removeprefix("kafka://"),
        "security.protocol": "SSL",
        "ssl.ca.location": settings.broker_ssl_cafile,
        "ssl.endpoint.identification.algorithm": "https",
    }
    if settings.broker_ssl_certfile:
        config["ssl.certificate.location"] = settings.broker_ssl_certfile
        config["ssl.key.location"] = settings.broker_ssl_keyfile
    return config


def command(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `ingest-worker ARGS` configured by `settings` only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(settings.to_environ())
    return subprocess.run(
        [sys.executable, "-m", "worker", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_fails_with_one_line(settings: Settings, args: list[str], pattern: str) -> str:
    """The command exits non-zero within seconds, printing one line that matches `pattern`."""
    started = time.monotonic()
    done = command(settings, *args, timeout=FAILS_WITHIN_SECONDS * 2)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, f"exit {done.returncode}\n{done.stderr}"
    assert elapsed < FAILS_WITHIN_SECONDS, f"took {elapsed:.1f} s"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def test_worker_over_mutual_tls_with_confluent_kafka_clients(mtls_broker, pki, start_worker, tmp_path):
    settings = tls_settings(mtls_broker, pki, "mtls_worker", tmp_path / "data", client_cert=True)
    asyncio.run(ensure_topics(settings))
    start_worker(settings)

    producer = Producer(librdkafka_config(settings))
    copy = next(s for s in load_samples() if s.name == "wire-copy-of-seed.html")
    seed = orjson.dumps({"url": SEED_URL, "text": read_fixture("seed-page.txt"), "fetched_at": "2025-01-11T12:00:00Z"})
    producer.produce(settings.input_topic, key=SEED_URL.encode(), value=seed)
    assert producer.flush(30) == 0
    # The copy after the story is in (one at a time, as in the demo), then a malformed message.
    consumer = Consumer(
        {
            **librdkafka_config(settings),
            "group.id": f"reader_{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.subscribe([settings.articles_topic, settings.duplicates_topic, settings.dead_letter_topic])
    events: list[dict[str, Any]] = []
    try:
        events += read_events(consumer, 1)
        producer.produce(settings.input_topic, key=copy.key, value=copy.value)
        producer.produce(settings.input_topic, value=b'{"url": "https://broken.example/x", "html": "<p>cut')
        assert producer.flush(30) == 0
        events += read_events(consumer, 2)
    finally:
        consumer.close()

    for event in events:
        validate_event(event)
    by_type = {e["event_type"]: e for e in events}
    assert sorted(by_type) == ["article.v1", "dead_letter.v1", "duplicate.v1"], events
    article = by_type["article.v1"]
    assert article["url"] == SEED_URL and article["title"] == read_fixture("seed-page.expected-title.txt").strip()
    assert by_type["duplicate.v1"]["duplicate_of"] == article["id"]
    assert by_type["dead_letter.v1"]["reason"] == "invalid_json"

    # The lag monitor reached the group's offsets over TLS too (it polls every 5 s).
    gauge = f'ingest_consumer_lag_messages{{partition="0",topic="{settings.input_topic}"}}'
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=5) as response:
            exposition = response.read().decode()
        if gauge in exposition or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert gauge in exposition
    assert "ingest_consumer_lag_poll_errors_total 0.0" in exposition


def read_events(consumer: Consumer, count: int, timeout: float = 120) -> list[dict[str, Any]]:
    """`count` events from a confluent-kafka consumer, failing after `timeout` seconds."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < count:
        assert time.monotonic() < deadline, f"only {len(found)} of {count} events arrived: {found}"
        message = consumer.poll(0.5)
        if message is None:
            continue
        assert message.error() is None, message.error()
        found.append(orjson.loads(message.value()))
    return found


def test_produce_and_tail_commands_over_tls(tls_broker, pki, tmp_path):
    settings = tls_settings(tls_broker, pki, "tls_cli", tmp_path / "data", client_cert=False)
    page = tmp_path / "page.txt"
    page.write_text(read_fixture("seed-page.txt"))
    created = command(settings, "topics", "--create")  # produce never creates the input topic
    assert created.returncode == 0 and f"{settings.input_topic}: created" in created.stdout, created.stderr
    sent = command(settings, "produce", str(page), "--url", SEED_URL)
    assert sent.returncode == 0, sent.stderr
    summary = rf"sent 1 pages in [\d.]+ s \([\d.]+/s\); to {re.escape(settings.input_topic)}"
    assert re.fullmatch(summary, sent.stderr.strip()), sent.stderr
    read = command(settings, "tail", settings.input_topic, "--from-beginning", "--max", "1", "--timeout", "20")
    assert read.returncode == 0, read.stderr
    [line] = read.stdout.splitlines()
    assert orjson.loads(line)["url"] == SEED_URL


@pytest.mark.parametrize("args", [["run"], ["produce", "README.md"], ["tail", "pages.raw", "--max", "1"]])
def test_untrusted_broker_certificate(args, tls_broker, pki, tmp_path):
    settings = tls_settings(tls_broker, pki, "untrusted", tmp_path, client_cert=False).with_overrides(
        broker_ssl_cafile=str(pki.stranger.cert_path)
    )
    line = assert_fails_with_one_line(
        settings, args, rf"the TLS certificate of {tls_broker.bootstrap} is not trusted \(.+\); checked against"
    )
    assert str(pki.stranger.cert_path) in line


def test_mutual_tls_listener_without_a_client_certificate(mtls_broker, pki, tmp_path):
    settings = tls_settings(mtls_broker, pki, "no_client_cert", tmp_path, client_cert=False)
    assert_fails_with_one_line(
        settings, ["run"], rf"{mtls_broker.bootstrap} closed the connection .* require a client certificate"
    )


def test_plaintext_client_on_the_tls_listener(tls_broker, tmp_path):
    settings = isolated_settings(tls_broker.url, "plaintext_on_tls", tmp_path)
    assert_fails_with_one_line(settings, ["run"], r"closed the connection during the PLAINTEXT handshake; .* use SSL")


def test_sasl_login_on_a_listener_without_sasl(tls_broker, pki, tmp_path):
    settings = tls_settings(tls_broker, pki, "sasl", tmp_path, client_cert=False).with_overrides(
        broker_security_protocol="SASL_SSL",
        broker_sasl_mechanism="SCRAM-SHA-512",
        broker_username="ingest-worker",
        broker_password="not-shown",
    )
    line = assert_fails_with_one_line(settings, ["run"], r"does not offer SASL SCRAM-SHA-512")
    assert "not-shown" not in line


def test_unreachable_broker(tmp_path):
    settings = isolated_settings(f"kafka://127.0.0.1:{free_port()}", "unreachable", tmp_path)
    pattern = r"nothing accepts connections on 127\.0\.0\.1:\d+ \(connection refused\): check INGEST_BROKER$"
    assert_fails_with_one_line(settings, ["run"], pattern)


def test_broker_advertising_an_address_nobody_listens_on(tmp_path):
    with EmbeddedBroker(advertised_port=free_port()) as broker:
        settings = isolated_settings(broker.url, "advertised", tmp_path)
        assert_fails_with_one_line(
            settings,
            ["run"],
            rf"{broker.bootstrap} answers, but the broker it advertises cannot be used: nothing accepts "
            r"connections on 127\.0\.0\.1:\d+ \(connection refused\): check the brokers' advertised listeners$",
        )
