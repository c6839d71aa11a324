"""The finals-week rush after the bulk phases (rush.py): every waiting student's
notification stream, the cancellations released at once, each offer claimed the moment
it arrives, and the settle check against PostgreSQL.

The streams, cancels and claims run in ``processes`` child processes
(stream_workers.py), each owning a slice of the waiting students (their streams, and
the claims of the offers those receive) and of the cancelling holders: one Python
process holding 4,000 streams and sending every request was the bottleneck (a full core
while the service idled). This process only orchestrates and checks PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from clients import Client, Response
from harness import StepCpu, log, pg
from stats import Phase, dist_ms, parse_iso
from stream_workers import StreamWorkers, split

RETRIES = 3  # attempts of a reconciling claim whose connection broke (no answer)


def record(phase: Phase, r: Response) -> None:
    phase.record(r.latency, r.sent_at, r.label)


class Offers:
    """Phases 3-5 for the students rush.py left waiting or holding a seat."""

    def __init__(
        self,
        *,
        base: str,
        tokens: dict[int, str],
        holding: dict[int, int],
        waiting: dict[int, int],
        start: datetime,
        lost_offers_sql: str,
        phases: dict[str, Phase],
        rng: Any,
    ) -> None:
        self.base = base
        self.tokens = tokens
        self.holding = holding  # user -> reservation id
        self.waiting = waiting  # user -> entry id
        self.start = start
        self.lost_offers_sql = lost_offers_sql
        self.phases = phases
        self.rng = rng

    def phase(self, name: str) -> Phase:
        if name not in self.phases:
            self.phases[name] = Phase(name)
        return self.phases[name]

    async def run(
        self,
        url: str,
        *,
        concurrency: int,
        open_concurrency: int,
        cancel_share: float,
        settle_timeout: float,
        processes: int,
        runs: Path,
        name: str,
        cpu_of: Callable[[], StepCpu],
    ) -> dict[str, Any]:
        """``cpu_of()`` starts the CPU record of a step (rush.py's per-phase accounting)."""
        offers_seen: dict[int, dict[str, Any]] = {}  # entry id -> notification
        delivery: list[float] = []
        to_claimed: list[float] = []
        claimed: dict[int, str] = {}  # entry id -> last claim answer
        reclaims: list[asyncio.Task[None]] = []
        progress = asyncio.Event()
        last_claim_answer = [0.0]
        cancels_done: list[float] = []
        cancel_failed: Counter[str] = Counter()
        cancel_phase = self.phase("4 cancel")
        claim_phase = self.phase("4 claim")

        def on_claimed(uid: int, entry_id: int, status: int, label: str, answered: float) -> None:
            claimed[entry_id] = label
            created = offers_seen[entry_id].get("created_at")
            if created and status == 200:
                to_claimed.append(answered - parse_iso(created))
            last_claim_answer[0] = max(last_claim_answer[0], answered)
            if status == 200:
                self.waiting.pop(uid, None)
            progress.set()

        def on_report(_child: int, m: dict[str, Any]) -> None:
            if m["t"] == "event":
                body = m["body"]
                entry_id = body["data"]["entry_id"]
                offers_seen[entry_id] = body
                delivery.append(m["arrived"] - parse_iso(body["created_at"]))
            elif m["t"] == "claimed":
                on_claimed(m["key"], m["entry_id"], m["status"], m["label"], m["answered"])
            elif m["t"] == "cancels_done":
                cancels_done.append(m["at"])
            elif m["t"] == "cancel_failed":
                cancel_failed[m["label"]] += 1
            progress.set()

        holders = sorted(self.holding)
        cancellers = self.rng.sample(holders, round(len(holders) * cancel_share))
        attempted = [self.holding[uid] for uid in cancellers]
        waiting = list(self.waiting)
        processes = max(1, min(processes, max(len(waiting), len(cancellers), 1)))
        per_process = -(-concurrency // processes)  # connections for cancels and claims
        specs = [
            {
                "base": self.base,
                "streams": [[uid, self.tokens[uid]] for uid in mine],
                "reconnect": True,
                "open_concurrency": max(1, open_concurrency // processes),
                "claim": True,
                "cancels": [[uid, self.tokens[uid], self.holding[uid]] for uid in theirs],
                "concurrency": per_process,
            }
            for mine, theirs in zip(
                split(waiting, processes), split(cancellers, processes), strict=True
            )
        ]
        workers = StreamWorkers(specs, on_report, runs, name)
        claim_pool = Client(self.base, 10)  # the parent's own: reconciling claims only
        try:
            log(f"  3: opening {len(waiting)} streams in {processes} client processes")
            step = cpu_of()
            await workers.start()
            step.add(workers.pids)
            opened = await workers.opened()
            cpu_open = step.end()
            log(
                f"     {opened['open']}/{opened['streams']} open in {opened['wall_s']}s, "
                f"handshake p50 {opened['handshake_ms']['p50']} ms p99 "
                f"{opened['handshake_ms']['p99']} ms {opened['failures'] or ''}"
            )
            await asyncio.sleep(1.0)

            async def claim(uid: int, entry_id: int) -> None:
                for attempt in range(RETRIES):
                    r = await claim_pool.request(
                        "POST", f"/waitlist/{entry_id}/claim", token=self.tokens[uid]
                    )
                    record(self.phase("5 reconcile claim"), r)
                    if r.status != 0 or attempt == RETRIES - 1:
                        break
                    await asyncio.sleep(1.0)
                on_claimed(uid, entry_id, r.status, r.label, time.time())

            async def reclaim_missed(conn: asyncpg.Connection) -> list[dict[str, Any]]:
                """Offers still OFFERED (their event never came, or the claim failed): found
                by SQL, then claimed the way a student without a live stream would: GET
                /waitlist, then claim."""
                rows = await conn.fetch(
                    "SELECT id, user_id FROM waitlist_entries WHERE status = 'OFFERED' ORDER BY id"
                )
                missed = []
                for row in rows:
                    uid = row["user_id"]
                    r = await claim_pool.request("GET", "/waitlist", token=self.tokens[uid])
                    record(self.phase("5 reconcile list"), r)
                    missed.append(
                        {
                            "entry_id": row["id"],
                            "user_id": uid,
                            "seen_on_stream": row["id"] in offers_seen
                            and "created_at" in offers_seen[row["id"]],
                            "claim_answer": claimed.get(row["id"]),
                        }
                    )
                    for e in r.json["items"] if r.status == 200 else []:
                        if e["status"] == "OFFERED":
                            offers_seen.setdefault(e["id"], {"missed": True})
                            reclaims.append(asyncio.create_task(claim(uid, e["id"])))
                if missed:
                    log(f"  !! {len(missed)} offers still OFFERED: {missed[:3]}")
                return missed

            log(f"  4: {len(cancellers)} of {len(holders)} seat holders cancel at once")
            step = cpu_of()
            step.add(workers.pids)
            t0 = time.perf_counter()
            t0_wall = time.time()
            cancel_phase.started = claim_phase.started = t0
            cancel_phase.t0_wall = claim_phase.t0_wall = t0_wall
            await workers.go()

            # Settle: every cancel answered, every offer seen claimed, and PostgreSQL has
            # no HELD row nor lost offer.
            conn = await pg(url)
            missed_offers: list[dict[str, Any]] = []
            settled_by_streams = True
            lost = None
            try:
                last_progress = time.perf_counter()
                while True:
                    progress.clear()
                    if reclaims:
                        await asyncio.gather(*reclaims)
                    everything_answered = len(cancels_done) == len(specs) and len(claimed) == len(
                        offers_seen
                    )
                    if everything_answered:
                        held = await conn.fetchval(
                            "SELECT count(*) FROM reservations WHERE status = 'HELD'"
                            " AND start_time = $1",
                            self.start,
                        )
                        if held == 0:
                            # The service's work is done (every offer claimed, nothing
                            # HELD): fresh statistics for the check change nothing measured,
                            # and without them (--no-analyze) its self-joins took minutes.
                            await conn.execute("ANALYZE reservations; ANALYZE waitlist_entries")
                            lost = await conn.fetchval(self.lost_offers_sql, attempted)
                            if lost == 0:
                                break
                    if time.perf_counter() - last_progress > settle_timeout:
                        if not everything_answered and len(cancels_done) < len(specs):
                            last_progress = time.perf_counter()  # cancels still running
                            continue
                        settled_by_streams = False
                        found = await reclaim_missed(conn)
                        missed_offers += found
                        if not found:
                            log(f"  !! {lost} lost offers and nothing HELD: not settling")
                            break
                        last_progress = time.perf_counter()
                        continue
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(progress.wait(), 0.05)
                    if progress.is_set():
                        last_progress = time.perf_counter()
            finally:
                await conn.close()
            cancels_answered = max(cancels_done, default=time.time())
            settle_end = max(last_claim_answer[0], cancels_answered)
            cpu_cancel = step.end()
            await asyncio.sleep(1.0)  # stray events (duplicates, wrong users) show up now
            finals = await workers.stop()
        except BaseException:
            await workers.kill()
            raise
        finally:
            await claim_pool.aclose()
        for f in finals:
            for phase_name, rows in f["requests"].items():
                for latency, sent, label in rows:
                    self.phase(phase_name).record(latency, sent, label)
        cancel_phase.ended = cancel_phase.started + (cancels_answered - t0_wall)
        claim_phase.ended = claim_phase.started + (settle_end - t0_wall)
        other_events: Counter[str] = Counter()
        drops: Counter[str] = Counter()
        for f in finals:
            other_events.update(f["other_events"])
            drops.update(f["drops"])
        duplicates = sum(f["duplicates"] for f in finals)
        if duplicates:
            other_events["duplicate offer"] += duplicates
        return {
            "streams": opened,
            "cancellers": len(cancellers),
            "cancel_failed": dict(cancel_failed),
            "cancelled_ids": attempted,
            "offers_seen_on_streams": sum(1 for b in offers_seen.values() if "created_at" in b),
            "claims": Counter(claimed.values()),
            "offers_missed_by_streams": missed_offers,
            "settled_by_streams": settled_by_streams,
            "settle_s": round(settle_end - t0_wall, 3),
            "cancels_answered_s": round(cancels_answered - t0_wall, 3),
            "offer_delivery_ms": dist_ms(delivery),
            "offer_to_claimed_ms": dist_ms(to_claimed),
            "other_events": dict(other_events),
            "stream_drops": dict(drops),
            "streams_reconnected": sum(f["reconnected"] for f in finals),
            "client_processes": {
                "count": len(finals),
                "cpu_s": [f["cpu_s"] for f in finals],
                "max_rss_mib": round(max(f["max_rss_kib"] for f in finals) / 1024, 1),
            },
            "cpu_steps": {"3 streams": cpu_open, "4 cancel+claim": cpu_cancel},
        }
