"""The API rate limit on gRPC (api.md, "Limits and operations" and "gRPC"): unary calls
count in the same buckets as HTTP requests; past the limit RESOURCE_EXHAUSTED with
RetryInfo; streams are not counted."""

import asyncio

import asyncpg
import grpc

from app.grpc.generated import dlsms_pb2 as pb
from tests.factories import Student, add_branch, add_seat, add_student
from tests.grpc.conftest import GrpcFactory, auth, refused, retry_info

LIMITED = {
    "API_RATE_LIMIT": "60/minute",
    "API_RATE_LIMIT_ANONYMOUS": "60/minute",
    "API_RATE_BURST": 2,
}


async def test_unary_calls_share_the_users_bucket_with_http(
    make_grpc: GrpcFactory, db: asyncpg.Connection
) -> None:
    student: Student = await add_student(db, "s-grpc-limit")
    app = await make_grpc(**LIMITED)

    call = app.auth.GetMe(pb.GetMeRequest(), metadata=auth(student))
    await call
    metadata = dict(await call.initial_metadata())
    over_http = await app.http.get("/auth/me", headers=student.headers)
    error = await refused(
        app.auth.GetMe(pb.GetMeRequest(), metadata=auth(student)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "rate_limited",
    )

    assert metadata["ratelimit-policy"] == '"user";q=60;w=60'
    assert str(metadata["ratelimit"]).startswith('"user";r=1;')
    assert over_http.status_code == 200  # the second token
    retry = retry_info(error)
    assert retry is not None and retry.retry_delay.seconds == 1


async def test_streams_are_not_counted(make_grpc: GrpcFactory, db: asyncpg.Connection) -> None:
    await add_seat(db, await add_branch(db, "Main"), "A1")
    app = await make_grpc(**{**LIMITED, "API_RATE_BURST": 1})

    for _ in range(3):
        stream = app.seats.WatchSeats(pb.WatchSeatsRequest())
        await asyncio.wait_for(stream.initial_metadata(), 5)
        stream.cancel()

    await app.seats.GetBranches(pb.GetBranchesRequest())  # the bucket's one token
    await refused(
        app.seats.GetBranches(pb.GetBranchesRequest()),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "rate_limited",
    )
