"""Locust users for the finals-week rush's two bulk phases; rush.py runs this file in a
Locust process of its own (gevent; nothing of the app is imported here):

    RUSH_PLAN=plan.json RUSH_PHASE=book RUSH_OUT=out.json \\
        .venv/bin/locust -f loadtest/rush_locust.py --headless --host http://127.0.0.1:PORT \\
        -u 150 -r 150 --only-summary

RUSH_PLAN (written by rush.py): the slot, every student's token, branch and pick, the
seats of each branch. Each of the ``-u`` users takes the next student until none is
left, then the run ends. With RUSH_SLICE=i/n (rush.py's ``--locust-processes n``: n
Locust processes, one core's worth of gevent each at most) this process takes every
n-th student from the i-th:

* ``book``: the student reads the free seats of its branch (``GET /seats?branch=
  &available_only=true&start_time=&end_time=``) and books a random one of them (a
  random seat of the branch when none is listed); with pick ``random``, a random seat of
  all, no listing;
* ``join``: a student without a seat joins its branch's waitlist; on 409
  ``slot_available`` it reads the listing, books a free seat, and joins again if that
  failed (at most 5 times).

RUSH_OUT gets every request (name, Locust's response time, status with error code,
when it was sent) and each student's outcome (reservation or waitlist entry id).
Answers the rush expects (201, 409 seat_conflict, ...) count as successes in Locust's
own table, so its failures are the 5xx and broken connections.
"""

from __future__ import annotations

import json
import os
import random
from collections import deque
from typing import Any
from urllib.parse import quote

from locust import FastHttpUser, constant, events, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment
from locust.exception import StopUser

JOIN_ATTEMPTS = 5


class Rush:
    """The plan, what is left to do, and what happened (one per Locust process)."""

    def __init__(self, plan: dict[str, Any], phase: str) -> None:
        self.plan = plan
        self.phase = phase
        self.tokens: dict[str, str] = plan["tokens"]
        self.interval = {"start_time": plan["start_time"], "end_time": plan["end_time"]}
        self.qs_interval = (
            f"start_time={quote(plan['start_time'])}&end_time={quote(plan['end_time'])}"
        )
        self.by_branch: dict[str, list[int]] = plan["by_branch"]
        # RUSH_SLICE "i/n": this process's share when rush.py runs n Locust processes
        index, _, count = os.environ.get("RUSH_SLICE", "0/1").partition("/")
        self.todo: deque[str] = deque(plan["students"][phase][int(index) :: int(count)])
        self.busy = 0
        self.rng = random.Random(plan["random_seed"])
        self.requests: list[tuple[str, float, str, float]] = []  # name, s, label, sent at
        self.holding: dict[str, int] = {}  # student (user id) -> reservation id
        self.waiting: dict[str, int] = {}  # student -> waitlist entry id


RUSH: Rush | None = None


@events.init.add_listener
def load_plan(environment: Environment, **_: Any) -> None:
    global RUSH
    with open(os.environ["RUSH_PLAN"]) as f:
        RUSH = Rush(json.load(f), os.environ["RUSH_PHASE"])


@events.request.add_listener
def record(
    name: str,
    response_time: float,
    response: Any,
    exception: BaseException | None,
    start_time: float,
    **_: Any,
) -> None:
    assert RUSH is not None
    status = int(getattr(response, "status_code", 0) or 0)
    body = None
    if status >= 400:
        try:
            body = json.loads(response.text or "null")
        except ValueError:
            body = None
    if status == 0:
        status_label = "conn_error"
    elif isinstance(body, dict) and body.get("code"):
        status_label = f"{status} {body['code']}"
    else:
        status_label = str(status)
    RUSH.requests.append((name, response_time / 1000, status_label, start_time))


@events.quitting.add_listener
def write_out(environment: Environment, **_: Any) -> None:
    assert RUSH is not None
    with open(os.environ["RUSH_OUT"], "w") as f:
        json.dump({"requests": RUSH.requests, "holding": RUSH.holding, "waiting": RUSH.waiting}, f)


def accept(r: ResponseContextManager) -> None:
    """Refusals are part of the rush; only a 5xx or a broken connection is a failure."""
    if 0 < r.status_code < 500:
        r.success()
    else:
        r.failure(f"{r.status_code}")


class Student(FastHttpUser):
    wait_time = constant(0)
    network_timeout = 120.0
    connection_timeout = 30.0

    @task
    def next_student(self) -> None:
        rush = RUSH
        assert rush is not None
        if not rush.todo:
            if rush.busy == 0:
                self.environment.runner.quit()
            raise StopUser
        student = rush.todo.popleft()
        rush.busy += 1
        try:
            if rush.phase == "book":
                self.book_once(rush, student)
            else:
                self.join(rush, student)
        finally:
            rush.busy -= 1

    def headers(self, rush: Rush, student: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {rush.tokens[student]}"}

    def free_seats(self, rush: Rush, student: str, branch: str, name: str) -> list[int]:
        path = f"/seats?branch={quote(branch)}&available_only=true&{rush.qs_interval}&limit=500"
        with self.client.get(
            path, headers=self.headers(rush, student), name=name, catch_response=True
        ) as r:
            accept(r)
            if r.status_code != 200:
                return []
            return [s["id"] for s in r.json()["items"] if s["available"]]

    def book(self, rush: Rush, student: str, seat_id: int, name: str) -> bool:
        with self.client.post(
            "/reservations",
            headers=self.headers(rush, student),
            json={"seat_id": seat_id, **rush.interval},
            name=name,
            catch_response=True,
        ) as r:
            accept(r)
            if r.status_code == 201:
                rush.holding[student] = int(r.json()["id"])
                return True
            return False

    def book_once(self, rush: Rush, student: str) -> None:
        pick = rush.plan["picks"][student]
        if rush.plan["pick"] == "random":
            seat = int(pick["seat"])
        else:
            branch = pick["branch"]
            choices = self.free_seats(rush, student, branch, "1 list") or rush.by_branch[branch]
            seat = choices[int(pick["r"] * len(choices))]
        self.book(rush, student, seat, "1 book")

    def join(self, rush: Rush, student: str) -> None:
        branch = rush.plan["picks"][student]["branch"]
        for _ in range(JOIN_ATTEMPTS):
            with self.client.post(
                "/waitlist",
                headers=self.headers(rush, student),
                json={"branch": branch, **rush.interval},
                name="2 join",
                catch_response=True,
            ) as r:
                accept(r)
                if r.status_code == 201:
                    rush.waiting[student] = int(r.json()["id"])
                    return
                refused: Any = r.json() if r.status_code == 409 else None
            if not isinstance(refused, dict) or refused.get("code") != "slot_available":
                return
            free = self.free_seats(rush, student, branch, "2 fallback list")
            if free and self.book(rush, student, rush.rng.choice(free), "2 fallback book"):
                return
