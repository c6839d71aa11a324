"""SMTP_URL: the forms of the contract, and the password never shown."""

import pytest
from pydantic import ValidationError

from app.services.mail import smtp_config
from app.settings import Settings, describe_validation_error
from tests.factories import TEST_JWT_SECRET


def settings(**values: object) -> Settings:
    return Settings(DLSMS_ENV="test", JWT_SECRET=TEST_JWT_SECRET, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.example.edu", ("relay.example.edu", 25, None, None, False, False)),
        (
            "smtp://dlsms:p%40ss%3Aw%2Fd@smtp.example.edu:587?starttls=true",
            ("smtp.example.edu", 587, "dlsms", "p@ss:w/d", False, True),
        ),
        ("smtps://u:p@smtp.example.edu", ("smtp.example.edu", 465, "u", "p", True, False)),
        ("smtps://u:p@smtp.example.edu:2465", ("smtp.example.edu", 2465, "u", "p", True, False)),
    ],
)
def test_smtp_url_forms(url: str, expected: tuple[object, ...]) -> None:
    config = smtp_config(settings(SMTP_URL=url, MAIL_FROM="Seats <seats@example.edu>"))
    assert config is not None
    got = (
        config.host,
        config.port,
        config.username,
        config.password,
        config.use_tls,
        config.start_tls,
    )
    assert got == expected
    assert config.sender == "Seats <seats@example.edu>"
    assert "password" not in repr(config) and "p@ss" not in repr(config)


def test_unset_or_empty_means_no_email() -> None:
    assert smtp_config(settings()) is None
    assert smtp_config(settings(SMTP_URL="")) is None


def test_the_password_is_never_echoed() -> None:
    s = settings(SMTP_URL="smtp://u:hunter2-secret@relay.example.edu:25")
    assert "hunter2-secret" not in repr(s)
    assert "hunter2-secret" not in str(s.model_dump())
    with pytest.raises(ValidationError) as bad:
        settings(SMTP_URL="http://u:hunter2-secret@relay.example.edu")
    line = describe_validation_error(bad.value)
    assert "SMTP_URL" in line
    assert "hunter2-secret" not in line


@pytest.mark.parametrize(
    "url", ["relay.example.edu", "smtp://", "imap://relay.example.edu", "smtp://h:99999"]
)
def test_bad_smtp_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        settings(SMTP_URL=url)


def test_reminder_minutes_must_be_positive() -> None:
    assert settings().REMINDER_MINUTES == 30
    with pytest.raises(ValidationError):
        settings(REMINDER_MINUTES=0)
