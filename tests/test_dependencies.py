"""The dependency ranges are the versions tested, and the library methods the transport overrides
are still there to override.

The fixes that keep pages from being lost on a kill (worker/kafka/transport.py) override private
methods of Faust and aiokafka. An upgrade that renames one, or changes its parameters, would leave
the override never called. These tests fail then; tests/test_worker_kafka.py checks that every
override is called during a run (a take-over after a kill). CI runs both on the lowest and the
highest versions allowed (constraints/*.txt, .ci/run).
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import aiokafka
import faust
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance, GroupCoordinator
from faust.transport import consumer as faust_consumer
from packaging.requirements import Requirement
from packaging.version import Version

from worker.kafka.transport import FixCallsCollector, overrides

ROOT = Path(__file__).resolve().parent.parent
PINNED = ("faust-streaming", "aiokafka")


def _pins(name: str) -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints" / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            [spec] = requirement.specifier
            assert spec.operator == "==", line
            pins[requirement.name] = Version(spec.version)
    return pins


def _ranges() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {Requirement(dep).name: Requirement(dep) for dep in project["dependencies"]}
    return {name: found[name] for name in PINNED}


def test_constraints_pin_the_ends_of_the_allowed_ranges() -> None:
    lowest, highest = _pins("lowest.txt"), _pins("highest.txt")
    assert set(lowest) == set(highest) == set(PINNED)
    for name, requirement in _ranges().items():
        floor = next(spec for spec in requirement.specifier if spec.operator == ">=")
        assert lowest[name] == Version(floor.version), f"{name}: lowest.txt must pin the floor {floor}"
        assert highest[name] in requirement.specifier, f"{name}: highest.txt {highest[name]} is not allowed"
        assert lowest[name] <= highest[name]


def test_ci_runs_the_readme_test_command_then_the_kafka_tests_on_the_lowest_versions() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    [command] = [line for line in readme.splitlines() if line.startswith("apt-get ") and "pytest" in line]
    assert "-c constraints/highest.txt" in command
    assert command in ci.splitlines()
    assert "-c constraints/lowest.txt" in ci and re.search(r"^\.venv-lowest/bin/pytest -m integration$", ci, re.M)


def test_the_installed_versions_are_allowed() -> None:
    ranges = _ranges()
    assert Version(faust.__version__) in ranges["faust-streaming"].specifier
    assert Version(aiokafka.__version__) in ranges["aiokafka"].specifier


def test_every_overridden_library_method_exists_with_the_signature_overridden() -> None:
    found = overrides()
    assert len(found) >= 8, sorted(found)
    for name, (cls, base) in found.items():
        method = name.rsplit(".", 1)[1]
        ours = inspect.unwrap(vars(cls)[method])
        theirs = inspect.unwrap(getattr(base, method))
        shape = [(p.name, p.kind) for p in inspect.signature(ours).parameters.values()]
        their_shape = [(p.name, p.kind) for p in inspect.signature(theirs).parameters.values()]
        assert shape == their_shape, f"{base.__module__}.{base.__qualname__}.{method} is now {their_shape}"
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs), name


def test_private_state_the_overrides_read_is_still_there() -> None:
    """Attributes of the libraries the overrides read or set (not methods, so not in `overrides()`)."""
    faust_source = inspect.getsource(faust_consumer.Consumer)
    for attribute in ("self._acked", "self._gap", "self._committed_offset", "def _is_changelog_tp",
                      "def _get_active_partitions", "def pause_partitions", "def resume_partitions"):
        assert attribute in faust_source, attribute
    # ConsumerThread._create_worker_consumer sets the fetch wait that aiokafka reads at start().
    aiokafka_source = inspect.getsource(aiokafka.AIOKafkaConsumer)
    assert aiokafka_source.count("self._fetch_max_wait_ms") >= 2
    # ConsumerThread.on_start sets the member id the group coordinator joins with first.
    assert "self._coordinator = GroupCoordinator(" in aiokafka_source
    coordinator_source = inspect.getsource(GroupCoordinator)
    assert "self.member_id = JoinGroupRequest" in coordinator_source
    assert "self._coordinator.member_id," in inspect.getsource(CoordinatorGroupRebalance)
    # worker.kafka.clients refreshes metadata of a topic created a moment ago.
    assert callable(AIOKafkaClient.force_metadata_update)
    for method in ("seek_to_committed", "seek_to_beginning", "seek_to_end", "position", "highwater", "assignment"):
        assert callable(getattr(aiokafka.AIOKafkaConsumer, method)), method


def test_the_call_counts_list_every_override() -> None:
    [family] = FixCallsCollector().collect()
    assert family.name == "ingest_transport_fix_calls"
    assert {sample.labels["method"] for sample in family.samples} == set(overrides())


def test_every_library_the_package_imports_is_declared() -> None:
    """An import of an undeclared library passes on a machine where it happens to be installed
    and fails on a fresh one: every third-party module `worker/` imports (inside functions too)
    comes from a distribution pyproject.toml names."""
    modules: set[str] = set()
    for path in (ROOT / "worker").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | {"worker"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"].values()
    requirements = [*project["dependencies"], *(r for extra in extras for r in extra)]

    declared = {Requirement(r).name.replace("_", "-").lower() for r in requirements}
    distributions = packages_distributions()
    undeclared = sorted(m for m in modules
                        if not {d.replace("_", "-").lower() for d in distributions.get(m, [m])} & declared)
    assert not undeclared, f"imported by worker/ but not declared in pyproject.toml: {undeclared}"


def test_the_worker_main_process_does_not_import_the_cleaning_stack(tmp_path: Path) -> None:
    """The process that runs the Kafka clients and the dedup decisions starts without the cleaning
    and entity stacks (the step pool's processes import them): a restarted dedup owner's start is
    seconds shorter on a loaded machine. Checked in a fresh interpreter, as `ingest-worker run`
    builds its app."""
    program = (
        "import sys\n"
        "from worker.settings import Settings\n"
        "from worker.kafka.app import create_app\n"
        "import worker.cli.commands, worker.kafka.agents\n"
        f"create_app(Settings.from_env({{'INGEST_DATA_DIR': {str(tmp_path)!r}}}))\n"
        "heavy = ('lxml', 'lightgbm', 'sklearn', 'scipy', 'spacy', 'trafilatura',\n"
        "         'worker.steps.clean.page', 'worker.steps.clean.page_type', 'worker.steps.entities')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert done.stdout.split() == []
