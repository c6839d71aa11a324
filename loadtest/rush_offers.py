"""The finals-week rush after the bulk phases (rush.py): every waiting student's
notification stream, the cancellations released at once, each offer claimed the moment
it arrives, and the settle check against PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from datetime import datetime
from typing import Any

import asyncpg
import clients
from clients import Client, Response, SseEvent, SseStream
from harness import log, pg
from stats import Phase, dist_ms, parse_iso

RETRIES = 3  # attempts of a cancel or claim whose connection broke (no answer)


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
    ) -> dict[str, Any]:
        claim_pool = Client(self.base, concurrency)
        cancel_pool = Client(self.base, concurrency)
        stream_clients = clients.StreamClients(self.base)
        offers_seen: dict[int, dict[str, Any]] = {}  # entry id -> notification
        delivery: list[float] = []
        to_claimed: list[float] = []
        claimed: dict[int, str] = {}  # entry id -> last claim answer
        claim_tasks: list[asyncio.Task[None]] = []
        other_events: Counter[str] = Counter()
        progress = asyncio.Event()
        last_claim_answer = [0.0]
        cancel_phase = self.phase("4 cancel")
        claim_phase = self.phase("4 claim")

        async def claim(uid: int, entry_id: int) -> None:
            for attempt in range(RETRIES):  # a student retries when the connection breaks
                r = await claim_pool.request(
                    "POST", f"/waitlist/{entry_id}/claim", token=self.tokens[uid]
                )
                record(claim_phase, r)
                if r.status != 0 or attempt == RETRIES - 1:
                    break
                await asyncio.sleep(1.0)
            claimed[entry_id] = r.label
            created = offers_seen[entry_id].get("created_at")
            if created and r.status == 200:
                to_claimed.append(time.time() - parse_iso(created))
            if r.status == 200:
                self.holding[uid] = r.json["reservation"]["id"]
                self.waiting.pop(uid, None)
            last_claim_answer[0] = time.perf_counter()
            progress.set()

        def on_event(stream: SseStream, ev: SseEvent) -> None:
            if ev.event != "waitlist.offer":
                other_events[ev.event] += 1
                return
            body = json.loads(ev.data)
            entry_id = body["data"]["entry_id"]
            if entry_id in offers_seen:
                other_events["duplicate offer"] += 1
                return
            offers_seen[entry_id] = body
            delivery.append(ev.arrived - parse_iso(body["created_at"]))
            claim_tasks.append(asyncio.create_task(claim(stream.key, entry_id)))
            progress.set()

        streams = [
            SseStream(stream_clients.get(i), self.tokens[uid], on_event, key=uid, reconnect=True)
            for i, uid in enumerate(self.waiting)
        ]
        log(f"  3: opening {len(streams)} streams")
        opened = await clients.open_streams(streams, open_concurrency)
        log(
            f"     {opened['open']}/{opened['streams']} open in {opened['wall_s']}s, "
            f"handshake p50 {opened['handshake_ms']['p50']} ms p99 "
            f"{opened['handshake_ms']['p99']} ms {opened['failures'] or ''}"
        )
        await asyncio.gather(claim_pool.warm(), cancel_pool.warm())
        await asyncio.sleep(1.0)

        async def reclaim_missed(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            """Offers still OFFERED (their event never came, or the claim failed): found by
            SQL, then claimed the way a student without a live stream would: GET /waitlist,
            then claim."""
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
                        claim_tasks.append(asyncio.create_task(claim(uid, e["id"])))
            if missed:
                log(f"  !! {len(missed)} offers still OFFERED: {missed[:3]}")
            return missed

        holders = sorted(self.holding)
        cancellers = self.rng.sample(holders, round(len(holders) * cancel_share))
        attempted = [self.holding[uid] for uid in cancellers]
        go = asyncio.Event()

        async def cancel(uid: int) -> None:
            await go.wait()
            rid = self.holding[uid]
            for attempt in range(RETRIES):  # a student retries when the connection breaks
                r = await cancel_pool.request(
                    "DELETE", f"/reservations/{rid}", token=self.tokens[uid]
                )
                record(cancel_phase, r)
                if r.status != 0 or attempt == RETRIES - 1:
                    break
                await asyncio.sleep(1.0)
            if r.status == 200:
                self.holding.pop(uid, None)

        log(f"  4: {len(cancellers)} of {len(holders)} seat holders cancel at once")
        tasks = [asyncio.create_task(cancel(uid)) for uid in cancellers]
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        cancel_phase.started = claim_phase.started = t0
        cancel_phase.t0_wall = claim_phase.t0_wall = time.time()
        go.set()
        await asyncio.gather(*tasks)
        cancel_phase.done()
        cancels_answered = time.perf_counter()

        # Settle: every offer seen is claimed and PostgreSQL has no HELD row nor lost offer.
        conn = await pg(url)
        missed_offers: list[dict[str, Any]] = []
        settled_by_streams = True
        lost = None
        try:
            last_progress = time.perf_counter()
            while True:
                progress.clear()
                if claim_tasks:
                    await asyncio.gather(*claim_tasks)
                if len(claimed) == len(offers_seen):
                    held = await conn.fetchval(
                        "SELECT count(*) FROM reservations WHERE status = 'HELD'"
                        " AND start_time = $1",
                        self.start,
                    )
                    if held == 0:
                        # The service's work is done (every offer claimed, nothing HELD):
                        # fresh statistics for the check now change nothing measured, and
                        # without them (--no-analyze) its self-joins took minutes.
                        await conn.execute("ANALYZE reservations; ANALYZE waitlist_entries")
                        lost = await conn.fetchval(self.lost_offers_sql, attempted)
                        if lost == 0:
                            break
                    if time.perf_counter() - last_progress > settle_timeout:
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
        settle_end = max(last_claim_answer[0], cancels_answered)
        claim_phase.ended = settle_end
        await asyncio.sleep(1.0)  # stray events (duplicates, wrong users) show up now
        drops = Counter(d for s in streams for d in s.drops)
        for s in streams:
            s.close()
        await asyncio.gather(claim_pool.aclose(), cancel_pool.aclose(), stream_clients.aclose())
        return {
            "streams": opened,
            "cancellers": len(cancellers),
            "cancelled_ids": attempted,
            "offers_seen_on_streams": sum(1 for b in offers_seen.values() if "created_at" in b),
            "claims": Counter(claimed.values()),
            "offers_missed_by_streams": missed_offers,
            "settled_by_streams": settled_by_streams,
            "settle_s": round(settle_end - t0, 3),
            "cancels_answered_s": round(cancels_answered - t0, 3),
            "offer_delivery_ms": dist_ms(delivery),
            "offer_to_claimed_ms": dist_ms(to_claimed),
            "other_events": dict(other_events),
            "stream_drops": dict(drops),
            "streams_reconnected": sum(1 for s in streams if s.drops),
        }
