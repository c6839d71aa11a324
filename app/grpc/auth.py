"""AuthService: the twins of POST /auth/login, /auth/register, /auth/verify, GET /auth/me."""

from app.db.pool import connection
from app.grpc import convert
from app.grpc.calls import Context, Servicer, client_address
from app.grpc.generated import dlsms_pb2 as pb
from app.grpc.generated import dlsms_pb2_grpc as pb_grpc
from app.schemas.auth import LoginIn, RegisterIn, VerifyIn
from app.services import auth as auth_service


class AuthServicer(Servicer, pb_grpc.AuthServiceServicer):
    async def Login(self, request: pb.LoginRequest, context: Context) -> pb.LoginResponse:
        body = LoginIn(student_id=request.student_id, password=request.password)
        result = await auth_service.login(
            self.state["pool"],
            self.state["hasher"],
            self.state["login_limiter"],
            self.state["settings"],
            student_id=body.student_id,
            password=body.password,
            address=await client_address(context, self.state["settings"].FORWARDED_ALLOW_IPS),
            now=self.now(),
        )
        return pb.LoginResponse(
            access_token=result.access_token,
            token_type="bearer",  # noqa: S106 (OAuth2 token type, not a secret)
            expires_at=convert.timestamp(result.expires_at),
            user=convert.user(result.user),
        )

    async def Register(self, request: pb.RegisterRequest, context: Context) -> pb.User:
        body = RegisterIn(
            student_id=request.student_id,
            name=request.name,
            password=request.password,
            email=convert.optional(request, "email"),
        )
        created = await auth_service.register(
            self.state["pool"],
            self.state["hasher"],
            student_id=body.student_id,
            name=body.name,
            email=body.email,
            password=body.password,
        )
        return convert.user(created)

    async def Verify(self, request: pb.VerifyRequest, context: Context) -> pb.VerifyResponse:
        body = VerifyIn(token=request.token)
        claims = auth_service.verify(self.state["settings"], body.token)
        return pb.VerifyResponse(
            valid=True,
            user_id=claims.user.id,
            student_id=claims.user.student_id,
            role=str(claims.user.role),
            expires_at=convert.timestamp(claims.expires_at),
        )

    async def GetMe(self, request: pb.GetMeRequest, context: Context) -> pb.User:
        caller = self.user(context)
        async with connection(self.state["pool"]) as conn:
            me = await auth_service.me(
                conn, self.state["settings"], user_id=caller.id, now=self.now()
            )
        return convert.user(me.user, suspended_until=me.suspended_until)
