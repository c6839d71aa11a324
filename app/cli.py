"""The ``dlsms`` console script: serve, migrate, seed, create-admin."""

import argparse
import asyncio
import getpass
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import uvicorn

from app.db.embedded import EmbeddedPostgres
from app.db.migrations import upgrade_to_head
from app.logs import configure_logging
from app.main import load_settings
from app.security import PasswordHasher
from app.services import accounts, demo
from app.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dlsms", description="DL-SMS seat reservations")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply migrations, then serve HTTP")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--grpc-port",
        type=_port,
        default=None,
        help="also serve gRPC on this port (every worker; as GRPC_PORT)",
    )
    serve.add_argument(
        "--no-access-log",
        action="store_true",
        help="no log line per request (as ACCESS_LOG=false): a proxy in front logs them",
    )
    commands.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    seed = commands.add_parser("seed", help="load data")
    seed.add_argument(
        "--demo",
        action="store_true",
        required=True,
        help="the demo library: 3 branches, 49 seats, 10 students, 1 admin",
    )

    create_admin = commands.add_parser(
        "create-admin",
        help="create an admin account (or promote one); password from ADMIN_PASSWORD or a prompt",
    )
    create_admin.add_argument("student_id", help="the login name, e.g. librarian1")
    create_admin.add_argument("--name", default="Library Staff")

    args = parser.parse_args(argv)
    if getattr(args, "grpc_port", None) is not None:
        # The workers read their settings from the environment: GRPC_PORT reaches them all.
        os.environ["GRPC_PORT"] = str(args.grpc_port)
    if args.command == "serve":
        # gRPC binds where HTTP does, unless GRPC_HOST says otherwise.
        os.environ.setdefault("GRPC_HOST", args.host)
        if args.no_access_log:
            os.environ["ACCESS_LOG"] = "false"
    settings = load_settings()
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT, access_log=settings.ACCESS_LOG)
    if args.command == "serve":
        _serve(settings, host=args.host, port=args.port, workers=args.workers)
    elif args.command == "migrate":
        with _database(settings) as url:
            upgrade_to_head(url)
        print("migrations: up to date")
    elif args.command == "create-admin":
        student_id = _login_name(args.student_id)
        name = _display_name(args.name)
        password = _admin_password(settings)
        with _database(settings) as url:
            upgrade_to_head(url)
            account = asyncio.run(_create_admin(url, settings, student_id, name, password))
        verb = "created" if account.created else "promoted to admin, password set"
        print(f"admin account {student_id!r} (id {account.id}) {verb}")
    elif args.command == "seed":
        with _database(settings) as url:
            upgrade_to_head(url)
            result = asyncio.run(_seed_demo(url, settings))
        _print_seed(result)


@contextmanager
def _database(settings: Settings) -> Iterator[str]:
    """DATABASE_URL, or an embedded PostgreSQL for as long as the block runs."""
    if settings.DATABASE_URL:
        yield settings.DATABASE_URL
        return
    embedded = EmbeddedPostgres(settings.EMBEDDED_PG_DIR)
    url = embedded.start()
    try:
        yield url
    finally:
        embedded.stop()


def _serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    with _database(settings) as url:
        upgrade_to_head(url)
        # Workers (and a single in-process app alike) build their settings from the
        # environment: hand them the embedded database and the one JWT secret, so a
        # token issued by one worker is accepted by the others.
        os.environ["DATABASE_URL"] = url
        os.environ["DLSMS_ENV"] = settings.DLSMS_ENV or "development"
        os.environ["JWT_SECRET"] = settings.jwt_secret
        embedded = settings.DATABASE_URL is None
        base = f"http://{host}:{port}"
        database = (
            f"embedded PostgreSQL in {settings.EMBEDDED_PG_DIR.resolve()}"
            if embedded
            else mask_password(url)
        )
        redis = (
            mask_password(settings.REDIS_URL)
            if settings.REDIS_URL
            else "not configured (no cache; in-process fan-out and rate limits)"
        )
        print(
            f"DL-SMS serving on {base} ({workers} worker{'s' if workers != 1 else ''}, "
            f"{settings.DLSMS_ENV})\n"
            f"  database: {database}\n"
            f"  redis:    {redis}\n"
            f"  docs:     {base}/docs"
            + (f"\n  grpc:     port {settings.GRPC_PORT}" if settings.GRPC_PORT else ""),
            flush=True,
        )
        if settings.jwt_secret_generated:
            print(
                "  warning:  JWT_SECRET not set; a random one is used and tokens won't "
                "survive a restart",
                flush=True,
            )
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the
        # previous handler. Python's default would kill the process on the spot and
        # leave the embedded PostgreSQL running; exiting normally stops it (finally).
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        uvicorn.run(
            "app.main:app",
            host=host,
            port=port,
            workers=workers,
            log_level=settings.LOG_LEVEL.lower(),
            log_config=None,  # our JSON handler (app/logs.py) formats uvicorn's lines too
            access_log=settings.ACCESS_LOG,
            timeout_graceful_shutdown=int(settings.SHUTDOWN_GRACE_SECONDS),
            # create_app applies X-Forwarded-For/-Proto from FORWARDED_ALLOW_IPS: one place.
            proxy_headers=False,
        )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 1..65535 (got {text!r})")
    return port


def _login_name(student_id: str) -> str:
    student_id = student_id.strip()
    if not 1 <= len(student_id) <= 50:
        raise SystemExit("create-admin: STUDENT_ID must be 1 to 50 characters")
    return student_id


def _display_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise SystemExit("create-admin: --name must be 1 to 200 characters")
    return name


def _admin_password(settings: Settings) -> str:
    """ADMIN_PASSWORD, else asked twice on the terminal (never echoed, never logged)."""
    if settings.ADMIN_PASSWORD is not None:
        return settings.ADMIN_PASSWORD.get_secret_value()
    if not sys.stdin.isatty():
        raise SystemExit("create-admin: set ADMIN_PASSWORD, or run it in a terminal to be asked")
    password = getpass.getpass("Password (8 to 72 bytes): ")
    if not 8 <= len(password.encode()) <= 72:
        raise SystemExit("create-admin: the password must be 8 to 72 bytes long")
    if getpass.getpass("Again: ") != password:
        raise SystemExit("create-admin: the passwords differ")
    return password


async def _create_admin(
    url: str, settings: Settings, student_id: str, name: str, password: str
) -> accounts.AdminAccount:
    conn = await asyncpg.connect(url)
    try:
        hasher = PasswordHasher(settings.BCRYPT_ROUNDS, settings.BCRYPT_CONCURRENCY)
        return await accounts.create_admin(
            conn, hasher, student_id=student_id, name=name, password=password
        )
    finally:
        await conn.close()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


async def _seed_demo(url: str, settings: Settings) -> demo.SeedResult:
    conn = await asyncpg.connect(url)
    try:
        hasher = PasswordHasher(settings.BCRYPT_ROUNDS, settings.BCRYPT_CONCURRENCY)
        return await demo.seed_demo(conn, hasher, settings)
    finally:
        await conn.close()


def _print_seed(result: demo.SeedResult) -> None:
    print(
        f"demo library: {result.branches} branches, {result.seats} seats; "
        f"students S2021001..S2021010 (password {demo.STUDENT_PASSWORD!r}), "
        f"{result.students_created} new; admin account {demo.ADMIN_STUDENT_ID!r} "
        f"{'created' if result.admin_created else 'exists'}"
    )
    if result.admin_password_generated:
        print(
            f"admin password (generated; set ADMIN_PASSWORD to choose one): "
            f"{result.admin_password_generated}"
        )
    print(DEMO_HOURS_HINT)


# The demo branches stay open around the clock (v1 clients and tests rely on it).
DEMO_HOURS_HINT = """\
the demo branches are open around the clock; to give one opening hours, sign in as the
admin and open /app/staff/hours, or call the API, e.g.
  curl -X PUT http://127.0.0.1:8000/admin/branches/1/hours -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' \\
       -d '{"weekly": {"monday": [{"opens": "08:00", "closes": "22:00"}], ...}}'
(a day left out is closed; see GET /branches/1 and README "Opening hours")"""


def mask_password(url: str) -> str:
    """The URL with any password replaced by ***, for printing."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


if __name__ == "__main__":
    main()
