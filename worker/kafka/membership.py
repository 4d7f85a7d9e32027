"""The consumer-group member a worker was, kept on its data volume, so that the worker restarted on
that volume rejoins its group as the same member.

Killed (`SIGKILL`, an OOM kill, a node lost), a worker stays a member of its group until its
session runs out (`INGEST_SESSION_TIMEOUT_SECONDS`). A worker restarted within that time joins as a
new member: the group then waits for the dead one, whose partitions (the dedup table's among them)
nobody holds meanwhile. On the embedded broker, the dead member was still the group's leader when
the new one's join was answered, so the new member waited for an assignment until the dead one's
session ran out, then joined a second time: 11-12 s from the kill to the assignment at a 6 s
session, when a process started within the session. Joining with the member id it had, the
restarted worker is that member coming back, and the group does not wait: 3.4 s from the kill to
the assignment (the broker's join delay) in a bare consumer restarted at once.

The member id is reused only by the process that holds the data directory's lock (an exclusive
`flock` on `worker.lock`, held for the life of the process and released by the kernel when it
dies), on the host, since the boot, and in the very directory that wrote it (its path, device and
inode), for the same group: a second process on the same directory, or a copy of the volume
(another directory, another host, a snapshot restored, even at the same path under the same host
name), joins as a new member. Two live consumers with one member id would both be given the same
partitions and nobody the others. Apache Kafka refuses a member id it no longer knows (its session
ran out) and the consumer joins as a new member, as it would have; the embedded broker accepts it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger(__name__)

MEMBER_FILE = "group-member.json"
LOCK_FILE = "worker.lock"


class Membership:
    """The group member this worker's data directory remembers (`claim`), and the one it is now
    (`remember`)."""

    def __init__(self, data_dir: str | Path, group: str) -> None:
        self.directory = Path(data_dir)
        self.group = group
        self._lock: int | None = None
        self._remembered: str | None = None

    def _identity(self) -> dict[str, str]:
        where = self.directory.stat()
        return {"group": self.group, "host": socket.gethostname(), "boot": _boot_id(),
                "directory": str(self.directory.resolve()), "device": str(where.st_dev),
                "inode": str(where.st_ino)}

    def claim(self) -> str | None:
        """Take the data directory's lock; the member id written there by a process of this group on
        this host and directory before (None: none, or another process holds the lock)."""
        if self._lock is None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                handle = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                log.warning("cannot open %s (%s): the worker joins its group as a new member",
                            self.directory / LOCK_FILE, error)
                return None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(handle)
                log.warning("another process holds %s: the worker joins its group as a new member",
                            self.directory / LOCK_FILE)
                return None
            self._lock = handle
        try:
            kept = json.loads((self.directory / MEMBER_FILE).read_text(encoding="utf-8"))
            identity = self._identity()
        except (OSError, ValueError):
            return None
        if not isinstance(kept, dict) or any(kept.get(k) != v for k, v in identity.items()):
            return None
        member = kept.get("member_id")
        return member if isinstance(member, str) and member else None

    def remember(self, member_id: str) -> None:
        """Keep `member_id` as the member this directory's worker is (only while this process holds
        the lock; a write that fails is logged, and the next restart joins as a new member)."""
        if self._lock is None or not member_id or member_id == self._remembered:
            return
        path = self.directory / MEMBER_FILE
        part = path.with_name(path.name + ".part")
        try:
            part.write_text(json.dumps({**self._identity(), "member_id": member_id}), encoding="utf-8")
            os.replace(part, path)
        except OSError as error:
            log.warning("cannot keep the group member id in %s (%s)", path, error)
            with contextlib.suppress(OSError):
                part.unlink()
            return
        self._remembered = member_id


def _boot_id() -> str:
    """The kernel's id of this boot ("" where it cannot be read)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""
