"""Run the Alembic migrations from code (``dlsms migrate``, ``dlsms serve``, tests).

The migrations are ``alembic/`` at the top of the repository; a wheel carries that
directory inside the package as ``app/migrations`` (setup.py maps it), so an installed
``dlsms`` needs no source tree."""

import threading
from pathlib import Path

from alembic.config import Config

from alembic import command

_PACKAGE = Path(__file__).resolve().parents[1]
# Installed from a wheel: inside the package. A source checkout (editable install):
# beside it. env.py tells them from site-packages/alembic, the library itself.
_SCRIPT_LOCATIONS = (_PACKAGE / "migrations", _PACKAGE.parent / "alembic")

# Alembic's `context` and `op` are module-global proxies, so two migrations running in
# one process at once clobber each other (KeyError: 'config'). Separate processes are
# serialised by the advisory lock in alembic/env.py; threads of one process by this.
_IN_PROCESS = threading.Lock()


def script_location() -> Path:
    """The directory holding env.py and versions/."""
    for candidate in _SCRIPT_LOCATIONS:
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError(f"no migrations in {' or '.join(map(str, _SCRIPT_LOCATIONS))}")


def alembic_config(database_url: str) -> Config:
    """An Alembic config for our migrations that targets ``database_url``.

    Built in code, not read from alembic.ini (which is for the developers' ``alembic``
    command and is not installed): applying migrations needs only where they are.
    The URL travels in ``attributes``, not in the options, so a ``%`` in a password is
    not taken for configparser interpolation."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: str) -> None:
    """Blocking; call it off the event loop (``asyncio.to_thread``) from async code."""
    with _IN_PROCESS:
        command.upgrade(alembic_config(database_url), "head")


def downgrade_to_base(database_url: str) -> None:
    with _IN_PROCESS:
        command.downgrade(alembic_config(database_url), "base")
