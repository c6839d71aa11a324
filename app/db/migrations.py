"""Run the Alembic migrations from code (``dlsms migrate``, ``dlsms serve``, tests)."""

import threading
from pathlib import Path

from alembic.config import Config

from alembic import command

_ROOT = Path(__file__).resolve().parents[2]

# Alembic's `context` and `op` are module-global proxies, so two migrations running in
# one process at once clobber each other (KeyError: 'config'). Separate processes are
# serialised by the advisory lock in alembic/env.py; threads of one process by this.
_IN_PROCESS = threading.Lock()


def alembic_config(database_url: str) -> Config:
    """An Alembic config for our migrations that targets ``database_url``.

    The URL travels in ``attributes``, not in the ini options, so a ``%`` in a
    password is not taken for configparser interpolation."""
    ini = _ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.exists() else Config()
    config.set_main_option("script_location", str(_ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: str) -> None:
    """Blocking; call it off the event loop (``asyncio.to_thread``) from async code."""
    with _IN_PROCESS:
        command.upgrade(alembic_config(database_url), "head")


def downgrade_to_base(database_url: str) -> None:
    with _IN_PROCESS:
        command.downgrade(alembic_config(database_url), "base")
