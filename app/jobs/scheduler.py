"""The in-process scheduler: every SWEEP_INTERVAL_SECONDS, run the sweeps (and the
reminder sweep) once; with SMTP_URL, deliver the outbox's e-mail every second; deliver
its webhooks every second.

``max_instances=1`` and ``coalesce=True``: a slow sweep is never run twice at once in
one process, and missed ticks collapse into one. Other instances may sweep at the same
time; the sweeps are built for that (app/jobs/sweeps.py).
"""

import asyncio
import logging

import httpx2
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app import metrics
from app.clock import Clock
from app.db.pool import Pool
from app.jobs import outbox, reminders, sweeps, webhooks
from app.realtime.publisher import Publisher
from app.services.mail import SmtpConfig, smtp_config
from app.settings import Settings
from app.timeutil import utcnow

log = logging.getLogger(__name__)


async def sweep_once(pool: Pool, publisher: Publisher, settings: Settings, clock: Clock) -> None:
    """One tick. A failure is logged and the next tick tries again; it never stops
    the scheduler."""
    try:
        result = await sweeps.run_all(pool, publisher, settings, now=clock.now())
    except Exception:
        metrics.SWEEP_RUNS.labels("failed").inc()
        log.exception("sweep failed; retrying at the next tick")
        return
    metrics.SWEEP_RUNS.labels("ok").inc()
    metrics.SWEEP_ROWS.labels("no_show").inc(result.no_shows)
    metrics.SWEEP_ROWS.labels("completed").inc(result.completed)
    metrics.SWEEP_ROWS.labels("expired_offer").inc(result.expired_offers)
    if result.no_shows or result.completed or result.expired_offers:
        log.info(
            "sweep: %d no-shows, %d completed, %d offers expired",
            result.no_shows,
            result.completed,
            result.expired_offers,
        )


async def remind_once(pool: Pool, publisher: Publisher, settings: Settings, clock: Clock) -> None:
    """The reminder sweep (app/jobs/reminders.py), one tick; failures logged."""
    try:
        count = await reminders.send_reminders(pool, publisher, settings, now=clock.now())
    except Exception:
        log.exception("reminder sweep failed; retrying at the next tick")
        return
    if count:
        log.info("reminders: %d sent", count)


class SweepScheduler:
    """APScheduler running ``sweep_once``, the reminder sweep and (with SMTP_URL) the
    outbox's e-mail delivery; stopping it lets running ticks finish."""

    def __init__(self, pool: Pool, publisher: Publisher, settings: Settings, clock: Clock) -> None:
        self._idle = asyncio.Event()
        self._idle.set()
        self._running = 0
        self._delivering = False
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler.add_job(
            self._tick,
            "interval",
            seconds=settings.SWEEP_INTERVAL_SECONDS,
            args=(pool, publisher, settings, clock),
            id="sweeps",
            max_instances=1,
            coalesce=True,
            # APScheduler times ticks by the wall clock; sweeps ask ``clock`` what now is.
            next_run_time=utcnow(),
        )
        self._scheduler.add_job(
            self._reminders,
            "interval",
            seconds=settings.SWEEP_INTERVAL_SECONDS,
            args=(pool, publisher, settings, clock),
            id="reminders",
            max_instances=1,
            coalesce=True,
            next_run_time=utcnow(),
        )
        mail = smtp_config(settings)
        if mail is not None:  # without SMTP_URL nothing is queued, so nothing to deliver
            self._scheduler.add_job(
                self._deliver,
                "interval",
                seconds=outbox.INTERVAL_SECONDS,
                args=(pool, mail, clock),
                id="outbox-email",
                # A second instance returns at once while a long delivery runs (below):
                # APScheduler would otherwise log a warning every second it is skipped.
                max_instances=2,
                coalesce=True,
                next_run_time=utcnow(),
            )

        # Webhooks: always (endpoints are registered at run time); an idle tick is a
        # query on an empty partial index.
        self._webhooks_delivering = False
        self._webhook_client: httpx2.AsyncClient | None = None
        self._scheduler.add_job(
            self._deliver_webhooks,
            "interval",
            seconds=webhooks.INTERVAL_SECONDS,
            args=(pool, settings, clock),
            id="outbox-webhook",
            max_instances=2,
            coalesce=True,
            next_run_time=utcnow(),
        )

    def _busy(self) -> None:
        self._running += 1
        self._idle.clear()

    def _done(self) -> None:
        self._running -= 1
        if not self._running:
            self._idle.set()

    async def _tick(
        self, pool: Pool, publisher: Publisher, settings: Settings, clock: Clock
    ) -> None:
        self._busy()
        try:
            await sweep_once(pool, publisher, settings, clock)
        finally:
            self._done()

    async def _reminders(
        self, pool: Pool, publisher: Publisher, settings: Settings, clock: Clock
    ) -> None:
        self._busy()
        try:
            await remind_once(pool, publisher, settings, clock)
        finally:
            self._done()

    async def _deliver(self, pool: Pool, mail: SmtpConfig, clock: Clock) -> None:
        if self._delivering:
            return
        self._delivering = True
        self._busy()
        try:
            await outbox.tick(pool, mail, now=clock.now())
        finally:
            self._done()
            self._delivering = False

    async def _deliver_webhooks(self, pool: Pool, settings: Settings, clock: Clock) -> None:
        if self._webhooks_delivering:
            return
        self._webhooks_delivering = True
        self._busy()
        try:
            if self._webhook_client is None:
                self._webhook_client = webhooks.new_client()
            await webhooks.tick(pool, settings, now=clock.now(), client=self._webhook_client)
        finally:
            self._done()
            self._webhooks_delivering = False

    def start(self) -> None:
        self._scheduler.start()

    async def stop(self, grace_seconds: float) -> None:
        """No new ticks; wait (bounded) for a running one, whose transaction would
        otherwise be cancelled mid-way and logged as an error; then shut down."""
        self._scheduler.pause()
        try:
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        except TimeoutError:
            log.warning("a sweep was still running after %.0f s; cancelling it", grace_seconds)
        self._scheduler.shutdown(wait=False)
        if self._webhook_client is not None:
            await self._webhook_client.aclose()


def start_scheduler(
    pool: Pool, publisher: Publisher, settings: Settings, clock: Clock
) -> SweepScheduler:
    scheduler = SweepScheduler(pool, publisher, settings, clock)
    scheduler.start()
    return scheduler
