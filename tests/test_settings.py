"""Settings come from environment variables with the contract's names and defaults."""

import io

import pytest
from pydantic import ValidationError

from app.logs import resolve_format
from app.settings import Settings, describe_validation_error

SECRET = "s" * 40
DB_URL = "postgresql://postgres@127.0.0.1:5432/dlsms"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the outer environment (CI sets DATABASE_URL) leaks into a test."""
    for name in [*Settings.model_fields, "TEST_DATABASE_URL"]:
        monkeypatch.delenv(name, raising=False)


def settings_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    return describe_validation_error(caught.value)


def test_defaults_match_the_contract() -> None:
    settings = Settings()

    assert settings.GRACE_MINUTES == 15
    assert settings.CHECKIN_EARLY_MINUTES == 15
    assert settings.CLAIM_MINUTES == 10
    assert settings.MAX_RESERVATION_HOURS == 4
    assert settings.BOOKING_HORIZON_DAYS == 14
    assert settings.SWEEP_INTERVAL_SECONDS == 60
    assert settings.LOGIN_RATE_LIMIT == 10
    assert settings.NO_SHOW_LIMIT == 3
    assert settings.NO_SHOW_WINDOW_DAYS == 30
    assert settings.SUSPENSION_DAYS == 7
    assert settings.JWT_EXPIRE_HOURS == 24
    assert settings.BCRYPT_ROUNDS == 12
    assert settings.CORS_ORIGINS == []
    assert settings.DATABASE_URL is None
    assert settings.REDIS_URL is None
    assert settings.DEMO_TIMEZONE == "UTC"


def test_durations_accept_decimals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRACE_MINUTES", "0.05")
    monkeypatch.setenv("SWEEP_INTERVAL_SECONDS", "0.5")

    settings = Settings()

    assert settings.GRACE_MINUTES == 0.05
    assert settings.SWEEP_INTERVAL_SECONDS == 0.5


def test_values_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", DB_URL)
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("BCRYPT_ROUNDS", "5")
    monkeypatch.setenv("NO_SHOW_LIMIT", "2")
    monkeypatch.setenv("DEMO_TIMEZONE", "Europe/Berlin")

    settings = Settings()

    assert settings.DATABASE_URL == DB_URL
    assert settings.jwt_secret == SECRET
    assert settings.REDIS_URL == "redis://127.0.0.1:6379/0"
    assert settings.BCRYPT_ROUNDS == 5
    assert settings.NO_SHOW_LIMIT == 2
    assert settings.DEMO_TIMEZONE == "Europe/Berlin"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GRACE_MINUTES", "-1"),
        ("GRACE_MINUTES", "abc"),
        ("BCRYPT_ROUNDS", "3"),
        ("LOGIN_RATE_LIMIT", "0"),
        ("CLAIM_MINUTES", "0"),
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "http://x"),
        ("DEMO_TIMEZONE", "Mars/Olympus"),
        ("JWT_SECRET", "too-short-secret"),
        ("ADMIN_PASSWORD", "p" * 73),
        ("ADMIN_PASSWORD", "short"),
    ],
)
def test_invalid_value_is_reported_in_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    message = settings_error(monkeypatch, **{name: value})

    assert name in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [("JWT_SECRET", "hunter2-not-long-enough"), ("ADMIN_PASSWORD", "hunter2" + "x" * 70)],
)
def test_invalid_secret_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    message = settings_error(monkeypatch, **{name: value})

    assert name in message
    assert "hunter2" not in message


def test_jwt_secret_is_required_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, DLSMS_ENV="production")

    assert "JWT_SECRET" in message
    assert "\n" not in message


def test_environment_is_development_without_database_url_with_a_random_secret() -> None:
    first, second = Settings(), Settings()

    assert first.DLSMS_ENV == "development"
    assert first.jwt_secret_generated
    assert len(first.jwt_secret.encode()) >= 32
    assert first.jwt_secret != second.jwt_secret


def test_environment_is_production_with_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", DB_URL)
    monkeypatch.setenv("JWT_SECRET", SECRET)

    settings = Settings()

    assert settings.DLSMS_ENV == "production"
    assert not settings.jwt_secret_generated
    assert settings.jwt_secret == SECRET


def test_database_url_without_jwt_secret_fails_unless_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", DB_URL)
    assert "JWT_SECRET" in settings_error(monkeypatch)

    monkeypatch.setenv("DLSMS_ENV", "development")
    assert Settings().jwt_secret_generated


def test_cors_origins_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.edu, https://b.edu")

    assert Settings().CORS_ORIGINS == ["https://a.edu", "https://b.edu"]


def test_forwarded_allow_ips_defaults_to_uvicorns_loopback_only() -> None:
    assert Settings().FORWARDED_ALLOW_IPS == ["127.0.0.1", "::1"]


@pytest.mark.parametrize(
    ("value", "trusted"),
    [
        ("172.30.0.10", ["172.30.0.10"]),
        (" 10.0.0.0/8, fd00::/8 ,127.0.0.2", ["10.0.0.0/8", "fd00::/8", "127.0.0.2"]),
        ("*", ["*"]),
        ("", []),  # no proxy: every client is taken at its socket's address
    ],
)
def test_forwarded_allow_ips_are_comma_separated_addresses_and_networks(
    monkeypatch: pytest.MonkeyPatch, value: str, trusted: list[str]
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)

    assert trusted == Settings().FORWARDED_ALLOW_IPS


@pytest.mark.parametrize("value", ["nginx", "10.0.0.1/8", "10.0.0.0/33", "*,10.0.0.1", "1.2.3"])
def test_a_forwarded_allow_ips_entry_that_no_peer_could_match_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = settings_error(monkeypatch, FORWARDED_ALLOW_IPS=value)

    assert message.startswith("invalid settings: FORWARDED_ALLOW_IPS: ")
    assert "\n" not in message


class _Stream(io.StringIO):
    def __init__(self, *, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_log_format_is_auto_by_default_text_on_a_terminal_json_elsewhere() -> None:
    log_format = Settings().LOG_FORMAT

    assert log_format == "auto"
    assert resolve_format(log_format, _Stream(tty=True)) == "text"
    assert resolve_format(log_format, _Stream(tty=False)) == "json"


@pytest.mark.parametrize("value", ["json", "text"])
@pytest.mark.parametrize("tty", [True, False])
def test_log_format_set_explicitly_wins_whatever_stderr_is(
    monkeypatch: pytest.MonkeyPatch, value: str, tty: bool
) -> None:
    monkeypatch.setenv("LOG_FORMAT", value)

    assert resolve_format(Settings().LOG_FORMAT, _Stream(tty=tty)) == value


def test_unknown_log_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, LOG_FORMAT="yaml")

    assert message.startswith("invalid settings: LOG_FORMAT: ")
