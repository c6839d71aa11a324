"""Browser-facing security headers on every response: no MIME sniffing, no framing, no
referrer to other origins, and a Content-Security-Policy that runs only this origin's
script files (no inline script anywhere).

Added by the edge (app/edge.py) to every HTTP answer. A response that sets one of these
headers itself keeps its own value: the documentation pages send a CSP naming the
hashes of their inline bootstrap scripts (app/apidocs.py).
"""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
)
_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


def complete(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (a response's, lower-case names) with the security headers it lacks."""
    present = [name.lower() for name, _ in headers if name.lower() in _NAMES]
    if not present:  # the usual case: none set by the response itself
        headers.extend(SECURITY_HEADERS)
    else:
        headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
    return headers
