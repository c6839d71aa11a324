"""The ``servers`` fixture (real uvicorn processes) for every stream test."""

from tests.realtime.servers import servers as servers
