"""`dlsms` logs plain text to a terminal and JSON lines anywhere else; LOG_FORMAT,
when set, decides whatever standard error is."""

import errno
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.test_cli import DLSMS, cli_env

pytestmark = pytest.mark.slow

# `dlsms migrate` logs through Alembic's logger at INFO: the line every format is judged by.
ALEMBIC_LINE = "Context impl PostgresqlImpl."


def migrate_with_stderr_on_a_terminal(env: dict[str, str], cwd: Path) -> list[str]:
    """Run `dlsms migrate` with standard error a pseudo-terminal; its stderr lines."""
    controller, terminal = os.openpty()
    try:
        proc = subprocess.Popen(
            [DLSMS, "migrate"],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
        )
    finally:
        os.close(terminal)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError as exc:  # Linux: EIO once the child's end is closed
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
        returncode = proc.wait(timeout=120)
    assert returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode().replace("\r\n", "\n").splitlines()


def migrate_with_stderr_piped(env: dict[str, str], cwd: Path) -> list[str]:
    result = subprocess.run(
        [DLSMS, "migrate"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


def assert_text(lines: list[str]) -> None:
    line = next(line for line in lines if ALEMBIC_LINE in line)
    assert not line.startswith("{"), line
    assert " INFO alembic.runtime.migration [request_id=-] " in line, line


def assert_json(lines: list[str]) -> None:
    assert lines, "no log lines"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    record = next(record for record in records if record["message"] == ALEMBIC_LINE)
    assert record["level"] == "INFO"
    assert record["logger"] == "alembic.runtime.migration"
    assert record["request_id"] == "-"


@pytest.fixture(scope="module")
def migrated_url(fresh_database: Callable[[str], str]) -> str:
    return fresh_database("cli_logs")


def test_logs_are_text_when_stderr_is_a_terminal(migrated_url: str, tmp_path: Path) -> None:
    assert_text(migrate_with_stderr_on_a_terminal(cli_env(migrated_url), tmp_path))


def test_logs_are_json_lines_when_stderr_is_piped(migrated_url: str, tmp_path: Path) -> None:
    assert_json(migrate_with_stderr_piped(cli_env(migrated_url), tmp_path))


def test_log_format_json_wins_over_a_terminal(migrated_url: str, tmp_path: Path) -> None:
    env = cli_env(migrated_url, LOG_FORMAT="json")

    assert_json(migrate_with_stderr_on_a_terminal(env, tmp_path))


def test_log_format_text_wins_over_a_pipe(migrated_url: str, tmp_path: Path) -> None:
    assert_text(migrate_with_stderr_piped(cli_env(migrated_url, LOG_FORMAT="text"), tmp_path))
