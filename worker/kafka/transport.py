"""Faust's aiokafka transport, with a configurable fetch wait and fixes for taking partitions over.

Fetch wait: Faust fixes the consumer's `fetch_max_wait_ms` at 1500. A broker that answers a
waiting fetch only when the wait runs out (the embedded one does) then adds that much latency to
every page; `INGEST_FETCH_WAIT_MS` sets it instead (10 ms gave p50 18 ms end to end on the
embedded broker, against 673 ms at the default).

Taking partitions over (after a restart or a rebalance), Faust recovers the dedup table from its
changelog, then resumes the input partitions, seeks them to their committed offsets and clears
every agent's queue. Four things went wrong there, each losing pages or dedup decisions:

- Records handed to an agent's queue after their partition's seek were cleared with the queue
  and never fetched again: the partition's position was already past them (pages never
  processed, and the gap in acked offsets stopped commits). The input partitions are now held
  back from the moment the seek starts until flow resumes, after the queues were cleared.
- aiokafka seeks only to a committed offset above 0, so a partition the group had never
  committed (its worker killed before the first commit) kept its position past the records
  Faust dropped. Such a partition now starts again from the reset position.
- Holding partitions back can leave no partition to fetch from, and aiokafka reads an empty
  selection as every partition: a fetch in flight then handed out records of held partitions,
  which Faust dropped after their seek. A fetch now only ever returns the selected partitions.
- Recovery reads the changelog up to the end offset the broker lists. Some brokers (the
  embedded one) list the base offset of the last record batch plus one, not the log end: the
  rest of that batch then stayed in Faust's recovery buffer, not in the table, and the decisions
  it held were lost. The end is now the larger of the listed offset and the high watermark of a
  fetch, which every broker reports as the log end.

And one in committing: with several actors per agent, a partition's messages finish out of
order, and Faust committed past an offset still being processed when the one after it was
acknowledged first (it allows a hole of one); a kill then lost that page. A commit now starts
only at the next offset to read.

And one in joining: a worker restarted on its data volume joins its group as the member it was
(`worker.kafka.membership`), so the group does not wait for the dead member's session to run out.

Every fix overrides a private method of Faust or aiokafka: one renamed by an upgrade would never
be called and the loss would come back silently. Each override counts its calls
(`ingest_transport_fix_calls_total{method}`), and the tests check that every overridden method
still exists with the signature overridden and is called during a run (tests/test_dependencies.py,
tests/test_worker_kafka.py) on the lowest and the highest versions allowed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from aiokafka import TopicPartition
from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from worker.kafka.connection import bootstrap_servers

SCHEME = "ingest-kafka"
HIGHWATER_WAIT_SECONDS = 10.0  # how long recovery waits for a fetch to report a changelog's end

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)
FIX_CALLS: Counter[str] = Counter()  # calls of each overriding method, in this process


def counted(method: F) -> F:
    """Count the calls of an override of a Faust or aiokafka method in `FIX_CALLS`."""
    name = method.__qualname__
    if asyncio.iscoroutinefunction(method):

        @functools.wraps(method)
        async def counted_async(*args: Any, **kwargs: Any) -> Any:
            FIX_CALLS[name] += 1
            return await method(*args, **kwargs)

        return counted_async  # type: ignore[return-value]

    @functools.wraps(method)
    def counted_sync(*args: Any, **kwargs: Any) -> Any:
        FIX_CALLS[name] += 1
        return method(*args, **kwargs)

    return counted_sync  # type: ignore[return-value]


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Creates the group consumer with the app's `fetch_wait_ms`; seeks and measures ends correctly."""

    @counted
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when it builds its fetcher at start(); there is no public setter.
        consumer._fetch_max_wait_ms = int(getattr(self.app, "fetch_wait_ms", 500))
        return consumer

    @counted
    async def on_start(self) -> None:
        """Start the consumer; before its first join, the member id its data directory's worker had
        (`worker.kafka.membership`): a worker restarted on its volume rejoins as that member."""
        await super().on_start()
        membership = getattr(self.app, "membership", None)
        member = membership.claim() if membership is not None else None
        if member is not None:
            # aiokafka joins with the coordinator's member id; its task joins once Faust subscribes.
            self._ensure_consumer()._coordinator.member_id = member
            log.info("rejoining group %s as the member %s this data directory's worker was", self.app.conf.id, member)

    @counted
    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        """Keep the member id the group gave (`worker.kafka.membership`), then Faust's rebalance."""
        membership = getattr(self.app, "membership", None)
        if membership is not None:
            membership.remember(self._ensure_consumer()._coordinator.member_id)
        await super().on_partitions_assigned(assigned, generation_id)

    @counted
    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its committed offset; a stream partition without one to its start.

        Returns each partition's committed offset; for a stream partition without one, the
        offset it now starts from (so commits know where the partition begins).
        """
        return await self.call_thread(self._seek_to_committed)  # type: ignore[no-any-return]

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed: dict[TP, int] = await consumer.seek_to_committed()
        uncommitted = [tp for tp, offset in committed.items() if not offset and not self.consumer._is_changelog_tp(tp)]
        if uncommitted:
            if self.app.conf.consumer_auto_offset_reset == "latest":
                await consumer.seek_to_end(*uncommitted)
            else:
                await consumer.seek_to_beginning(*uncommitted)
            committed.update({tp: await consumer.position(tp) for tp in uncommitted})
        return committed

    @counted
    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        selected = Selected(active_partitions)  # Faust hands it to aiokafka, which only tests membership
        return await super()._fetch_records(
            consumer, selected, timeout=timeout, max_records=max_records  # type: ignore[arg-type]
        )

    @counted
    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        listed = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return listed
        fetched = await fetched_highwaters(self._ensure_consumer(), partitions, HIGHWATER_WAIT_SECONDS)
        return {tp: max(end, fetched.get(tp, end)) for tp, end in listed.items()}


class Selected:
    """The partitions a fetch may hand out, read when records arrive (Faust changes the set meanwhile).

    Never false: aiokafka takes an empty selection to mean every partition.
    """

    def __init__(self, partitions: set[TP]) -> None:
        self._partitions = partitions

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self._partitions


async def fetched_highwaters(consumer: Any, partitions: Iterable[TP], timeout: float) -> dict[TP, int]:
    """The high watermark the group consumer's fetches reported for `partitions` (waits up to `timeout`).

    The consumer fetches every assigned partition in the background; a partition it has not
    fetched yet, or no longer holds, is left out.
    """
    wanted = {TopicPartition(tp.topic, tp.partition) for tp in partitions}
    deadline = time.monotonic() + timeout
    while True:
        held = wanted & consumer.assignment()
        found = {tp: consumer.highwater(tp) for tp in held}
        if all(value is not None for value in found.values()) or time.monotonic() >= deadline:
            return {tp: value for tp, value in found.items() if value is not None}
        await asyncio.sleep(0.01)


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer using `ConsumerThread`; holds stream partitions back while they are sought."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: set[TP] = set()

    @counted
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @counted
    async def perform_seek(self) -> None:
        """Seek partitions to their committed offsets, handing out nothing from them until flow resumes.

        Faust calls this between resuming the stream partitions and clearing the agents' queues;
        what a partition handed out after its seek would be cleared and never fetched again.
        """
        held = {tp for tp in self._get_active_partitions() if not self._is_changelog_tp(tp)}
        self.pause_partitions(held)  # before the first await: nothing is handed out from here on
        self._held |= held
        await super().perform_seek()

    @counted
    def _new_offset(self, tp: TP) -> int | None:
        """The offset to commit for `tp`: none while the next offset to read is not acknowledged."""
        acked = self._acked[tp]
        if acked:
            # After the seek, no committed offset means the partition starts at 0.
            following = self._committed_offset[tp] or 0
            if min(acked) > following and not self._gap[tp].overlaps(following):
                return None
        return super()._new_offset(tp)

    @counted
    def resume_flow(self) -> None:
        """Let messages flow again, with the partitions held back during the seek once recovery is over."""
        if self._held and not self.app.in_recovery:  # a seek cut short by a new rebalance: keep them held
            held, self._held = self._held, set()
            self.resume_partitions(held & self.assignment())
        super().resume_flow()


def overrides() -> dict[str, tuple[type, type]]:
    """Every method of this module's classes that overrides one of Faust's or aiokafka's:
    `Class.method` -> (this module's class, the library class it overrides)."""
    found: dict[str, tuple[type, type]] = {}
    for cls in (ConsumerThread, Consumer):
        base = cls.__mro__[1]
        for name, value in vars(cls).items():
            if callable(value) and hasattr(base, name) and not name.startswith("__"):
                found[f"{cls.__qualname__}.{name}"] = (cls, base)
    return found


class FixCallsCollector(Collector):
    """`ingest_transport_fix_calls_total{method}`: calls of each override of a library method."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The counts at scrape time, every override listed (0 until it is first called)."""
        family = CounterMetricFamily(
            "ingest_transport_fix_calls", "Calls of each override of a Faust or aiokafka method", labels=["method"]
        )
        for name in sorted(overrides()):
            family.add_metric([name], FIX_CALLS[name])
        yield family


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport using `Consumer`."""

    Consumer = Consumer


def broker_url(url: str) -> str:
    """`kafka://h1:9092;h2:9092` -> the same hosts on this transport."""
    drivers.TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")
    return ";".join(f"{SCHEME}://{host}" for host in bootstrap_servers(url).split(","))
