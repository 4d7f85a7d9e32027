"""The one place that reads the environment.

Every setting is an `INGEST_`-prefixed variable; `Settings.from_env()` reads them once into a
frozen object that is passed to everything else. Faust gets each value explicitly, so Faust's
own environment variables never silently win. Secrets are `Secret` and print masked.

Each field is declared with `setting(...)`: its help text and the values it takes (a range, a
list of choices, or a kind such as a topic name or a broker address). Every value is checked
when the object is built, from the environment or in code, and a wrong one raises
`SettingsError` naming the variable, the value and what it should be.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from worker.document import PAGE_KINDS

PREFIX = "INGEST_"


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_FORMATS = ("text", "json")
DEDUP_STORES = ("rocksdb", "memory")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
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
# Kafka's rule for topic names (and what the worker accepts as an app id, which prefixes topics).
LEGAL_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


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


def setting(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] = (),
    kind: str = "",
) -> Any:
    """A settings field: its default, a line of help, and the values it takes.

    `minimum`/`maximum` bound a number (inclusive), `above` bounds it exclusively; `choices` lists
    the allowed words (matched in any case); `kind` is "topic" (a legal Kafka topic name), "name"
    (not empty), "broker" (host:port addresses) or "page_kinds" (page kinds, comma-separated).
    """
    rules = {"help": help, "minimum": minimum, "maximum": maximum, "above": above, "choices": choices, "kind": kind}
    return field(default=default, metadata=rules)


@dataclass(frozen=True, slots=True)
class Settings:
    """Worker configuration; each field is read from `INGEST_<FIELD NAME IN CAPITALS>`.

    Each field says what it is and what values it takes (`setting(...)`): `from_env` and
    `__post_init__` check them, and `ingest-worker run --help` lists them from here.
    """

    broker: str = setting(
        "kafka://localhost:9092", "bootstrap servers, host:port (kafka://h1:9092;kafka://h2:9092 for several)",
        kind="broker",
    )
    app_id: str = setting("ingest-worker", "consumer group, and prefix of the worker's internal topics", kind="topic")
    input_topic: str = setting("pages.raw", "topic the raw pages arrive on", kind="topic")
    articles_topic: str = setting("articles.v1", "topic of the article.v1 events", kind="topic")
    duplicates_topic: str = setting("articles.duplicates.v1", "topic of the duplicate.v1 events", kind="topic")
    clusters_topic: str = setting("articles.clusters.v1", "topic of the cluster.v1 events (compacted)", kind="topic")
    dead_letter_topic: str = setting("pages.deadletter.v1", "topic of the dead_letter.v1 events", kind="topic")
    skipped_topic: str = setting("pages.skipped.v1", "topic of the skipped.v1 records: pages of a kind not published",
                                 kind="topic")
    # The default keeps stories (news, blog posts, reviews, guides): section fronts, tag pages, shop
    # and product pages, forums, docs and service pages are not what a news consumer indexes.
    article_page_types: str = setting(
        "article", "page kinds published as articles, comma-separated, of " + ", ".join(PAGE_KINDS)
        + "; an HTML page of another kind ends as a skipped.v1 record", kind="page_kinds",
    )
    # Two: one worker on the embedded broker ran 1.5-2.4x faster than with four (bench/throughput.md);
    # a group of more workers needs at least one partition each (deploy/k8s sets four).
    topic_partitions: int = setting(2, "partitions of the topics the worker creates (not the 1-partition dedup hop)",
                                    minimum=1)
    topic_replicas: int = setting(1, "replication factor of the topics the worker creates", minimum=1)
    max_page_bytes: int = setting(5_000_000, "a larger raw page is dead-lettered as too_large", minimum=1)
    page_timeout_seconds: float = setting(30.0, "time limit of one page in one step (timeout dead letter)", above=0)
    workers: int = setting(0, "process-pool size; 0 = one per CPU the container's quota allows", minimum=0)
    # A pool process is replaced after this many calls (0 = never). A new process loads the entity
    # models again (about 3 s of CPU): every 500 calls that was over a tenth of the pool's CPU.
    pool_max_tasks_per_process: int = setting(10_000, "a pool process is replaced after this many calls; 0 = never",
                                              minimum=0)
    spacy_model: str = setting("en_core_web_sm", "spaCy model of the entity step", kind="name")
    entity_batch_size: int = setting(16, "articles tagged in one call of the entity step", minimum=1)
    dedup_window_days: float = setting(7.0, "how far back in event time a page is matched against", above=0)
    # rocksdb: under data_dir, a restart on the same volume reads it and replays only the changelog's
    # tail; memory: rebuilt from the whole changelog at every start (tests, short runs).
    dedup_store: str = setting("rocksdb", "where the dedup owner keeps its table: rocksdb or memory",
                               choices=DEDUP_STORES)
    dedup_cache_mb: int = setting(256, "memory the dedup table reads through (MB): RocksDB's block cache, a quarter "
                                  "of it the hot entries", minimum=8)
    metrics_port: int = setting(9464, "HTTP port of /metrics, /healthz, /readyz", minimum=1, maximum=65535)
    web_host: str = setting("0.0.0.0", "address the metrics port listens on", kind="name")
    data_dir: str = setting("/tmp/ingest-worker", "directory for Faust's local state", kind="name")
    fetch_wait_ms: int = setting(100, "longest wait of a consumer fetch for new messages", minimum=0)
    # 6 s, the least a Kafka broker accepts by default (group.min.session.timeout.ms): the dedup
    # owner's standby, or the owner restarted, decides again within seconds (bench/dedup_scale.py).
    session_timeout_seconds: float = setting(6.0, "a dead worker's partitions move after this long", above=0)
    broker_unusable_seconds: float = setting(120.0, "a broker unusable this long stops the worker (non-zero exit)",
                                             above=0)
    broker_security_protocol: str = setting("PLAINTEXT", "how to talk to the broker", choices=SECURITY_PROTOCOLS)
    broker_sasl_mechanism: str = setting("PLAIN", "SASL mechanism (SASL_* protocols only)", choices=SASL_MECHANISMS)
    broker_username: str = setting("", "SASL username")
    broker_password: Secret = setting(Secret(""), "SASL password (never printed)")
    broker_ssl_cafile: str = setting("", "CA bundle (PEM) the broker's certificate must chain to; empty = system CAs")
    broker_ssl_certfile: str = setting("", "client certificate (PEM) when the broker requires mutual TLS")
    broker_ssl_keyfile: str = setting("", "its private key (PEM, unencrypted); empty = inside the certfile")
    log_level: str = setting("WARNING", "DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)", choices=LOG_LEVELS)
    log_format: str = setting("text", "text, or json: one JSON object per line for log pipelines", choices=LOG_FORMATS)

    def __post_init__(self) -> None:
        if isinstance(self.broker_password, str) and not isinstance(self.broker_password, Secret):
            object.__setattr__(self, "broker_password", Secret(self.broker_password))  # stays masked
        for f in fields(self):
            value, problem = _check(f, getattr(self, f.name))
            if problem:
                explained = f" ({f.metadata['help']})" if f.metadata.get("help") else ""
                raise SettingsError(f"{PREFIX}{f.name.upper()}={_shown(value)} {problem}{explained}")
            object.__setattr__(self, f.name, value)
        problem = broker_security_problem(self)
        if problem:
            raise SettingsError(problem)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `INGEST_*` variables (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _convert(f.name, raw, _default(f))
        return cls(**values)

    @classmethod
    def unknown_variables(cls, environ: Mapping[str, str] | None = None) -> list[str]:
        """A warning for each `INGEST_*` variable that is no setting (a typo is otherwise silent),
        naming the nearest setting when there is one."""
        env = os.environ if environ is None else environ
        known = [PREFIX + f.name.upper() for f in fields(cls)]
        warnings = []
        for name in sorted(env):
            if not name.startswith(PREFIX) or name in known:
                continue
            nearest = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            hint = f"did you mean {nearest[0]}?" if nearest else "see `ingest-worker run --help` for the settings"
            warnings.append(f"{name} is not a setting and is ignored; {hint}")
        return warnings

    @classmethod
    def help_rows(cls) -> list[tuple[str, str, str]]:
        """(variable, default, help) for every setting, in declaration order."""
        return [(PREFIX + f.name.upper(), _text(_default(f)), f.metadata.get("help", "")) for f in fields(cls)]

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
        return {f.name: _text(getattr(self, f.name)) for f in fields(self)}

    def to_environ(self) -> dict[str, str]:
        """The settings as `INGEST_*` variables (secrets revealed), to configure a child process."""
        return {
            PREFIX + f.name.upper(): (v.reveal() if isinstance(v, Secret) else _text(v))
            for f in fields(self)
            for v in [getattr(self, f.name)]
        }

    @property
    def published_page_types(self) -> frozenset[str]:
        """The page kinds published as articles (`INGEST_ARTICLE_PAGE_TYPES`)."""
        return frozenset(k.strip() for k in self.article_page_types.split(",") if k.strip())

    @property
    def pool_size(self) -> int:
        """Process-pool size: the configured number, or one per CPU the container may use."""
        from worker.runtime.cpus import available_cpus

        return self.workers if self.workers > 0 else available_cpus()


def child_environment(settings: Settings | None = None, **extra_defaults: str) -> dict[str, str]:
    """The environment for a child process: this process's variables with `INGEST_*` ones replaced
    by `settings` (when given), and `extra_defaults` for variables not set here (e.g. `RUST_LOG`)."""
    env = {k: v for k, v in os.environ.items() if settings is None or not k.startswith(PREFIX)}
    for name, value in extra_defaults.items():
        env.setdefault(name, value)
    if settings is not None:
        env.update(settings.to_environ())
    return env


def log_reporting_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(log format, log level) as well as they can be read, even when other settings are wrong:
    how a command reports the setting that stops it."""
    env = os.environ if environ is None else environ
    log_format = env.get(f"{PREFIX}LOG_FORMAT", "").strip().lower()
    level = env.get(f"{PREFIX}LOG_LEVEL", "").strip().upper()
    defaults = Settings()
    return (
        log_format if log_format in LOG_FORMATS else defaults.log_format,
        level if level in LOG_LEVELS else defaults.log_level,
    )


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


def _text(value: Any) -> str:
    """A value as its environment variable writes it (a list of words: comma-separated)."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _shown(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


def _default(f: Any) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


def _convert(name: str, raw: str, default: Any) -> Any:
    """The environment's text as the type of the field's default."""
    what = {bool: "true or false", int: "a whole number", float: "a number"}
    try:
        if isinstance(default, Secret):
            return Secret(raw)
        if isinstance(default, bool):
            words = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False,
                     "off": False}
            return words[raw.strip().lower()]
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except (ValueError, KeyError) as exc:
        kind = what.get(type(default), type(default).__name__)
        raise SettingsError(f"{PREFIX}{name.upper()}={raw!r} is not {kind}") from exc
    return raw


def _check(f: Any, value: Any) -> tuple[Any, str]:
    """The value as kept (choices in their canonical case) and "" , or what is wrong with it."""
    rules, default = f.metadata, _default(f)
    expected = type(default)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(default, str):
        expected = str
    if not isinstance(value, expected) or (isinstance(value, bool) and not isinstance(default, bool)):
        return value, f"is a {type(value).__name__}, not a {expected.__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return value, "is not a finite number"
    low, high, above = rules.get("minimum"), rules.get("maximum"), rules.get("above")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if above is not None and not value > above:
            return value, f"is out of range: it must be above {above:g}"
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low:g} to {high:g}" if low is not None and high is not None else (
                f"at least {low:g}" if low is not None else f"at most {high:g}")
            return value, f"is out of range: it must be {bounds}"
    choices = rules.get("choices") or ()
    if choices:
        matched = [choice for choice in choices if choice.lower() == str(value).strip().lower()]
        if not matched:
            return value, f"is not one of {', '.join(choices)}"
        value = matched[0]
    kind = rules.get("kind", "")
    if kind == "name" and not value.strip():
        return value, "is empty"
    if kind == "topic" and not LEGAL_NAME.fullmatch(value):
        return value, "is not usable in a topic name: use 1 to 249 of the characters A-Z a-z 0-9 . _ -"
    if kind == "broker":
        problem = broker_address_problem(value)
        if problem:
            return value, problem
    if kind == "page_kinds":
        named = [k.strip().lower() for k in value.split(",") if k.strip()]
        unknown = [k for k in named if k not in PAGE_KINDS]
        if unknown or not named:
            return value, f"must name one or more of {', '.join(PAGE_KINDS)}, comma-separated" + (
                f" ({', '.join(unknown)} is not one)" if unknown else "")
        value = ",".join(dict.fromkeys(named))
    return value, ""


def broker_address_problem(url: str) -> str:
    """Why `url` is no list of broker addresses, or "" when it is one."""
    example = "give host:port, e.g. kafka://broker1:9092 (several separated by ';' or ',')"
    parts = [part.strip() for part in url.replace(";", ",").split(",") if part.strip()]
    if not parts:
        return f"names no broker: {example}"
    for part in parts:
        scheme, _, address = part.rpartition("://")
        if scheme and scheme.lower() not in ("kafka", "aiokafka"):
            return f"has the scheme {scheme + '://'!r}, not kafka://: {example}"
        host, colon, port = address.rstrip("/").rpartition(":")
        if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            return f"is not a broker address ({part!r} has no host:port with a port from 1 to 65535): {example}"
    return ""
