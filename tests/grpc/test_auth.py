"""AuthService over gRPC: the twins of /auth/* and the token in metadata."""

from datetime import timedelta
from typing import Any

import grpc

from app.grpc.generated import dlsms_pb2 as pb
from app.models import Role
from app.security import encode_token
from app.timeutil import utcnow
from tests.factories import TEST_JWT_SECRET, Student
from tests.grpc.conftest import GrpcApp, GrpcFactory, auth, refused, retry_info

PASSWORD = "correct horse"
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def signed_up(app: GrpcApp, student_id: str = "S1000001") -> pb.LoginResponse:
    await app.auth.Register(
        pb.RegisterRequest(student_id=student_id, name="Test Student", password=PASSWORD)
    )
    return await app.auth.Login(pb.LoginRequest(student_id=student_id, password=PASSWORD))


async def test_register_login_verify_and_get_me(app: GrpcApp) -> None:
    user = await app.auth.Register(
        pb.RegisterRequest(
            student_id="S1000001", name="Ada", password=PASSWORD, email="ada@example.org"
        )
    )
    assert (user.student_id, user.name, user.email, user.role) == (
        "S1000001",
        "Ada",
        "ada@example.org",
        "student",
    )
    assert user.id > 0 and user.created_at.seconds > 0

    login = await app.auth.Login(pb.LoginRequest(student_id="S1000001", password=PASSWORD))
    assert login.token_type == "bearer"
    assert login.user.id == user.id
    assert login.expires_at.seconds > utcnow().timestamp()

    verified = await app.auth.Verify(pb.VerifyRequest(token=login.access_token))
    assert (verified.valid, verified.user_id, verified.student_id, verified.role) == (
        True,
        user.id,
        "S1000001",
        "student",
    )
    metadata = (("authorization", f"Bearer {login.access_token}"),)
    me = await app.auth.GetMe(pb.GetMeRequest(), metadata=metadata)
    assert (me.id, me.student_id) == (user.id, "S1000001")
    assert not me.HasField("suspended_until")

    # The token works over HTTP too: one JWT for both interfaces.
    http_me = await app.http.get("/auth/me", headers={"Authorization": metadata[0][1]})
    assert http_me.json()["id"] == user.id


async def test_get_me_without_a_token_is_unauthenticated_not_authenticated(app: GrpcApp) -> None:
    await refused(app.auth.GetMe(pb.GetMeRequest()), UNAUTHENTICATED, "not_authenticated")


async def test_get_me_with_a_malformed_authorization_is_unauthenticated(app: GrpcApp) -> None:
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "token-without-scheme"):
        call = app.auth.GetMe(pb.GetMeRequest(), metadata=(("authorization", value),))
        await refused(call, UNAUTHENTICATED, "not_authenticated")
    garbage = (("authorization", "Bearer not.a.jwt"),)
    await refused(
        app.auth.GetMe(pb.GetMeRequest(), metadata=garbage), UNAUTHENTICATED, "invalid_token"
    )


async def test_an_expired_token_is_unauthenticated_invalid_token(
    app: GrpcApp, alice: Student
) -> None:
    token, _ = encode_token(
        secret=TEST_JWT_SECRET,
        user_id=alice.id,
        student_id=alice.student_id,
        role=Role.STUDENT,
        now=utcnow() - timedelta(days=2),
        ttl=timedelta(hours=1),
    )
    expired = (("authorization", f"Bearer {token}"),)
    await refused(
        app.auth.GetMe(pb.GetMeRequest(), metadata=expired), UNAUTHENTICATED, "invalid_token"
    )
    await refused(app.auth.Verify(pb.VerifyRequest(token=token)), UNAUTHENTICATED, "invalid_token")
    # A good token of the same user passes.
    assert (await app.auth.GetMe(pb.GetMeRequest(), metadata=auth(alice))).id == alice.id


async def test_wrong_password_is_unauthenticated_invalid_credentials(app: GrpcApp) -> None:
    await signed_up(app)
    wrong = pb.LoginRequest(student_id="S1000001", password="wrong horse")
    await refused(app.auth.Login(wrong), UNAUTHENTICATED, "invalid_credentials")


async def test_registering_a_taken_student_id_is_already_exists(app: GrpcApp) -> None:
    await signed_up(app)
    again = pb.RegisterRequest(student_id="S1000001", name="Other", password=PASSWORD)
    await refused(app.auth.Register(again), grpc.StatusCode.ALREADY_EXISTS, "already_exists")


async def test_a_short_password_is_invalid_argument_naming_the_field(app: GrpcApp) -> None:
    short = pb.RegisterRequest(student_id="S1000001", name="Ada", password="short")
    error = await refused(app.auth.Register(short), grpc.StatusCode.INVALID_ARGUMENT, None)
    assert "password" in (error.details() or "")


async def test_too_many_failed_logins_are_resource_exhausted_with_retry_info(
    make_grpc: GrpcFactory,
) -> None:
    app = await make_grpc(LOGIN_RATE_LIMIT=1)
    await signed_up(app)
    wrong = pb.LoginRequest(student_id="S1000001", password="wrong horse")
    await refused(app.auth.Login(wrong), UNAUTHENTICATED, "invalid_credentials")
    error = await refused(app.auth.Login(wrong), grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")
    retry = retry_info(error)
    assert retry is not None and retry.retry_delay.seconds >= 1


async def test_login_limits_count_the_client_a_trusted_proxy_names(
    make_grpc: GrpcFactory,
) -> None:
    # The test client connects from 127.0.0.1, trusted by default (FORWARDED_ALLOW_IPS).
    app = await make_grpc(LOGIN_RATE_LIMIT=1)

    def wrong(student_id: str, client: str) -> Any:
        return app.auth.Login(
            pb.LoginRequest(student_id=student_id, password="wrong horse"),
            metadata=(("x-forwarded-for", client),),
        )

    await refused(wrong("S1", "203.0.113.5"), UNAUTHENTICATED, "invalid_credentials")
    # Another student from the same client: that client's budget is spent.
    await refused(wrong("S2", "203.0.113.5"), grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")
    # Another client behind the same proxy is not.
    await refused(wrong("S3", "203.0.113.6"), UNAUTHENTICATED, "invalid_credentials")


async def test_an_untrusted_peer_cannot_name_its_client(make_grpc: GrpcFactory) -> None:
    app = await make_grpc(LOGIN_RATE_LIMIT=1, FORWARDED_ALLOW_IPS="")

    def wrong(student_id: str, client: str) -> Any:
        return app.auth.Login(
            pb.LoginRequest(student_id=student_id, password="wrong horse"),
            metadata=(("x-forwarded-for", client),),
        )

    await refused(wrong("S1", "203.0.113.5"), UNAUTHENTICATED, "invalid_credentials")
    # A made-up x-forwarded-for changes nothing: the peer (127.0.0.1) is limited.
    await refused(wrong("S2", "203.0.113.6"), grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")
