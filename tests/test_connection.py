"""Broker connection settings: which combinations are refused, and what each client gets.

The Faust app, the topic admin, the produce/tail clients and the lag monitor all take their
connection from `worker.kafka.connection`; these tests check its output for every protocol,
including what Faust itself turns the credentials into for its own clients.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest
from aiokafka import errors as kafka_errors
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from tls_broker import issue, make_authority

from worker.errors import BrokerUnavailable
from worker.kafka.connection import (
    bootstrap_servers,
    check_broker,
    client_options,
    describe,
    faust_credentials,
    ssl_context,
)
from worker.kafka.embedded import free_port
from worker.settings import Settings, SettingsError

SASL = {"broker_username": "ingest", "broker_password": "hunter2"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a client certificate and key it signed, and a file that is no certificate."""
    folder = tmp_path_factory.mktemp("pki")
    authority = make_authority(folder, "ca")
    cert, key = issue(authority, folder, "client", server=False)
    junk = folder / "junk.pem"
    junk.write_text("not a certificate\n")
    return {"ca": authority.cert_path, "cert": cert, "key": key, "junk": junk}


def test_bootstrap_servers_from_faust_urls() -> None:
    assert bootstrap_servers("kafka://a:9092;kafka://b:9093") == "a:9092,b:9093"
    assert bootstrap_servers("kafka://a:9092,b:9092") == "a:9092,b:9092"
    assert bootstrap_servers("localhost:9092") == "localhost:9092"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"INGEST_BROKER_SECURITY_PROTOCOL": "TLS"}, "INGEST_BROKER_SECURITY_PROTOCOL='TLS' is not one of"),
        (
            {"INGEST_BROKER_SECURITY_PROTOCOL": "SASL_SSL", "INGEST_BROKER_PASSWORD": "x"},
            "SASL_SSL authenticates with SASL: set INGEST_BROKER_USERNAME and INGEST_BROKER_PASSWORD",
        ),
        (
            {"INGEST_BROKER_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "INGEST_BROKER_USERNAME": "u"},
            "set INGEST_BROKER_USERNAME and INGEST_BROKER_PASSWORD",
        ),
        (
            {
                "INGEST_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
                "INGEST_BROKER_SASL_MECHANISM": "SCRAM-SHA-1",
                "INGEST_BROKER_USERNAME": "u",
                "INGEST_BROKER_PASSWORD": "p",
            },
            "INGEST_BROKER_SASL_MECHANISM='SCRAM-SHA-1' is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            {"INGEST_BROKER_USERNAME": "u", "INGEST_BROKER_PASSWORD": "p"},
            "INGEST_BROKER_SECURITY_PROTOCOL=PLAINTEXT does not authenticate",
        ),
        (
            {"INGEST_BROKER_SECURITY_PROTOCOL": "SSL", "INGEST_BROKER_USERNAME": "u", "INGEST_BROKER_PASSWORD": "p"},
            "SSL does not authenticate: use SASL_SSL",
        ),
        (
            {"INGEST_BROKER_SSL_CAFILE": "/etc/ca.pem"},
            "INGEST_BROKER_SSL_CAFILE set but INGEST_BROKER_SECURITY_PROTOCOL=PLAINTEXT does not use TLS",
        ),
        (
            {
                "INGEST_BROKER_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "INGEST_BROKER_USERNAME": "u",
                "INGEST_BROKER_PASSWORD": "p",
                "INGEST_BROKER_SSL_CERTFILE": "/etc/client.pem",
            },
            "INGEST_BROKER_SSL_CERTFILE set but INGEST_BROKER_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS",
        ),
        (
            {"INGEST_BROKER_SECURITY_PROTOCOL": "SSL", "INGEST_BROKER_SSL_KEYFILE": "/etc/client.key"},
            "INGEST_BROKER_SSL_KEYFILE is set without INGEST_BROKER_SSL_CERTFILE",
        ),
    ],
)
def test_settings_refuse_combinations_that_cannot_work(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    assert message in str(refused.value)


def test_the_deployed_configuration_is_accepted() -> None:
    settings = Settings.from_env(
        {
            "INGEST_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
            "INGEST_BROKER_SASL_MECHANISM": "SCRAM-SHA-512",
            "INGEST_BROKER_USERNAME": "ingest-worker",
            "INGEST_BROKER_PASSWORD": "hunter2",
        }
    )
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.describe())
    assert Settings(broker_security_protocol="SASL_SSL", **SASL).broker_password.reveal() == "hunter2"


def test_plaintext_has_no_tls_and_no_login() -> None:
    options = client_options(Settings(broker="kafka://a:9092;kafka://b:9092"))
    assert options == {"bootstrap_servers": "a:9092,b:9092", "security_protocol": "PLAINTEXT", "ssl_context": None}
    assert faust_credentials(Settings()) is None


def test_ssl_checks_the_server_against_the_ca_file(pki: dict[str, Path]) -> None:
    settings = Settings(broker_security_protocol="SSL", broker_ssl_cafile=str(pki["ca"]))
    options = client_options(settings)
    context = options["ssl_context"]
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "ca"),),)]
    # What Faust's own producer and consumers are built with.
    auth = credentials_to_aiokafka_auth(faust_credentials(settings))
    assert set(auth) == {"security_protocol", "ssl_context"} and auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].get_ca_certs() == context.get_ca_certs() and auth["ssl_context"].check_hostname


def test_ssl_without_a_ca_file_trusts_the_system_cas() -> None:
    context = ssl_context(Settings(broker_security_protocol="SSL"))
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_mutual_tls_loads_the_client_certificate(pki: dict[str, Path]) -> None:
    settings = Settings(
        broker_security_protocol="SSL",
        broker_ssl_cafile=str(pki["ca"]),
        broker_ssl_certfile=str(pki["cert"]),
        broker_ssl_keyfile=str(pki["key"]),
    )
    assert ssl_context(settings) is not None  # load_cert_chain accepted the pair
    combined = pki["cert"].parent / "client-and-key.pem"
    combined.write_text(pki["cert"].read_text() + pki["key"].read_text())
    assert ssl_context(settings.with_overrides(broker_ssl_certfile=str(combined), broker_ssl_keyfile="")) is not None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_login_with_and_without_tls(protocol: str, mechanism: str, pki: dict[str, Path]) -> None:
    tls = {"broker_ssl_cafile": str(pki["ca"])} if protocol == "SASL_SSL" else {}
    settings = Settings(broker_security_protocol=protocol, broker_sasl_mechanism=mechanism, **SASL, **tls)
    options = client_options(settings)
    assert options["security_protocol"] == protocol and options["sasl_mechanism"] == mechanism
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("ingest", "hunter2")
    assert (options["ssl_context"] is not None) == (protocol == "SASL_SSL")
    auth = credentials_to_aiokafka_auth(faust_credentials(settings))
    same = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")
    assert {key: auth[key] for key in same} == {key: options[key] for key in same}
    assert auth["security_protocol"] == protocol  # Faust sends SASL_SSL only when given the context
    assert (auth["ssl_context"] is not None) == (protocol == "SASL_SSL")


@pytest.mark.parametrize(
    "files, message",
    [
        ({"broker_ssl_cafile": "/nonexistent/ca.pem"}, "INGEST_BROKER_SSL_CAFILE=/nonexistent/ca.pem: cannot be read"),
        ({"broker_ssl_cafile": "junk"}, "INGEST_BROKER_SSL_CAFILE="),
        ({"broker_ssl_certfile": "/nonexistent/client.pem"}, "INGEST_BROKER_SSL_CERTFILE=/nonexistent/client.pem"),
        ({"broker_ssl_certfile": "cert", "broker_ssl_keyfile": "junk"}, "with INGEST_BROKER_SSL_KEYFILE="),
        ({"broker_ssl_certfile": "ca"}, "cannot be loaded as a PEM certificate and unencrypted key"),
    ],
)
def test_unusable_tls_files_are_named(files: dict[str, str], message: str, pki: dict[str, Path]) -> None:
    files = {name: str(pki.get(value, value)) for name, value in files.items()}
    settings = Settings(broker_security_protocol="SSL", **files)
    with pytest.raises(SettingsError, match=message.replace(".", r"\.")):
        client_options(settings)


def test_nothing_listening_is_one_sentence_at_once() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as failed:
        asyncio.run(check_broker(Settings(broker=f"kafka://127.0.0.1:{port}")))
    assert time.monotonic() - started < 5
    assert str(failed.value) == (
        f"nothing accepts connections on 127.0.0.1:{port} (connection refused): check INGEST_BROKER"
    )


def test_every_bootstrap_server_is_tried_and_reported() -> None:
    first, second = free_port(), free_port()
    with pytest.raises(BrokerUnavailable, match="no bootstrap server could be used: .*; ") as failed:
        asyncio.run(check_broker(Settings(broker=f"kafka://127.0.0.1:{first};kafka://localhost.invalid:{second}")))
    assert f"127.0.0.1:{first} (connection refused)" in str(failed.value)
    assert f"cannot reach localhost.invalid:{second}" in str(failed.value)


def test_a_refused_login_names_the_user_and_what_to_check() -> None:
    # Tansu 0.6 cannot check a SASL login (see tests/test_security.py), so the broker's answer
    # to a wrong password is built here as aiokafka raises it.
    settings = Settings(broker_security_protocol="SASL_SSL", broker_sasl_mechanism="SCRAM-SHA-512", **SASL)
    refused = kafka_errors.SaslAuthenticationFailed("Authentication failed due to invalid credentials")
    assert describe(settings, "b:9093", refused, 10) == (
        "b:9093 refused the login of 'ingest' (SASL SCRAM-SHA-512): "
        "check INGEST_BROKER_USERNAME and INGEST_BROKER_PASSWORD"
    )
    assert "hunter2" not in describe(settings, "b:9093", refused, 10)
