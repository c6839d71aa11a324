"""What every servicer needs from a call: the process's state, the caller (the same
JWT check as HTTP's ``CurrentUser``), the client's address and the clock."""

from datetime import datetime
from typing import Any

import grpc

from app.errors import Forbidden, NotAuthenticated
from app.models import TokenUser
from app.security import decode_token
from app.state import AppState

Context = grpc.aio.ServicerContext[Any, Any]


class Servicer:
    """Base of the servicers: the lifespan's state, shared with the HTTP side."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def now(self) -> datetime:
        return self.state["clock"].now()

    def user(self, context: Context) -> TokenUser:
        """The caller, from metadata ``authorization: Bearer <token>``."""
        token = bearer_token(context)
        if token is None:
            raise NotAuthenticated()
        return decode_token(token, secret=self.state["settings"].jwt_secret).user

    def admin(self, context: Context) -> TokenUser:
        user = self.user(context)
        if not user.is_admin:
            raise Forbidden("This needs the admin role")
        return user


def bearer_token(context: Context) -> str | None:
    """The token of a ``Bearer`` authorization, else None (as OAuth2PasswordBearer)."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None
            return token.strip()
    return None


def client_address(context: Context) -> str:
    """The peer's address (``ipv4:10.0.0.1:5555`` -> ``10.0.0.1``), for the login limits."""
    peer = context.peer() or "unknown"
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]").replace("%5B", "").replace("%5D", "")
    return peer
