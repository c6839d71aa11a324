"""The in-process scheduler: every SWEEP_INTERVAL_SECONDS, run the sweeps once.

``max_instances=1`` and ``coalesce=True``: a slow sweep is never run twice at once in
one process, and missed ticks collapse into one. Other instances may sweep at the same
time; the sweeps are built for that (app/jobs/sweeps.py).
"""

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app import metrics
from app.db.pool import Pool
from app.jobs import sweeps
from app.realtime.publisher import Publisher
from app.settings import Settings
from app.timeutil import utcnow

log = logging.getLogger(__name__)


async def sweep_once(pool: Pool, publisher: Publisher, settings: Settings) -> None:
    """One tick. A failure is logged and the next tick tries again; it never stops
    the scheduler."""
    try:
        result = await sweeps.run_all(pool, publisher, settings, now=utcnow())
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


def start_scheduler(pool: Pool, publisher: Publisher, settings: Settings) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        sweep_once,
        "interval",
        seconds=settings.SWEEP_INTERVAL_SECONDS,
        args=(pool, publisher, settings),
        id="sweeps",
        max_instances=1,
        coalesce=True,
        next_run_time=utcnow(),
    )
    scheduler.start()
    return scheduler
