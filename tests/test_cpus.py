"""The default pool size follows the container's CPU quota (cgroup v2 and v1), not the host's CPUs."""

from __future__ import annotations

import os
from pathlib import Path

from worker.runtime.cpus import available_cpus, cpu_quota
from worker.settings import Settings


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_in_own_cgroup_and_parents(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "self-cgroup"
    _write(proc, "0::/kubepods/pod1/ctr\n")
    _write(root / "cpu.max", "max 100000\n")
    _write(root / "kubepods/pod1/cpu.max", "300000 100000\n")  # the pod: 3 CPUs
    _write(root / "kubepods/pod1/ctr/cpu.max", "150000 100000\n")  # the container: 1.5
    assert cpu_quota(root, proc) == 1.5
    assert available_cpus(root, proc) == 1  # rounded down: the main process needs CPU too
    _write(root / "kubepods/pod1/ctr/cpu.max", "max 100000\n")
    assert cpu_quota(root, proc) == 3.0  # the parent's quota bounds its children


def test_cgroup_v2_no_quota(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "self-cgroup"
    _write(proc, "0::/\n")
    _write(root / "cpu.max", "max 100000\n")
    assert cpu_quota(root, proc) is None
    assert available_cpus(root, proc) == len(os.sched_getaffinity(0))


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "self-cgroup"
    # Inside a container the path names the host's hierarchy; the container sees its own at the mount.
    _write(proc, "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n")
    _write(root / "cpu,cpuacct/cpu.cfs_quota_us", "200000\n")
    _write(root / "cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert cpu_quota(root, proc) == 2.0
    _write(root / "cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    assert cpu_quota(root, proc) is None


def test_no_cgroup_files(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path / "none", tmp_path / "missing") is None
    assert available_cpus(tmp_path / "none", tmp_path / "missing") >= 1


def test_pool_size_default_and_explicit() -> None:
    assert Settings(workers=3).pool_size == 3
    assert Settings(workers=0).pool_size == available_cpus()
