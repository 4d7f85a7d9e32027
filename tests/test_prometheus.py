"""The dashboard and the rules work against a real Prometheus scraping a real worker.

One module-scoped stack: the embedded Kafka-protocol broker, `ingest-worker run` as a child
process on fresh topics, and Debian's `prometheus` binary on a free loopback port. Prometheus
uses deploy/prometheus/prometheus.yml with the worker's port as the target and 1 s scrape and
rule intervals, and loads deploy/prometheus/rules.yml (group intervals lowered to 1 s). The
sample pages go through the worker, then every query is evaluated through `/api/v1/query`.

What "works" means, per kind of expression:

- Dashboard panel queries (`$__rate_interval` replaced by `1m`) and recording-rule
  expressions must evaluate without error and return at least one series; each recorded
  series must also exist under its recorded name, which proves Prometheus evaluated the rule.
  A quantile over buckets with no observations returns a NaN series: that still counts, since
  the selectors matched and the panel shows "no value" honestly.
- Alert expressions are legitimately empty while the worker is healthy (`up == 0`), so
  requiring them to return series would require breaking the worker. Instead each alert is
  evaluated with every comparison against a number turned into a `bool` comparison
  (`up == 0` -> `up == bool 0`): it then returns a 0/1 series wherever its operands exist, so
  an empty result means a selector matches nothing or `and`/`on` finds no matching labels,
  the failure modes a threshold would hide. In addition `/api/v1/rules` must report every
  rule's health as "ok", and the alerts that describe an outage (worker down, stalled) must
  be inactive while the worker demonstrably processes pages. Whether alerts fire in the
  situations they describe is tested with `promtool test rules` (tests/test_deploy.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from conftest import isolated_settings
from deploy_files import JOB, PROMETHEUS, dashboard_queries, load_yaml, rule_name, rules
from prometheus_client import CollectorRegistry

from worker.kafka.embedded import EmbeddedBroker, free_port
from worker.kafka.lag import LagMonitor
from worker.runtime.metrics import Metrics
from worker.settings import Settings

pytestmark = pytest.mark.integration

GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1s", "$__range": "5m"}


# --- Prometheus harness ----------------------------------------------------------------------


class Prometheus:
    """Debian's `prometheus` on a free loopback port, with a config built from deploy/prometheus."""

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: apt-get install -y prometheus"  # never skip
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self.config_path = self._write_config(targets)
        self.process: subprocess.Popen[bytes] | None = None

    def _write_config(self, targets: list[str]) -> Path:
        config = load_yaml(PROMETHEUS / "prometheus.yml")
        config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
        rule_file = load_yaml(PROMETHEUS / "rules.yml")
        for group in rule_file["groups"]:
            group["interval"] = "1s"
        (self.workdir / "rules.yml").write_text(yaml.safe_dump(rule_file, sort_keys=False))
        config["rule_files"] = [str(self.workdir / "rules.yml")]
        jobs = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
        assert jobs, f"deploy/prometheus/prometheus.yml has no {JOB} job"
        jobs[0]["static_configs"] = [{"targets": targets}]
        config["scrape_configs"] = jobs
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, timeout: float = 30.0) -> Prometheus:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited at start-up:\n{self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r,
            ):
                if r.status == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"prometheus was not ready within {timeout:g} s:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data`, raises on an error status."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:  # 400/422: a bad query; the body says why
            body = json.load(exc)
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; the result as a list of series (a scalar becomes one series)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def wait_for(self, expr: str, timeout: float = 60.0, predicate: Any = bool) -> list[dict[str, Any]]:
        """Poll `expr` until `predicate(result)` holds; returns the last result."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while True:
            result = self.query(expr)
            if predicate(result) or time.monotonic() > deadline:
                return result
            time.sleep(0.5)


class QueryError(Exception):
    """Prometheus rejected or failed a query."""


def value(series: dict[str, Any]) -> float:
    return float(series["value"][1])


# --- expressions -----------------------------------------------------------------------------


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables replaced) for every dashboard query."""
    out = []
    for title, expr in dashboard_queries():
        for name, replacement in GRAFANA_VARIABLES.items():
            expr = expr.replace(name, replacement)
        assert "$" not in expr, f"{title}: unknown Grafana variable in {expr}"
        out.append((title, expr))
    return out


_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(\s*)(?!\s*bool\b)(?=[\s(]*[-+]?(?:\d|Inf|NaN))")


def without_thresholds(expr: str) -> str:
    """`a > 5 and b == 0` -> `a > bool 5 and b == bool 0`: every number comparison keeps its series.

    Label matchers (`{job!="x"}`) and strings are left alone.
    """
    protected: list[str] = []

    def hide(match: re.Match[str]) -> str:
        protected.append(match.group(0))
        return f"\x00{len(protected) - 1}\x00"

    hidden = re.sub(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}', hide, expr)
    hidden = _COMPARISON.sub(lambda m: f"{m.group(1)} bool{m.group(2) or ' '}", hidden)
    return re.sub(r"\x00(\d+)\x00", lambda m: protected[int(m.group(1))], hidden)


# --- the stack -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kafka(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The session's embedded broker when tests/conftest.py provides one, else our own."""
    try:
        shared = request.getfixturevalue("broker")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        yield shared
        return
    with EmbeddedBroker() as own:
        yield own


def _worker_settings(bootstrap: str, tmp: Path) -> Settings:
    return isolated_settings(f"kafka://{bootstrap}", "prometheus", tmp / "data")


def _scrape(settings: Settings) -> dict[str, float]:
    """The worker's own /metrics as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, number = line.rpartition(" ")
            out[key] = float(number)
    return out


@pytest.fixture(scope="module")
def stack(kafka: Any) -> Iterator[tuple[Settings, Prometheus, int]]:
    """A worker that has processed every sample page, and a Prometheus scraping it."""
    from worker.cli.sample_pages import load_samples
    from worker.kafka.clients import produce
    from worker.kafka.topics import ensure_topics
    from worker.runtime.worker_process import WorkerProcess

    samples = load_samples()
    with tempfile.TemporaryDirectory(prefix="pytest-prometheus-") as tmp_name:
        tmp = Path(tmp_name)
        settings = _worker_settings(kafka.bootstrap, tmp)
        asyncio.run(ensure_topics(settings))
        prometheus = Prometheus(tmp, [f"127.0.0.1:{settings.metrics_port}"])
        with WorkerProcess(settings, tmp / "worker.log") as worker:
            prometheus.start()
            try:
                # A first scrape before any page: a counter already at its total when first scraped
                # never shows a rate, and the recording rules' test would wait for one in vain.
                assert prometheus.wait_for("up == 1", timeout=60), prometheus.log_tail()
                for sample in samples:  # one at a time: the wire copy must follow its original
                    asyncio.run(produce(settings, settings.input_topic, [(sample.key, sample.value)]))
                    time.sleep(0.2)
                deadline = time.monotonic() + 180
                accounted = 0.0
                while time.monotonic() < deadline:
                    scraped = _scrape(settings)
                    accounted = sum(
                        v
                        for k, v in scraped.items()
                        if k.startswith(
                            (
                                "ingest_articles_total{",
                                "ingest_duplicates_total{",
                                "ingest_dead_letters_total{",
                            )
                        )
                    )
                    if accounted >= len(samples):
                        break
                    time.sleep(0.5)
                assert accounted >= len(samples), (
                    f"worker accounted for {accounted} of {len(samples)}:\n{worker.log_tail()}"
                )
                yield settings, prometheus, len(samples)
            except BaseException:
                print("--- worker log ---\n" + worker.log_tail() + "\n--- prometheus log ---\n" + prometheus.log_tail())
                raise
            finally:
                prometheus.stop()


@pytest.fixture
def rules_ran(stack: tuple[Settings, Prometheus, int]) -> Prometheus:
    """The stack's Prometheus once the recording rules ran on at least two scrapes of data, the
    last of them after every page was cleaned (a page is counted as consumed before it is
    cleaned: a rule evaluation between the two has a consumption rate and no clean latency)."""
    _, prometheus, _ = stack
    result = prometheus.wait_for("ingest:pages_consumed:rate5m > 0", timeout=60)
    assert result, f"recording rules produced nothing:\n{prometheus.log_tail()}"
    cleaned = prometheus.wait_for(
        'stage_quantile:ingest_stage_seconds:histogram_quantile{stage="clean", quantile="0.5"} > 0', timeout=60
    )
    assert cleaned, f"no clean latency recorded:\n{prometheus.log_tail()}"
    return prometheus


# --- tests -----------------------------------------------------------------------------------


def test_prometheus_scrapes_the_worker(stack: tuple[Settings, Prometheus, int]) -> None:
    settings, prometheus, pages = stack
    up = prometheus.wait_for(f'up{{job="{JOB}"}} == 1')
    assert up, f"the worker target is not up: {prometheus.api('targets')}"
    consumed = prometheus.wait_for(
        f'sum(ingest_pages_consumed_total{{job="{JOB}", topic="{settings.input_topic}"}})',
        predicate=lambda r: r and value(r[0]) >= pages,
    )
    assert consumed and value(consumed[0]) == pages
    # The lag monitor runs inside the worker against the embedded broker: every partition of
    # the input topic is reported, and drops to 0 once the pages are committed.
    lag = prometheus.wait_for(
        f'ingest_consumer_lag_messages{{job="{JOB}", topic="{settings.input_topic}"}}',
        predicate=lambda r: len(r) == settings.topic_partitions and all(value(s) == 0 for s in r),
    )
    assert sorted(s["metric"]["partition"] for s in lag) == [str(p) for p in range(settings.topic_partitions)], lag
    assert all(value(s) == 0 for s in lag), lag

    # Every page is accounted for exactly once, and the counters agree with each other.
    def total(expr: str) -> float:
        result = prometheus.query(f"sum({expr})")
        return value(result[0]) if result else -1.0

    # A page is counted as consumed before its outcome: wait for a scrape after the last outcome.
    outcomes = prometheus.wait_for(
        "sum(ingest_articles_total) + sum(ingest_duplicates_total) + sum(ingest_dead_letters_total)",
        predicate=lambda r: r and value(r[0]) >= pages,
    )
    assert outcomes and value(outcomes[0]) == pages, outcomes
    assert total('ingest_stage_seconds_count{stage="decode"}') == pages
    assert total('ingest_dead_letters_total{reason="invalid_json"}') >= 1  # the malformed sample
    # An article is counted before its event is sent and acknowledged: wait for the two to meet.
    assert prometheus.wait_for(
        'sum(ingest_events_published_total{event_type="article.v1"}) == sum(ingest_articles_total)',
        timeout=30,
    ), "published article events never matched the articles counted"
    assert total("ingest_end_to_end_seconds_count") >= total("ingest_articles_total") > 0
    build = prometheus.query(f'ingest_build_info{{job="{JOB}"}}')
    assert build and build[0]["metric"]["version"]


def test_every_dashboard_query_returns_series(rules_ran: Prometheus) -> None:
    prometheus = rules_ran
    failures = [
        f"panel {title!r}: {problem}" for title, expr in panel_queries() if (problem := _no_series(prometheus, expr))
    ]
    assert not failures, "\n".join(failures)
    # Real numbers, not only series: the pages were cleaned, so the clean stage has a p50.
    clean = prometheus.query('stage_quantile:ingest_stage_seconds:histogram_quantile{stage="clean", quantile="0.5"}')
    assert clean and not math.isnan(value(clean[0])) and value(clean[0]) > 0, clean


def test_every_rule_is_healthy_and_returns_series(rules_ran: Prometheus) -> None:
    prometheus = rules_ran
    failures = []
    for rule in rules():
        name = rule_name(rule)
        expr = rule["expr"] if "record" in rule else without_thresholds(rule["expr"])
        problem = _no_series(prometheus, expr)
        if problem:
            failures.append(f"{name}: {problem}")
            continue
        if "record" in rule and not prometheus.wait_for(rule["record"], timeout=20):
            failures.append(f"{name}: the recorded series does not exist")

    loaded = {r["name"]: r for g in prometheus.api("rules")["groups"] for r in g["rules"]}
    for name in map(rule_name, rules()):
        if name not in loaded:
            failures.append(f"{name}: not loaded by Prometheus")
        elif loaded[name]["health"] != "ok":
            failures.append(f"{name}: health {loaded[name]['health']}: {loaded[name].get('lastError')}")
    for outage in ("IngestWorkerDown", "IngestStalled"):
        if loaded.get(outage, {}).get("state") != "inactive":
            failures.append(f"{outage} is {loaded.get(outage, {}).get('state')} while the worker works")
    assert not failures, "\n".join(failures)


def _no_series(prometheus: Prometheus, expr: str) -> str | None:
    """Why `expr` fails the proof (a query error or no series), or None when it returns series."""
    try:
        result = prometheus.wait_for(expr, timeout=20)
    except QueryError as exc:
        return f"{expr}: {exc}"
    return None if result else f"{expr}: no series"


@pytest.mark.parametrize(
    "expr, expected",
    [
        ('up{job="ingest-worker"} == 0', 'up{job="ingest-worker"} == bool 0'),
        ("a > 0.05\nand b > 0.1", "a > bool 0.05\nand b > bool 0.1"),
        ('x{job!="a"} >= 1e3 and y < -1', 'x{job!="a"} >= bool 1e3 and y < bool -1'),
        ("a > bool 1", "a > bool 1"),
        ("a > b", "a > b"),
    ],
)
def test_without_thresholds(expr: str, expected: str) -> None:
    assert without_thresholds(expr) == expected


# --- the lag monitor against the broker ------------------------------------------------------


@contextlib.asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit (it is no async context manager itself)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def test_lag_monitor_reports_log_end_minus_committed(kafka: Any) -> None:
    """Committed offsets, uncommitted partitions and a missing topic, on the real broker."""
    topic, group = f"pytest_lag_{uuid.uuid4().hex[:8]}", f"pytest_lag_{uuid.uuid4().hex[:8]}"
    async with admin_client(kafka.bootstrap) as admin:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    async with AIOKafkaProducer(bootstrap_servers=kafka.bootstrap) as producer:
        for i in range(10):
            await producer.send_and_wait(topic, b"x", partition=0 if i < 7 else 1)
    # The group commits 5 of the 7 messages of partition 0 and nothing on partition 1.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False)
    async with consumer:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await consumer.commit({TopicPartition(topic, 0): 5})

    metrics = Metrics.create(CollectorRegistry())
    missing = f"{topic}_missing"
    monitor = LagMonitor(Settings(broker=f"kafka://{kafka.bootstrap}", app_id=group), [topic, missing], metrics)
    try:
        lags = await monitor.poll_once()
    finally:
        await monitor.stop()
    assert lags == {(topic, 0): 2, (topic, 1): 3}
    assert metrics.registry.get_sample_value("ingest_consumer_lag_messages", {"topic": topic, "partition": "1"}) == 3
    assert metrics.registry.get_sample_value("ingest_consumer_lag_poll_errors_total") == 0
    # Polling must not create the missing topic (auto-creation on metadata requests).
    async with admin_client(kafka.bootstrap) as admin:
        assert missing not in await admin.list_topics()


async def test_lag_monitor_keeps_last_values_when_the_broker_is_gone() -> None:
    metrics = Metrics.create(CollectorRegistry())
    settings = Settings(broker=f"kafka://127.0.0.1:{free_port()}", app_id="group")
    monitor = LagMonitor(settings, ["topic"], metrics, request_timeout_ms=1000)
    monitor._last = {("topic", 0): 7}  # as if an earlier poll had succeeded
    assert await monitor.poll_once() == {("topic", 0): 7}
    assert metrics.registry.get_sample_value("ingest_consumer_lag_poll_errors_total") == 1
    task = asyncio.create_task(monitor.run(interval_seconds=0.05))
    await asyncio.sleep(0.3)
    await monitor.stop()
    assert task.done() and task.exception() is None

