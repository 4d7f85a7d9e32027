"""The one place that reads the environment.

Every setting is an `INGEST_`-prefixed variable; `Settings.from_env()` reads them once into a
frozen object that is passed to everything else. Faust gets each value explicitly, so Faust's
own environment variables never silently win. Secrets are `Secret` and print masked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

PREFIX = "INGEST_"


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_FORMATS = ("text", "json")
# How the worker authenticates to the broker and encrypts the connection.
BROKER_SECURITY_FIELDS = (
    "broker_security_protocol",
    "broker_sasl_mechanism",
    "broker_username",
    "broker_password",
    "broker_ssl_cafile",
    "broker_ssl_certfile",
    "broker_ssl_keyfile",
)


class SettingsError(ValueError):
    """A setting, or a combination of settings, the worker cannot run with; the message says which."""


class Secret(str):
    """A string that never shows its value when printed or logged."""

    def __repr__(self) -> str:
        return "Secret('**********')" if self else "Secret('')"

    def __str__(self) -> str:
        return "**********" if self else ""

    def reveal(self) -> str:
        """The real value, for the one place that needs it (the Kafka client)."""
        return str.__str__(self)


@dataclass(frozen=True, slots=True)
class Settings:
    """Worker configuration; each field is read from `INGEST_<FIELD NAME IN CAPITALS>`."""

    broker: str = "kafka://localhost:9092"
    app_id: str = "ingest-worker"
    input_topic: str = "pages.raw"
    articles_topic: str = "articles.v1"
    duplicates_topic: str = "articles.duplicates.v1"
    clusters_topic: str = "articles.clusters.v1"
    dead_letter_topic: str = "pages.deadletter.v1"
    # Two: one worker on the embedded broker ran 1.5-2.4x faster than with four (bench/throughput.md);
    # a group of more workers needs at least one partition each (deploy/k8s sets four).
    topic_partitions: int = 2
    topic_replicas: int = 1
    max_page_bytes: int = 5_000_000
    page_timeout_seconds: float = 30.0
    workers: int = 0  # process-pool size; 0 = one per CPU the container's quota allows
    # A pool process is replaced after this many calls (0 = never). A new process loads the entity
    # models again (about 3 s of CPU): every 500 calls that was over a tenth of the pool's CPU.
    pool_max_tasks_per_process: int = 10_000
    spacy_model: str = "en_core_web_sm"
    entity_batch_size: int = 16
    dedup_window_days: float = 7.0
    metrics_port: int = 9464  # HTTP: /metrics, /healthz, /readyz
    web_host: str = "0.0.0.0"
    data_dir: str = "/tmp/ingest-worker"
    fetch_wait_ms: int = 100
    session_timeout_seconds: float = 30.0  # a dead worker's partitions move after this long
    broker_unusable_seconds: float = 120.0  # a broker unreachable this long stops the worker (non-zero)
    broker_security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    broker_sasl_mechanism: str = "PLAIN"  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (SASL_* only)
    broker_username: str = ""
    broker_password: Secret = field(default_factory=lambda: Secret(""))
    broker_ssl_cafile: str = ""  # CA bundle (PEM) the broker's certificate must chain to; empty = system CAs
    broker_ssl_certfile: str = ""  # client certificate (PEM) when the broker requires mutual TLS
    broker_ssl_keyfile: str = ""  # its private key (PEM, unencrypted); empty = inside the certfile
    log_level: str = "WARNING"
    log_format: str = "text"  # text, or json: one JSON object per line for log pipelines

    def __post_init__(self) -> None:
        if not isinstance(self.broker_password, Secret):  # a plain str given in code stays masked
            object.__setattr__(self, "broker_password", Secret(self.broker_password))
        problem = broker_security_problem(self)
        if problem:
            raise SettingsError(problem)
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"{PREFIX}LOG_FORMAT={self.log_format!r} is not one of {', '.join(LOG_FORMATS)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `INGEST_*` variables (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None:
                continue
            default = getattr(cls(), f.name)
            values[f.name] = _convert(f.name, raw, default)
        return cls(**values)

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed (command-line flags, tests)."""
        return replace(self, **changes)

    def plaintext(self, broker: str) -> Settings:
        """A copy that connects to `broker` in plaintext, with no login and no TLS files.

        For the project's own embedded broker, which knows no TLS or SASL whatever the
        environment says about the broker the worker runs against.
        """
        defaults = Settings()
        return replace(self, broker=broker, **{name: getattr(defaults, name) for name in BROKER_SECURITY_FIELDS})

    def describe(self) -> dict[str, str]:
        """Every setting as text, secrets masked, for logs and `--help` tables."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)}

    def to_environ(self) -> dict[str, str]:
        """The settings as `INGEST_*` variables (secrets revealed), to configure a child process."""
        return {
            PREFIX + f.name.upper(): (v.reveal() if isinstance(v, Secret) else str(v))
            for f in fields(self)
            for v in [getattr(self, f.name)]
        }

    @property
    def pool_size(self) -> int:
        """Process-pool size: the configured number, or one per CPU the container may use."""
        from worker.runtime.cpus import available_cpus

        return self.workers if self.workers > 0 else available_cpus()


def broker_security_problem(settings: Settings) -> str:
    """Why the broker security settings cannot work together, or "" when they can."""
    protocol = settings.broker_security_protocol
    if protocol not in SECURITY_PROTOCOLS:
        return f"{PREFIX}BROKER_SECURITY_PROTOCOL={protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}"
    sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
    if sasl:
        if settings.broker_sasl_mechanism not in SASL_MECHANISMS:
            return (
                f"{PREFIX}BROKER_SASL_MECHANISM={settings.broker_sasl_mechanism!r} is not one of "
                f"{', '.join(SASL_MECHANISMS)}"
            )
        if not settings.broker_username or not settings.broker_password:
            return (
                f"{PREFIX}BROKER_SECURITY_PROTOCOL={protocol} authenticates with SASL: set "
                f"{PREFIX}BROKER_USERNAME and {PREFIX}BROKER_PASSWORD"
            )
    elif settings.broker_username or settings.broker_password:
        return (
            f"{PREFIX}BROKER_USERNAME/{PREFIX}BROKER_PASSWORD are set but {PREFIX}BROKER_SECURITY_PROTOCOL="
            f"{protocol} does not authenticate: use SASL_SSL (or SASL_PLAINTEXT), or unset them"
        )
    files = {
        "CAFILE": settings.broker_ssl_cafile,
        "CERTFILE": settings.broker_ssl_certfile,
        "KEYFILE": settings.broker_ssl_keyfile,
    }
    if not tls and any(files.values()):
        named = ", ".join(f"{PREFIX}BROKER_SSL_{name}" for name, value in files.items() if value)
        return f"{named} set but {PREFIX}BROKER_SECURITY_PROTOCOL={protocol} does not use TLS: use SSL or SASL_SSL"
    if settings.broker_ssl_keyfile and not settings.broker_ssl_certfile:
        return f"{PREFIX}BROKER_SSL_KEYFILE is set without {PREFIX}BROKER_SSL_CERTFILE, the certificate it belongs to"
    return ""


def _convert(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, Secret):
            return Secret(raw)
        if isinstance(default, bool):
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{PREFIX}{name.upper()}={raw!r} is not a valid {type(default).__name__}") from exc
    return raw
