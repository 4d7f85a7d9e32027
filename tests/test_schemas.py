"""The event contract: the schema files ship in the package, and a released schema only changes compatibly."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import FIXTURES, ROOT, SCHEMAS
from schema_compat import breaking_changes
from test_events import all_events

from worker.cli import main
from worker.events import schemas

RELEASED_DIR = FIXTURES / "released-schemas"
RELEASED = {p.name.removesuffix(".json"): json.loads(p.read_text()) for p in RELEASED_DIR.glob("*.json")}


def version(name: str) -> tuple[str, int]:
    event, number = re.fullmatch(r"(\w+)\.v(\d+)", name).groups()  # type: ignore[union-attr]
    return event, int(number)


def test_schemas_command_writes_the_packaged_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "--out", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.name for p in (ROOT / "schemas").glob("*.json"))
    for name in written:
        assert (tmp_path / "out" / name).read_bytes() == (ROOT / "schemas" / name).read_bytes()
    assert "https://ingest-worker.dev/schemas/article.v1.json" in capsys.readouterr().out


def test_the_package_links_to_the_one_copy_of_the_schemas() -> None:
    link = ROOT / "worker" / "schemas"
    assert link.is_symlink() and link.resolve() == (ROOT / "schemas").resolve()
    assert {name: json.loads(text) for name, text in schemas().items()} == SCHEMAS


def test_a_built_wheel_carries_the_schemas(tmp_path: Path) -> None:
    """Build the wheel from a copy of the sources and run `schemas` from it, not from this checkout."""
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("worker", "schemas"):
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=ignore)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {Path(n).name: archive.read(n) for n in archive.namelist() if n.startswith("worker/schemas/")}
    assert packaged == {p.name: p.read_bytes() for p in (ROOT / "schemas").glob("*.json")}
    # A wheel is importable as a zip: the command reads the schemas through importlib.resources.
    ran = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, worker.cli as c; print(c.__file__); sys.exit(c.main(sys.argv[1:]))",
            "schemas",
            "--out",
            "out",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(wheel), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.splitlines()[0].startswith(str(wheel))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(packaged)


def test_every_released_schema_still_accepts_what_it_did() -> None:
    assert RELEASED, "no released schemas to compare with"
    for name, released in RELEASED.items():
        assert name in SCHEMAS, f"{name} was released and must stay (a new version is a new file)"
        changes = breaking_changes(released, SCHEMAS[name])
        assert not changes, f"schemas/{name}.json breaks its released version; make it a new version:\n" + "\n".join(
            changes
        )
        assert SCHEMAS[name]["$id"] == released["$id"]


def test_every_schema_is_released_or_a_new_version() -> None:
    newest: dict[str, int] = {}
    for name in RELEASED:
        event, number = version(name)
        newest[event] = max(newest.get(event, 0), number)
    for name in SCHEMAS:
        event, number = version(name)
        assert name in RELEASED or number > newest.get(event, 0), f"{name}: an unreleased schema needs a new version"


def mutated(name: str, change: Any) -> dict[str, Any]:
    schema = copy.deepcopy(SCHEMAS[name])
    change(schema)
    return schema


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        ("article.v1", lambda s: s["properties"].pop("site_name"), "site_name: property removed"),
        ("article.v1", lambda s: s["required"].append("site_name"), "new required property 'site_name'"),
        ("article.v1", lambda s: s["properties"]["site_name"].update(type="string"), "type narrowed"),
        ("article.v1", lambda s: s["properties"]["word_count"].update(type="string"), "type narrowed"),
        ("dead_letter.v1", lambda s: s["properties"]["reason"]["enum"].remove("timeout"), "enum narrowed"),
        ("duplicate.v1", lambda s: s["properties"]["similarity"].update(maximum=0.5), "maximum lowered"),
        ("raw_page.v1", lambda s: s["properties"]["url"].update(maxLength=100), "maxLength lowered"),
        ("raw_page.v1", lambda s: s["properties"]["source"].update(pattern="^[a-z]+$"), "pattern changed"),
        ("raw_page.v1", lambda s: s.update(additionalProperties=False), "$.*: constrained"),
        ("raw_page.v1", lambda s: s["properties"]["headers"].pop("additionalProperties"), ""),
        ("raw_page.v1", lambda s: s["oneOf"].pop(), "oneOf changed"),
        ("article.v1", lambda s: s["properties"]["entities"]["items"]["required"].append("x"), "[]: new required"),
        ("article.v1", lambda s: s["properties"].update(summary={"type": "string"}), ""),
        ("article.v1", lambda s: s["properties"]["word_count"].update(description="Words."), ""),
        ("cluster.v1", lambda s: s["properties"]["copies"].update(type=["integer", "null"]), ""),
    ],
)
def test_the_compatibility_check_finds_breaking_changes(name: str, change: Any, expected: str) -> None:
    found = breaking_changes(SCHEMAS[name], mutated(name, change))
    if expected:
        assert any(expected in line for line in found), found
    else:
        assert found == []


def sample_events() -> list[tuple[str, dict[str, Any]]]:
    """Real events of each type, and each with every field in turn dropped or given a wrong value."""
    good = [
        *all_events(),
        {"event_type": "raw_page.v1", "url": "https://a.example/p", "html": "<p>x</p>", "headers": {"a": "b"}},
    ]
    out = []
    for event in good:
        name = event["event_type"]
        out.append((name, event))
        for field in event:
            out.append((name, {k: v for k, v in event.items() if k != field}))
            for wrong in (None, 12, "x", [], {"x": 1}):
                out.append((name, {**event, field: wrong}))
    return out


def test_released_and_current_schemas_agree_on_real_and_broken_events() -> None:
    checker = jsonschema.FormatChecker()
    events = sample_events()
    assert {name for name, _ in events} == set(RELEASED)
    for name, event in events:
        released = jsonschema.Draft202012Validator(RELEASED[name], format_checker=checker)
        current = jsonschema.Draft202012Validator(SCHEMAS[name], format_checker=checker)
        assert released.is_valid(event) == current.is_valid(event), (name, event)
