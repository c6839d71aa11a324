"""TokenVerifier (app/security.py): a valid token is verified once and remembered until
it expires; an invalid or expired one is refused every time."""

import time
from datetime import timedelta

import pytest

from app.errors import InvalidToken
from app.models import Role
from app.security import TokenVerifier, encode_token
from app.timeutil import utcnow

SECRET = "s" * 32


def token(*, ttl: timedelta, user_id: int = 7) -> str:
    issued, _ = encode_token(
        secret=SECRET, user_id=user_id, student_id="S7", role=Role.STUDENT, now=utcnow(), ttl=ttl
    )
    return issued


def test_a_valid_token_is_checked_once_then_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(SECRET)
    valid = token(ttl=timedelta(hours=1))
    assert verifier.user(valid).id == 7

    def no_second_check(*_: object, **__: object) -> object:
        raise AssertionError("verified again")

    monkeypatch.setattr("app.security.decode_token", no_second_check)
    assert verifier.user(valid).id == 7


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    verifier = TokenVerifier(SECRET)
    short = token(ttl=timedelta(seconds=1))
    assert verifier.user(short).id == 7
    time.sleep(1.1)
    with pytest.raises(InvalidToken):
        verifier.user(short)


def test_a_token_under_another_secret_is_refused_every_time() -> None:
    verifier = TokenVerifier("t" * 32)
    for _ in range(2):
        with pytest.raises(InvalidToken):
            verifier.user(token(ttl=timedelta(hours=1)))


def test_memory_is_bounded() -> None:
    verifier = TokenVerifier(SECRET, capacity=3)
    tokens = [token(ttl=timedelta(hours=1), user_id=n) for n in range(1, 8)]
    assert [verifier.user(t).id for t in tokens] == list(range(1, 8))
    assert len(verifier._valid) <= 3
