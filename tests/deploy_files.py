"""The files under deploy/ as the deployment tests read them (tests/test_deploy.py and
tests/test_prometheus.py): paths, the rules of rules.yml and the dashboard's queries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "ingest-worker.json"
JOB = "ingest-worker"  # the scrape job the rules and the dashboard select on


def load_yaml(path: Path) -> Any:
    """One YAML document."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    """Every recording and alert rule of deploy/prometheus/rules.yml, groups flattened."""
    return [r for g in load_yaml(PROMETHEUS / "rules.yml")["groups"] for r in g["rules"]]


def rule_name(rule: dict[str, Any]) -> str:
    """The recorded series' name of a recording rule, the alert's name of an alert rule."""
    return str(rule.get("record") or rule["alert"])


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, panels inside collapsed rows included."""
    out = []
    stack = list(json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"])
    while stack:
        panel = stack.pop(0)
        stack.extend(panel.get("panels", []))
        out.extend((panel["title"], t["expr"]) for t in panel.get("targets", []))
    return out
