"""The deployment files against the real schemas of the tools that read them.

- deploy/k8s core kinds (ConfigMap, Secret, Service, StatefulSet, HorizontalPodAutoscaler): the Kubernetes
  OpenAPI schemas shipped offline by `kubernetes-validate`, strict (unknown fields are errors), for
  the oldest Kubernetes we support and the newest the package knows.
- PodMonitor and PrometheusRule are prometheus-operator CRDs, absent from the Kubernetes schemas:
  they are checked against JSON Schemas of the prometheus-operator v0.80.1 CRDs vendored in
  tests/fixtures (crd-schemas.README.md says where they come from), strict as well.
- docker-compose.yml: the Compose Specification's JSON Schema (tests/fixtures/compose-spec.json).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from conftest import FIXTURES, ROOT

K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
CRD_KINDS = ("PodMonitor", "PrometheusRule")


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def strict(schema: Any) -> Any:
    """The schema with unknown properties refused wherever properties are declared."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema = {**schema, "additionalProperties": False}
        return {key: strict(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [strict(value) for value in schema]
    return schema


def check_crd(doc: dict[str, Any]) -> None:
    """Fail unless the prometheus-operator resource matches its CRD's schema."""
    schema = json.loads((FIXTURES / f"crd-{doc['kind'].lower()}.schema.json").read_text())
    jsonschema.Draft202012Validator(strict(schema)).validate(doc)


def check_compose(doc: dict[str, Any]) -> None:
    schema = json.loads((FIXTURES / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(doc)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_match_the_kubernetes_schemas(version: str) -> None:
    checked = []
    for path, doc in manifests():
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name} {doc['kind']} (Kubernetes {version}): {exc.message} at {list(exc.path)}")
        checked.append(doc["kind"])
    assert sorted(checked) == ["ConfigMap", "HorizontalPodAutoscaler", "Secret", "Service", "StatefulSet"]


def test_prometheus_operator_resources_match_their_crds() -> None:
    checked = []
    for _, doc in manifests():
        if doc["kind"] in CRD_KINDS:
            check_crd(doc)
            checked.append(doc["kind"])
    assert sorted(checked) == sorted(CRD_KINDS)


def test_compose_file_matches_the_compose_specification() -> None:
    check_compose(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def one(kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(d for _, d in manifests() if d["kind"] == kind))


def test_each_check_rejects_a_broken_file() -> None:
    deployment = one("StatefulSet")
    deployment["spec"]["replica"] = 2  # typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    deployment = one("StatefulSet")
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)

    monitor = one("PodMonitor")
    monitor["spec"]["podMetricsEndpoints"][0]["prot"] = "http-metrics"  # typo
    with pytest.raises(jsonschema.ValidationError, match="prot"):
        check_crd(monitor)
    rule = one("PrometheusRule")
    rule["spec"]["groups"][0]["rules"][0]["for"] = 5  # a duration is a string
    with pytest.raises(jsonschema.ValidationError):
        check_crd(rule)
    rule = one("PrometheusRule")
    rule["apiVersion"] = "monitoring.coreos.com/v2"
    with pytest.raises(jsonschema.ValidationError):
        check_crd(rule)

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["restart_policy"] = "always"  # not a Compose key
    with pytest.raises(jsonschema.ValidationError):
        check_compose(broken)
    broken = copy.deepcopy(compose)
    broken["services"]["worker"]["depends_on"]["kafka"]["condition"] = "when_ready"
    with pytest.raises(jsonschema.ValidationError):
        check_compose(broken)
