"""Every topic the worker uses is listed (docs included), created as listed, and nothing else
appears on the broker when the worker runs; creation errors are read topic by topic."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from conftest import collect_for_urls, isolated_settings, raw_page, send_pages

from worker.kafka.connection import client_options, start_client
from worker.kafka.topics import creation_outcomes, refusal, topic_specs, topics_table
from worker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(PYTHONPATH=str(ROOT), **settings.to_environ())
    return subprocess.run([sys.executable, "-m", "worker", *args], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_operating_docs_hold_the_topics_table_of_the_code():
    text = (ROOT / "docs" / "operating.md").read_text()
    documented = re.search(r"<!-- topics table:[^\n]*-->\n(.*?)\n<!-- end of topics table -->", text, re.S)
    assert documented, "docs/operating.md lost its topics table"
    assert documented.group(1).strip() == topics_table(Settings(), markdown=True)


def test_topic_specs_follow_the_settings():
    settings = Settings(app_id="news", topic_partitions=6, topic_replicas=3, clusters_topic="clusters")
    specs = {spec.name: spec for spec in topic_specs(settings)}
    assert specs["news-dedup-candidates"].partitions == 1 and specs["news-dedup-state-changelog"].partitions == 1
    assert specs["news-unique-articles"].partitions == 6 and specs["pages.raw"].partitions == 6
    assert {spec.replicas for spec in specs.values()} == {3}
    assert {name for name, spec in specs.items() if spec.cleanup_policy == "compact"} == {
        "clusters", "news-dedup-state-changelog"}


def test_creation_errors_are_read_topic_by_topic():
    outcomes = creation_outcomes([("a", 0, None), ("b", 36, "exists"), ("c", 29, "Authorization failed.")])
    assert [(o.topic, o.outcome) for o in outcomes] == [("a", "created"), ("b", "exists"), ("c", "error")]
    assert outcomes[2].detail == "TopicAuthorizationFailedError (error 29): Authorization failed."


def test_a_refused_topic_stops_the_worker_with_its_name_and_the_fix():
    # The embedded broker creates whatever it is asked to; this is a real cluster's answer without Create.
    outcomes = creation_outcomes([("pages.raw", 36, "exists"), ("articles.v1", 29, "Authorization failed.")])
    line = refusal(outcomes)
    assert "articles.v1: TopicAuthorizationFailedError (error 29)" in line and "pages.raw" not in line
    assert "ingest-worker topics --create" in line
    assert refusal(creation_outcomes([("pages.raw", 0, None), ("articles.v1", 36, "exists")])) == ""


@pytest.mark.integration
def test_topics_create_then_the_worker_creates_nothing_else(broker, tmp_path, start_worker):
    settings = isolated_settings(broker.url, "topics_create", tmp_path / "data")
    created = cli(settings, "topics", "--create")
    assert created.returncode == 0, created.stderr
    names = [spec.name for spec in topic_specs(settings)]
    assert [line for line in created.stdout.splitlines() if line.endswith((": created", ": exists"))] == [
        f"{name}: created" for name in names]
    again = cli(settings, "topics", "--create")
    assert again.returncode == 0 and f"{settings.input_topic}: exists" in again.stdout

    start_worker(settings)
    url = "https://example.com/news/topics-check"
    send_pages(settings, [raw_page(url, html="<html><body><h1>Ports</h1>" + "<p>The port reopened today.</p>" * 20
                                   + "</body></html>")])
    collect_for_urls(settings, {url})
    prefixes = (settings.app_id, settings.input_topic.rsplit(".", 1)[0])
    on_broker = asyncio.run(_describe(settings))
    ours = {name: layout for name, layout in on_broker.items() if name.startswith(prefixes)}
    assert set(ours) == set(names)  # the worker made no topic the list does not name
    for spec in topic_specs(settings):
        assert ours[spec.name] == (spec.partitions, spec.cleanup_policy), spec.name


async def _describe(settings: Settings) -> dict[str, tuple[int, str]]:
    """Each topic on the broker: (partitions, cleanup.policy)."""
    admin = await start_client(settings, AIOKafkaAdminClient(**client_options(settings)))
    try:
        names = sorted(await admin.list_topics())
        partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
        policies: dict[str, str] = {}
        for response in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names]):
            for resource in response.resources:
                entries = {entry[0]: entry[1] for entry in resource[4]}
                policies[resource[3]] = entries.get("cleanup.policy") or "delete"
    finally:
        await admin.close()
    return {name: (partitions[name], policies.get(name, "delete")) for name in names}


@pytest.mark.integration
def test_produce_never_creates_the_input_topic(kafka_settings, tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><body><p>Hello</p></body></html>")
    missing = kafka_settings.with_overrides(input_topic=f"{kafka_settings.app_id}.nothing")
    result = cli(missing, "produce", str(page))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr
    assert "does not exist" in lines[0] and "ingest-worker topics --create" in lines[0]
    assert missing.input_topic not in asyncio.run(_describe(kafka_settings))


@pytest.mark.integration
def test_tail_of_a_topic_that_does_not_exist(kafka_settings):
    result = cli(kafka_settings, "tail", kafka_settings.articles_topic + "s", "--timeout", "1")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr
    assert f"does not exist on {kafka_settings.broker}; did you mean {kafka_settings.articles_topic}?" in lines[0]
