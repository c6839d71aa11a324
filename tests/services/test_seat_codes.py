"""Seat codes without a database: the formula, the matching, the settings behind them."""

import base64
import hashlib
import hmac
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from app.services import seat_codes
from app.settings import Settings, describe_validation_error
from tests.factories import TEST_JWT_SECRET

SECRET = "s" * 40


def settings(**values: Any) -> Settings:
    return Settings(
        DATABASE_URL="postgresql://x/y", JWT_SECRET=SecretStr(TEST_JWT_SECRET), **values
    )


def test_code_is_ten_characters_of_upper_case_base32_of_the_hmac() -> None:
    for seat_id in (1, 42, 2**63 - 1):
        mac = hmac.new(SECRET.encode(), f"seat:{seat_id}".encode(), hashlib.sha256).digest()
        expected = base64.b32encode(mac).decode()[:10]
        assert seat_codes.code(SECRET.encode(), seat_id) == expected
        assert expected.isupper() or expected.isalnum()


def test_match_ignores_case_and_refuses_anything_else() -> None:
    k = seat_codes.code(SECRET.encode(), 7)
    assert seat_codes.matches(SECRET.encode(), 7, k)
    assert seat_codes.matches(SECRET.encode(), 7, k.lower())
    for wrong in (None, "", k[:9], k + "A", " " + k, seat_codes.code(SECRET.encode(), 8), "ß" * 10):
        assert not seat_codes.matches(SECRET.encode(), 7, wrong)
    assert not seat_codes.matches(b"other" * 8, 7, k)


def test_default_secret_is_derived_from_jwt_secret_and_never_equals_it() -> None:
    derived = hmac.new(TEST_JWT_SECRET.encode(), b"dlsms seat codes", hashlib.sha256).hexdigest()
    assert settings().seat_code_secret == derived.encode()
    assert settings().seat_code_secret != TEST_JWT_SECRET.encode()
    assert settings(SEAT_CODE_SECRET=SECRET).seat_code_secret == SECRET.encode()


@pytest.mark.parametrize("value", [TEST_JWT_SECRET, "short"])
def test_a_bad_seat_code_secret_stops_startup_without_echoing_it(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(SEAT_CODE_SECRET=value)
    message = describe_validation_error(caught.value)
    assert "SEAT_CODE_SECRET" in message and value not in message


def test_the_secret_is_not_shown_in_the_settings_repr() -> None:
    assert SECRET not in repr(settings(SEAT_CODE_SECRET=SECRET))


def test_public_url_is_an_http_base_without_trailing_slash() -> None:
    assert settings().PUBLIC_URL is None
    assert settings(PUBLIC_URL="").PUBLIC_URL is None
    assert settings(PUBLIC_URL="https://lib.example/seats/").PUBLIC_URL == (
        "https://lib.example/seats"
    )
    for bad in ("lib.example", "ftp://lib.example", "https://lib.example/?x=1", "https://"):
        with pytest.raises(ValidationError, match="PUBLIC_URL"):
            settings(PUBLIC_URL=bad)
