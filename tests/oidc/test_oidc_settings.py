"""The OIDC_* settings: all three or none, an https issuer (http only on this machine
outside production), the secret never echoed."""

from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import Settings, describe_validation_error
from tests.factories import TEST_JWT_SECRET

SECRET = "very-secret-client-secret"
FULL = {
    "OIDC_ISSUER": "https://sso.example.edu/realms/uni/",
    "OIDC_CLIENT_ID": "dlsms",
    "OIDC_CLIENT_SECRET": SECRET,
}


def _settings(**values: Any) -> Settings:
    # As the environment gives them: strings, validated by the model.
    return Settings.model_validate(
        {"JWT_SECRET": TEST_JWT_SECRET, "DATABASE_URL": "postgresql://x/y", **values}
    )


def test_unset_is_off() -> None:
    settings = _settings()
    assert not settings.oidc_enabled
    assert settings.OIDC_STUDENT_ID_CLAIM == "preferred_username"
    assert settings.OIDC_ADMIN_GROUP is None


def test_all_three_turn_it_on() -> None:
    settings = _settings(**FULL, OIDC_ADMIN_GROUP="staff")
    assert settings.oidc_enabled
    assert settings.OIDC_ISSUER == "https://sso.example.edu/realms/uni"  # no trailing /
    assert settings.OIDC_CLIENT_SECRET is not None
    assert SECRET not in repr(settings)


@pytest.mark.parametrize("missing", sorted(FULL))
def test_all_or_none(missing: str) -> None:
    values = {name: value for name, value in FULL.items() if name != missing}
    with pytest.raises(ValidationError) as caught:
        _settings(**values)
    line = describe_validation_error(caught.value)
    assert "all or none" in line
    assert SECRET not in line


@pytest.mark.parametrize(
    ("issuer", "env", "ok"),
    [
        ("http://127.0.0.1:8080", "test", True),
        ("http://localhost:8080/realms/x", "development", True),
        ("http://localhost:8080", "production", False),
        ("http://sso.example.edu", "test", False),
        ("ftp://sso.example.edu", "test", False),
        ("https://sso.example.edu?x=1", "production", False),
        ("https://user:pw@sso.example.edu", "production", False),
    ],
)
def test_issuer_must_be_https(issuer: str, env: str, ok: bool) -> None:
    values = {**FULL, "OIDC_ISSUER": issuer}
    if ok:
        assert issuer.rstrip("/") == _settings(DLSMS_ENV=env, **values).OIDC_ISSUER
        return
    with pytest.raises(ValidationError) as caught:
        _settings(DLSMS_ENV=env, **values)
    assert SECRET not in describe_validation_error(caught.value)


def test_empty_values_mean_unset() -> None:
    settings = _settings(OIDC_ISSUER="", OIDC_CLIENT_ID="", OIDC_CLIENT_SECRET="")
    assert not settings.oidc_enabled
