"""The commit probe of sse_fanout.py, in a process of its own: LISTENs on a channel and
prints ``payload time.time()`` for each NOTIFY, the moment it arrives.

    .venv/bin/python loadtest/commit_probe.py postgresql://.../dlsms_sse loadtest_commit

PostgreSQL delivers NOTIFY at COMMIT, so the time printed is when the transaction
committed (plus this idle process's wake-up). In the process that also sends the
cancellations and gathers the streams' reports, the same timestamp came late by that
process's own queue (offers then "arrived" before they were committed).
"""

from __future__ import annotations

import asyncio
import sys
import time

import asyncpg


async def main(url: str, channel: str) -> None:
    conn = await asyncpg.connect(url, server_settings={"application_name": "loadtest-harness"})

    def on_notify(_c: object, _pid: int, _channel: str, payload: object) -> None:
        sys.stdout.write(f"{payload} {time.time()!r}\n")
        sys.stdout.flush()

    await conn.add_listener(channel, on_notify)
    sys.stdout.write("listening\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
