"""How many CPUs this process may use: the CPUs it may run on, capped by its container's CPU quota.

`os.cpu_count()` counts the host's CPUs. A container limited to 2 CPUs on a 64-CPU host would
then start 64 pool processes that the kernel throttles to 2 CPUs between them, each holding
its entity models (~200 MB). The quota is the cgroup's:

    cgroup v2   cpu.max            "200000 100000" (quota and period in µs), "max 100000" = none
    cgroup v1   cpu.cfs_quota_us   200000 (-1 = none), with cpu.cfs_period_us 100000

read in the process's own cgroup and every parent up to the mount (a parent's quota bounds its
children), and in the mount's root (inside a container the cgroup path in /proc/self/cgroup may
name the host's hierarchy). A fractional quota rounds down, at least one: the worker's main
process needs CPU of its own beside the pool.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def available_cpus(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """CPUs this process may run on, capped by the cgroup CPU quota (rounded down, at least 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    quota = cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


def cpu_quota(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """The CPUs the cgroup quota allows (quota / period), or None when there is no quota."""
    limits: list[float] = []
    for hierarchy, path in _cgroup_paths(proc_cgroup):
        if hierarchy == "":  # v2: one unified hierarchy mounted at the root
            mounts = [cgroup_root, cgroup_root / "unified"]
            read = _v2_limit
        elif "cpu" in hierarchy.split(","):
            mounts = [cgroup_root / hierarchy, cgroup_root / "cpu", cgroup_root / "cpu,cpuacct"]
            read = _v1_limit
        else:
            continue
        for mount in dict.fromkeys(mounts):
            for directory in _up_to(mount, path):
                limit = read(directory)
                if limit is not None:
                    limits.append(limit)
    return min(limits) if limits else None


def _cgroup_paths(proc_cgroup: Path) -> list[tuple[str, str]]:
    """(hierarchy's controllers, path) per line of /proc/self/cgroup: `0::/a` -> ("", "/a")."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return [("", "/")]
    found = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            found.append((parts[1], parts[2] or "/"))
    return found


def _up_to(mount: Path, path: str) -> list[Path]:
    """The cgroup's directory under `mount` and each parent up to `mount` itself (existing ones)."""
    directory = mount / path.strip("/")
    found = []
    while True:
        if directory.is_dir():
            found.append(directory)
        if directory == mount or mount not in directory.parents:
            break
        directory = directory.parent
    if mount.is_dir() and mount not in found:
        found.append(mount)
    return found


def _v2_limit(directory: Path) -> float | None:
    try:
        quota, _, period = (directory / "cpu.max").read_text().strip().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or "100000")
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _v1_limit(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
