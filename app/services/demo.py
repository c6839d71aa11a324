"""The demo library from the seed documents: 3 branches, 49 seats, 10 students, 1 admin."""

import asyncio
import secrets
from dataclasses import dataclass

from app.db import demo as demo_db
from app.db.pool import Connection
from app.security import PasswordHasher
from app.settings import Settings

STUDENT_PASSWORD = "password123"  # noqa: S105 (the documented demo password)
ADMIN_STUDENT_ID = "admin"

# (area, label prefix, count, has_power, has_monitor), per branch.
_LAYOUT: dict[str, list[tuple[str, str, int, bool, bool]]] = {
    "Main Library": [
        ("Quiet Reading Room", "M-Q", 10, False, False),
        ("Window Carrels", "M-W", 5, True, False),
        ("Group Study", "M-G", 6, True, False),
        ("Computer Area", "M-C", 4, True, True),
    ],
    "Science Library": [
        ("Silent Study", "S-S", 6, True, False),
        ("Lab Annex", "S-L", 6, True, True),
    ],
    "Engineering Library": [
        ("Design Studio", "E-D", 6, True, True),
        ("Quiet Zone", "E-Q", 6, False, False),
    ],
}

_STUDENT_NAMES = [
    "Alice Chen",
    "Ben Okafor",
    "Chloe Martin",
    "Daniel Kim",
    "Emma Rossi",
    "Farid Haddad",
    "Grace Liu",
    "Hugo Silva",
    "Isla Novak",
    "Jonas Weber",
]


@dataclass(frozen=True)
class SeedResult:
    branches: int
    seats: int
    students_created: int
    admin_created: bool
    admin_password_generated: str | None  # shown once to the operator, never logged


def demo_seats(branch: str) -> list[tuple[str, str, bool, bool]]:
    """(area, label, has_power, has_monitor) for every demo seat of ``branch``."""
    return [
        (area, f"{prefix}{n:02d}", power, monitor)
        for area, prefix, count, power, monitor in _LAYOUT[branch]
        for n in range(1, count + 1)
    ]


async def seed_demo(conn: Connection, hasher: PasswordHasher, settings: Settings) -> SeedResult:
    """Create what is missing of the demo library; existing rows are left as they are,
    except the admin's password when ADMIN_PASSWORD is given."""
    students = [(f"S20210{n:02d}", name) for n, name in enumerate(_STUDENT_NAMES, start=1)]
    wanted = [sid for sid, _ in students] + [ADMIN_STUDENT_ID]
    existing = await demo_db.existing_student_ids(conn, wanted)
    new_students = [(sid, name) for sid, name in students if sid not in existing]

    admin_password, generated = _admin_password(settings)
    admin_created = ADMIN_STUDENT_ID not in existing
    set_admin_password = admin_created or not generated
    # Hash concurrently (bcrypt runs in threads) before opening the transaction.
    to_hash = [STUDENT_PASSWORD] * len(new_students)
    if set_admin_password:
        to_hash.append(admin_password)
    hashes = await asyncio.gather(*(hasher.hash(password) for password in to_hash))
    student_hashes = hashes[: len(new_students)]

    async with conn.transaction():
        seats = 0
        for branch, _ in _LAYOUT.items():
            branch_id = await demo_db.upsert_branch(conn, branch, settings.DEMO_TIMEZONE)
            branch_seats = demo_seats(branch)
            await demo_db.insert_seats(conn, branch_id, branch_seats)
            seats += len(branch_seats)
        await demo_db.insert_users(
            conn,
            [
                (sid, name, f"{sid.lower()}@students.example.edu", password_hash, "student")
                for (sid, name), password_hash in zip(new_students, student_hashes, strict=True)
            ],
        )
        if admin_created:
            await demo_db.insert_users(
                conn, [(ADMIN_STUDENT_ID, "Library Staff", None, hashes[-1], "admin")]
            )
        elif set_admin_password:
            await demo_db.set_password(conn, ADMIN_STUDENT_ID, hashes[-1])

    return SeedResult(
        branches=len(_LAYOUT),
        seats=seats,
        students_created=len(new_students),
        admin_created=admin_created,
        admin_password_generated=admin_password if generated and admin_created else None,
    )


def _admin_password(settings: Settings) -> tuple[str, bool]:
    if settings.ADMIN_PASSWORD is not None:
        return settings.ADMIN_PASSWORD.get_secret_value(), False
    return secrets.token_urlsafe(12), True
