"""A real OpenID provider for tests/oidc: oidc-provider-mock (Flask, Authlib's server)
in its own process, on a local port: ``python -m tests.oidc.provider PORT``.

Around it a thin WSGI layer that tests steer over HTTP, to make the provider misbehave
the ways an attacker or a key rotation would (the provider itself stays untouched):

- ``POST /_test/mode`` ``{"mode": M}``: what the token endpoint's ``id_token`` becomes.
  ``normal`` (as issued), ``tamper`` (claims changed, the signature kept), ``wrong_aud``
  (re-signed with the provider's own key for another audience), ``wrong_iss`` and
  ``expired`` (the same, another issuer or expired an hour ago), ``unknown_kid`` (signed
  with a key the JWKS never lists).
- ``POST /_test/rotate``: the provider signs with a new key from now on (and lists only it).
- ``GET /_test/stats``: how often the JWKS was fetched.
"""

import base64
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import flask
import werkzeug.serving

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the mock imports authlib.jose (deprecated)
    import oidc_provider_mock  # type: ignore[import-untyped]
    from authlib import jose as authlib_jose
from joserfc import jwt
from joserfc.jwk import RSAKey

StartResponse = Callable[..., Any]


class Steered:
    def __init__(self, app: flask.Flask) -> None:
        self.app = app
        with app.test_request_context("/"):
            app.preprocess_request()
            self.storage = flask.g.oidc_provider_mock_storage
        self.mode = "normal"
        self.jwks_requests = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/_test/mode" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            self.mode = json.loads(environ["wsgi.input"].read(length))["mode"]
            return self._json(start_response, {"mode": self.mode})
        if path == "/_test/rotate" and method == "POST":
            self.storage.jwk = authlib_jose.RSAKey.generate_key(is_private=True)
            return self._json(start_response, {"kid": self.storage.jwk.as_dict()["kid"]})
        if path == "/_test/stats":
            return self._json(start_response, {"jwks_requests": self.jwks_requests})
        if path == "/jwks":
            self.jwks_requests += 1
        if path == "/oauth2/token" and self.mode != "normal":
            return self._rewrite_token(environ, start_response)
        return self.app(environ, start_response)

    def _rewrite_token(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(
            status: str, headers: list[tuple[str, str]], *_: Any
        ) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda _data: None

        body = b"".join(self.app(environ, capture))
        if not captured["status"].startswith("200"):
            start_response(captured["status"], captured["headers"])
            return [body]
        token = json.loads(body)
        token["id_token"] = self._bad_id_token(token["id_token"])
        return self._json(start_response, token)

    def _bad_id_token(self, id_token: str) -> str:
        header_b64, payload_b64, signature = id_token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
        if self.mode == "tamper":
            claims["preferred_username"] = "tampered"
            claims["groups"] = ["library-staff"]
            payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
            return f"{header_b64}.{payload.decode()}.{signature}"
        if self.mode in ("wrong_aud", "wrong_iss", "expired"):
            key = RSAKey.import_key(self.storage.jwk.as_dict(is_private=True))
            if self.mode == "wrong_aud":
                claims["aud"] = "another-client"
            elif self.mode == "wrong_iss":
                claims["iss"] = "http://127.0.0.1:9/another-issuer"
            else:
                claims["iat"], claims["exp"] = int(time.time()) - 7200, int(time.time()) - 3600
            return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
        if self.mode == "unknown_kid":
            key = RSAKey.generate_key(2048, {"kid": "not-in-the-jwks"})
            return jwt.encode({"alg": "RS256", "kid": "not-in-the-jwks"}, claims, key)
        raise ValueError(self.mode)

    @staticmethod
    def _json(start_response: StartResponse, value: Any) -> list[bytes]:
        body = json.dumps(value).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]


def main() -> None:
    port = int(sys.argv[1])
    app = oidc_provider_mock.app(require_nonce=True)
    server = werkzeug.serving.make_server("127.0.0.1", port, Steered(app), threaded=True)
    print(f"listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
