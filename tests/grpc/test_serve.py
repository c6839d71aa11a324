"""`dlsms serve --grpc-port` as a real process: gRPC in every worker's uvicorn loop,
next to HTTP, and a clean stop on SIGTERM that ends open streams."""

import asyncio
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.grpc.generated import dlsms_pb2 as pb
from app.grpc.generated import dlsms_pb2_grpc as pb_grpc
from tests.cli.test_cli import DLSMS, cli_env, wait_until_ready
from tests.factories import eventually
from tests.grpc.conftest import free_port

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Served:
    proc: subprocess.Popen[bytes]
    grpc_port: int
    stdout: Path
    stderr: Path


@pytest.fixture
def served(fresh_database: Callable[[str], str], tmp_path: Path) -> Iterator[Served]:
    """``dlsms serve --workers 2 --grpc-port`` on an empty database, ready."""
    url = fresh_database("grpc_serve")
    port, grpc_port = free_port(), free_port()
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [DLSMS, "serve", "--port", str(port), "--workers", "2", "--grpc-port", str(grpc_port)],
            env=cli_env(url, LOG_FORMAT="json"),
            cwd=tmp_path,
            stdout=out,
            stderr=err,
        )
        try:
            wait_until_ready(f"http://127.0.0.1:{port}", proc)
            yield Served(proc, grpc_port, stdout, stderr)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def test_serve_with_two_workers_answers_grpc_and_stops_cleanly(served: Served) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # typed for grpc.Channel only
        checked = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        auth = pb_grpc.AuthServiceStub(channel)
        await auth.Register(
            pb.RegisterRequest(student_id="S1", name="Ada", password="correct horse")
        )
        login = await auth.Login(pb.LoginRequest(student_id="S1", password="correct horse"))
        token = (("authorization", f"Bearer {login.access_token}"),)
        assert (await auth.GetMe(pb.GetMeRequest(), metadata=token)).student_id == "S1"
        # Both workers have bound the port (SO_REUSEPORT).
        await eventually(
            lambda: asyncio.sleep(0, served.stderr.read_text().count("gRPC serving on port")),
            lambda count: count == 2,
            within=10,
            what="two workers serving gRPC",
        )
        stream = pb_grpc.SeatServiceStub(channel).WatchSeats(pb.WatchSeatsRequest())
        await asyncio.wait_for(stream.initial_metadata(), 5)
        served.proc.send_signal(signal.SIGTERM)
        # The open stream ends cleanly (OK), not cut off.
        assert await asyncio.wait_for(stream.read(), 15) == grpc.aio.EOF
        assert await stream.code() == grpc.StatusCode.OK
    assert await asyncio.to_thread(served.proc.wait, 15) == 0
    assert f"grpc:     port {served.grpc_port}" in served.stdout.read_text()
    assert served.stderr.read_text().count("gRPC server stopped") == 2
