"""Two trivial ASGI apps that show what this machine can do at all (bench.py calib-*).

* ``bare``: raw ASGI, a 15-byte JSON answer: uvicorn + httptools + uvloop alone.
* ``fastapi_min``: FastAPI with one ``GET /health`` returning a dict: the framework's floor.

No database, no middleware. Compare the service's numbers with these, measured in the
same session, before blaming (or praising) the service for what the box allows.
"""

from typing import Any

from fastapi import FastAPI

_BODY = b'{"status":"ok"}'


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": _BODY})


fastapi_min = FastAPI()


@fastapi_min.get("/health")
@fastapi_min.get("/ready")
async def health() -> dict[str, str]:
    return {"status": "ok"}
