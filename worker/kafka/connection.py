"""How every Kafka connection of the worker is made, from settings: the one place that knows.

The Faust app (`faust_credentials`), the topic admin, the produce and tail clients and the lag
monitor (`client_options`) all connect with the same protocol, TLS context and SASL login:

    PLAINTEXT       no TLS, no login
    SSL             TLS (server certificate checked against INGEST_BROKER_SSL_CAFILE or the
                    system CAs, hostname checked); a client certificate when the broker wants mTLS
    SASL_PLAINTEXT  SASL login (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) without TLS
    SASL_SSL        SASL login inside TLS

Which combinations make sense is checked when settings are built (`worker.settings`); whether
the TLS files can be read is checked here, when the first connection is built.

A Kafka client that cannot connect logs the cause and retries, and its own "unable to bootstrap"
says nothing of why. `start_client` therefore first connects on its own (`check_broker`) to a
bootstrap server and to a broker that server advertises, which raises the cause: nothing
listening, a certificate not trusted, a TLS listener spoken to in plaintext, a wrong password,
an advertised address nobody can reach; then starts the client under a deadline.
`BrokerUnavailable` (worker.errors) carries the cause as one sentence for the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest

from worker.errors import BrokerUnavailable
from worker.settings import PREFIX, Settings, SettingsError

CONNECT_TIMEOUT_SECONDS = 10.0  # how long a command waits for the broker before giving up

Client = TypeVar("Client", AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient)


def bootstrap_servers(broker_url: str) -> str:
    """`kafka://a:9092;kafka://b:9092` (Faust's form) -> `a:9092,b:9092` (aiokafka's form)."""
    hosts = []
    for part in broker_url.replace(";", ",").split(","):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            hosts.append(part.rstrip("/"))
    return ",".join(hosts)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL connections (None for the plaintext protocols)."""
    if not settings.broker_security_protocol.endswith("SSL"):
        return None
    cafile, certfile, keyfile = settings.broker_ssl_cafile, settings.broker_ssl_certfile, settings.broker_ssl_keyfile
    try:
        context = ssl.create_default_context(cafile=cafile or None)  # verifies chain and hostname
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            f"{PREFIX}BROKER_SSL_CAFILE={cafile}: cannot be read as PEM certificates ({_reason(exc)})"
        ) from None
    if certfile:
        try:
            context.load_cert_chain(certfile, keyfile or None)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(
                f"{PREFIX}BROKER_SSL_CERTFILE={certfile}"
                + (f" with {PREFIX}BROKER_SSL_KEYFILE={keyfile}" if keyfile else "")
                + f": cannot be loaded as a PEM certificate and unencrypted key ({_reason(exc)})"
            ) from None
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection keyword arguments for aiokafka's producer, consumer and admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings.broker),
        "security_protocol": settings.broker_security_protocol,
        "ssl_context": ssl_context(settings),
    }
    if settings.broker_security_protocol.startswith("SASL_"):
        options.update(
            sasl_mechanism=settings.broker_sasl_mechanism,
            sasl_plain_username=settings.broker_username,
            sasl_plain_password=settings.broker_password.reveal(),
        )
    return options


def faust_credentials(settings: Settings) -> Any:
    """Faust's `broker_credentials` for the settings' protocol (None for PLAINTEXT)."""
    import faust  # not at module level: the produce and tail commands need no Faust

    protocol, context = settings.broker_security_protocol, ssl_context(settings)
    if protocol.startswith("SASL_"):
        # Faust picks SASL_SSL when a context is given and SASL_PLAINTEXT when not.
        return faust.SASLCredentials(
            username=settings.broker_username,
            password=settings.broker_password.reveal(),
            mechanism=settings.broker_sasl_mechanism,
            ssl_context=context,
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return None


async def start_client(settings: Settings, client: Client, timeout: float = CONNECT_TIMEOUT_SECONDS) -> Client:
    """Start a new aiokafka client, or raise `BrokerUnavailable` saying why it cannot connect.

    `check_broker` first finds the cause of a failure (the client's own start would only log it
    and retry); then the client starts under a deadline. The client is stopped before raising.
    """
    try:
        await check_broker(settings, timeout)
        await asyncio.wait_for(client.start(), timeout)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
        with contextlib.suppress(Exception):
            await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        if isinstance(exc, BrokerUnavailable):
            raise
        raise BrokerUnavailable(_after_connect(settings, exc, timeout)) from None
    return client


async def check_broker(settings: Settings, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Connect (TLS and SASL included) to a bootstrap server, then to a broker it advertises.

    Raises `BrokerUnavailable` with the reason when no bootstrap server accepts us, or when one
    does but none of the brokers it names (advertised listeners) can be used.
    """
    options = client_options(settings)
    servers = options.pop("bootstrap_servers").split(",")
    reasons = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            conn = await _connect(host, int(port), options, timeout)
        except Exception as exc:  # noqa: BLE001 - each becomes a sentence
            reasons.append(describe(settings, server, exc, timeout))
            continue
        try:
            cluster = ClusterMetadata()
            cluster.update_metadata(await asyncio.wait_for(conn.send(metadata_request()), timeout))
        except Exception as exc:  # noqa: BLE001 - each becomes a sentence
            reasons.append(describe(settings, server, exc, timeout))
            continue
        finally:
            conn.close()
        # Advertised listeners that nobody can use make every client fail after bootstrap. One
        # usable broker is enough to start: one being restarted must not stop the workers.
        failures = []
        for broker in cluster.brokers():
            advertised = f"{broker.host}:{broker.port}"
            if advertised == server:
                return
            try:
                (await _connect(broker.host, broker.port, options, timeout)).close()
                return
            except Exception as exc:  # noqa: BLE001 - becomes a sentence
                failures.append(describe(settings, advertised, exc, timeout, advertised=True))
        if failures:
            what = (
                "the broker it advertises cannot be used"
                if len(failures) == 1
                else f"none of the {len(failures)} brokers it advertises can be used"
            )
            raise BrokerUnavailable(f"{server} answers, but {what}: {failures[0]}")
        return
    if len(set(reasons)) == 1:
        raise BrokerUnavailable(reasons[0])
    raise BrokerUnavailable("no bootstrap server could be used: " + "; ".join(reasons))


def metadata_request() -> Any:
    """A request for the metadata of every topic, in the form the installed aiokafka sends.

    aiokafka 0.13 turned `MetadataRequest` from a list of one struct per protocol version into a
    class that picks the version itself; the lowest aiokafka allowed (0.11) has the list.
    """
    if isinstance(MetadataRequest, list | tuple):
        return MetadataRequest[0]([])
    return MetadataRequest([])


async def _connect(host: str, port: int, options: dict[str, Any], timeout: float) -> Any:
    return await asyncio.wait_for(create_conn(host, port, request_timeout_ms=int(timeout * 1000), **options), timeout)


def describe(settings: Settings, server: str, exc: BaseException, timeout: float, advertised: bool = False) -> str:
    """One sentence for a failed connection to `server`: what happened and what to check.

    `advertised`: the address came from the broker's metadata, not from `INGEST_BROKER`.
    """
    protocol = settings.broker_security_protocol
    address = "the brokers' advertised listeners" if advertised else f"{PREFIX}BROKER"
    if isinstance(exc, ssl.SSLCertVerificationError):
        trusted = (
            f"the CA in {PREFIX}BROKER_SSL_CAFILE={settings.broker_ssl_cafile}"
            if settings.broker_ssl_cafile
            else f"the system CAs (set {PREFIX}BROKER_SSL_CAFILE to the broker's CA)"
        )
        return f"the TLS certificate of {server} is not trusted ({exc.verify_message}); checked against {trusted}"
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake with {server} failed ({_reason(exc)}); {_CLOSED_HINTS[protocol]}"
    # Before OSError: a timeout is an OSError too.
    if isinstance(exc, asyncio.TimeoutError | kafka_errors.KafkaTimeoutError):
        return (
            f"{server} did not complete a {protocol} handshake within {timeout:g} s: the host is unreachable, "
            f"or the listener speaks another protocol (a plaintext listener never answers a TLS client)"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing accepts connections on {server} (connection refused): check {address}"
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        return f"cannot reach {server} ({_reason(exc)}): check {address}"
    if isinstance(exc, kafka_errors.UnsupportedSaslMechanismError):
        return (
            f"{server} does not offer SASL {settings.broker_sasl_mechanism}: check "
            f"{PREFIX}BROKER_SASL_MECHANISM, and {PREFIX}BROKER_SECURITY_PROTOCOL if the listener has no SASL"
        )
    if isinstance(
        exc,
        kafka_errors.SaslAuthenticationFailed
        | kafka_errors.AuthenticationFailedError
        | kafka_errors.IllegalSaslStateError,
    ):
        return (
            f"{server} refused the login of {settings.broker_username!r} (SASL {settings.broker_sasl_mechanism}): "
            f"check {PREFIX}BROKER_USERNAME and {PREFIX}BROKER_PASSWORD"
        )
    if isinstance(exc, ConnectionError | kafka_errors.KafkaConnectionError):
        return f"{server} closed the connection during the {protocol} handshake; {_CLOSED_HINTS[protocol]}"
    return f"connecting to {server} with {protocol} failed: {_reason(exc)}"


# What to check when a listener hangs up on a client of each protocol.
_CLOSED_HINTS = {
    "PLAINTEXT": "if it is a TLS listener use SSL (or SASL_SSL), if it wants a login SASL_PLAINTEXT",
    "SASL_PLAINTEXT": "if it is a TLS listener use SASL_SSL",
    "SSL": (
        f"does it require a client certificate ({PREFIX}BROKER_SSL_CERTFILE and {PREFIX}BROKER_SSL_KEYFILE; "
        "one was refused if set), or a SASL login (SASL_SSL)?"
    ),
    "SASL_SSL": (
        f"does it require a client certificate ({PREFIX}BROKER_SSL_CERTFILE and {PREFIX}BROKER_SSL_KEYFILE; "
        "one was refused if set), or no SASL login (SSL)?"
    ),
}


def _after_connect(settings: Settings, failure: BaseException, timeout: float) -> str:
    # Every broker accepted a connection a moment ago: the client failed on something else.
    servers = bootstrap_servers(settings.broker)
    if isinstance(failure, asyncio.TimeoutError | kafka_errors.KafkaTimeoutError):
        return f"the brokers at {servers} accept connections but did not answer within {timeout:g} s"
    return f"the brokers at {servers} accept connections but the client failed: {_reason(failure)}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
