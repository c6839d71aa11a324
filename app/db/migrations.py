"""Run the Alembic migrations from code (``dlsms migrate``, ``dlsms serve``, tests)."""

from pathlib import Path

from alembic.config import Config

from alembic import command

_ROOT = Path(__file__).resolve().parents[2]


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
    command.upgrade(alembic_config(database_url), "head")


def downgrade_to_base(database_url: str) -> None:
    command.downgrade(alembic_config(database_url), "base")
