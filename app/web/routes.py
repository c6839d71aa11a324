"""The web app's pages: server-rendered shells that the ES modules in ``static/js`` fill
from the JSON API (the pages are the API's first client; no page reads the database).

Every page ``X.html`` extends ``templates/base.html`` and loads ``static/js/shell.js``
(nav, session, live offers) and its own module ``static/js/pages/X.js``. No inline script
or style anywhere: the Content-Security-Policy allows only files from this origin.
"""

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
TEMPLATES = Jinja2Templates(directory=_HERE / "templates")

router = APIRouter(include_in_schema=False)

SeatId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]


def _page(request: Request, template: str, title: str, **context: Any) -> HTMLResponse:
    module = template.removesuffix(".html")
    return TEMPLATES.TemplateResponse(
        request, template, {"title": title, "module": module, **context}
    )


@router.get("/")
async def home() -> RedirectResponse:
    """The branches: readable without signing in; the nav offers Sign in."""
    return RedirectResponse("/app/branches", status_code=303)


@router.get("/app/signin", response_class=HTMLResponse)
async def signin_page(request: Request) -> HTMLResponse:
    return _page(request, "signin.html", "Sign in")


@router.get("/app/register", response_class=HTMLResponse)
async def register_page(request: Request) -> HTMLResponse:
    return _page(request, "register.html", "Create an account")


@router.get("/app/branches", response_class=HTMLResponse)
async def branches_page(request: Request) -> HTMLResponse:
    return _page(request, "branches.html", "Branches")


@router.get("/app/find", response_class=HTMLResponse)
async def find_seat_page(request: Request) -> HTMLResponse:
    """Find me a seat: GET /seats/suggest for a duration, each suggestion with Book."""
    return _page(request, "find.html", "Find me a seat")


@router.get("/app/branches/{name}", response_class=HTMLResponse)
async def seat_map_page(request: Request, name: str) -> HTMLResponse:
    return _page(request, "seatmap.html", name, branch=name)


@router.get("/app/reservations", response_class=HTMLResponse)
async def reservations_page(request: Request) -> HTMLResponse:
    return _page(request, "reservations.html", "My reservations")


@router.get("/app/waitlist", response_class=HTMLResponse)
async def waitlist_page(request: Request) -> HTMLResponse:
    return _page(request, "waitlist.html", "Waitlist")


@router.get("/app/notifications", response_class=HTMLResponse)
async def notifications_page(request: Request) -> HTMLResponse:
    return _page(request, "notifications.html", "Notifications")


@router.get("/s/{seat_id}", response_class=HTMLResponse)
async def seat_code_page(
    request: Request, seat_id: SeatId, k: Annotated[str, Query(max_length=64)] = ""
) -> HTMLResponse:
    """A seat's printed code, opened from a phone camera: the page posts the scan."""
    return _page(request, "scan.html", "Seat check-in", seat_id=seat_id, k=k)


# Staff pages (role admin). Anyone may load the shell; its module asks /auth/me and shows
# "staff only" to a student, and every /admin call it makes is refused with 403 anyway.


@router.get("/app/staff")
async def staff_home() -> RedirectResponse:
    return RedirectResponse("/app/staff/seats", status_code=303)


@router.get("/app/staff/seats", response_class=HTMLResponse)
async def staff_seats_page(request: Request) -> HTMLResponse:
    return _page(request, "staff/seats.html", "Seats · Staff")


@router.get("/app/staff/codes/{branch}", response_class=HTMLResponse)
async def staff_codes_page(request: Request, branch: str) -> HTMLResponse:
    """The printable sheet of a branch's seat codes (A4)."""
    return _page(request, "staff/codes.html", f"Seat codes · {branch}", branch=branch)


@router.get("/app/staff/hours", response_class=HTMLResponse)
async def staff_hours_page(request: Request) -> HTMLResponse:
    """A branch's weekly hours and its closures (PUT .../hours, POST/DELETE closures)."""
    return _page(request, "staff/hours.html", "Hours and closures · Staff")


@router.get("/app/staff/policy", response_class=HTMLResponse)
async def staff_policy_page(request: Request) -> HTMLResponse:
    """A branch's booking rules (PUT /admin/branches/{id}/policy)."""
    return _page(request, "staff/policy.html", "Policy · Staff")


@router.get("/app/staff/desk", response_class=HTMLResponse)
async def staff_desk_page(request: Request) -> HTMLResponse:
    return _page(request, "staff/desk.html", "Desk · Staff")


@router.get("/app/staff/stats", response_class=HTMLResponse)
async def staff_stats_page(request: Request) -> HTMLResponse:
    return _page(request, "staff/stats.html", "Statistics · Staff")


@router.get("/app/staff/audit", response_class=HTMLResponse)
async def staff_audit_page(request: Request) -> HTMLResponse:
    return _page(request, "staff/audit.html", "Audit log · Staff")


def install(app: FastAPI) -> None:
    """The pages and ``/static`` (files of this package: works from a wheel too)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
