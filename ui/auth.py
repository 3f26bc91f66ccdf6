"""An optional access token in front of everything the server serves (``Settings.access_token``).

A request is let through when it carries the token, either way:

- ``Authorization: Bearer TOKEN``: API clients (``curl -H "Authorization: Bearer $TOKEN"``);
- the cookie a browser gets by opening any page once with ``?token=TOKEN`` (or by typing the
  token into the small form of the refusal page): the answer is a redirect to the same address
  without the token, setting an HttpOnly, SameSite=Lax cookie for the whole site. The cookie
  holds an HMAC of the token, not the token.

Everything else gets 401: ``{"error": "unauthorized", "detail": ...}`` with ``WWW-Authenticate:
Bearer`` for the API and Gradio's own routes, a page saying how to get in for the pages.
Comparisons are constant-time (``hmac.compare_digest`` on bytes). The token never reaches a log:
it is not logged here, and a ``token`` query parameter is removed from the request's scope before
anything answers, so the server's access log (which reads the scope) does not show it either.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
from urllib.parse import quote, unquote_plus

from pydantic import SecretStr
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "qa_access"
COOKIE_MAX_AGE = 30 * 24 * 3600  # seconds: a browser is let in for 30 days
QUERY = "token"
REALM = "qa-articles"


class AccessToken:
    """Pure ASGI middleware: refuses HTTP and websocket requests that lack the access token."""

    def __init__(self, app: ASGIApp, token: SecretStr) -> None:
        self.app = app
        secret = token.get_secret_value().encode()
        self._token = secret
        # What the cookie holds: derived from the token, so the cookie never reveals it.
        mac = hmac.new(secret, b"qa-articles cookie v1", hashlib.sha256)
        self._cookie = mac.hexdigest().encode()

    def __repr__(self) -> str:
        return "AccessToken(token=SecretStr('**********'))"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        given = _pop_query_token(scope)
        if given is not None and scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            if self._is_token(given.encode()):
                await send_response(send, *self._let_in(scope))
            else:
                await send_response(send, *refusal(scope, "The token in the address is wrong."))
            return
        bearer, cookie = _credentials(scope)
        if (bearer is not None and self._is_token(bearer)) or (
            cookie is not None and hmac.compare_digest(cookie, self._cookie)
        ):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "access token needed"})
        elif bearer is not None:
            await send_response(send, *refusal(scope, "The bearer token is wrong."))
        elif cookie is not None:
            why = "The access cookie is not valid any more; open the link with ?token= again."
            await send_response(send, *refusal(scope, why, invalid=False))
        else:
            why = "This server asks for an access token."
            await send_response(send, *refusal(scope, why, invalid=False))

    def _is_token(self, given: bytes) -> bool:
        return hmac.compare_digest(given, self._token)

    def _let_in(self, scope: Scope) -> tuple[int, list[tuple[str, str]], bytes]:
        """A redirect to the same address without the token, setting the cookie."""
        raw = scope.get("raw_path") or quote(scope["path"]).encode()
        location = "/" + raw.decode("latin-1").split("?", 1)[0].lstrip("/")  # never //host
        if scope["query_string"]:
            location += "?" + scope["query_string"].decode("latin-1")
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = (
            f"{COOKIE}={self._cookie.decode()}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; "
            f"SameSite=Lax{secure}"
        )
        return 303, [("location", location), ("set-cookie", cookie)], b""


def _pop_query_token(scope: Scope) -> str | None:
    """The ``token`` query parameter, removed from ``scope`` in place (the access log reads it)."""
    query = scope.get("query_string", b"").decode("latin-1")
    if QUERY not in query:
        return None
    kept, tokens = [], []
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if unquote_plus(key) == QUERY:
            tokens.append(unquote_plus(value))
        else:
            kept.append(part)
    if not tokens:
        return None
    scope["query_string"] = "&".join(kept).encode("latin-1")
    return tokens[-1]


def _credentials(scope: Scope) -> tuple[bytes | None, bytes | None]:
    """The bearer token and the access cookie the request carries, if any."""
    bearer: bytes | None = None
    cookie: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                bearer = credentials.strip()
        elif name == b"cookie":
            found = cookie_parser(value.decode("latin-1")).get(COOKIE)
            cookie = found.encode("latin-1", "replace") if found is not None else cookie
    return bearer, cookie


def wants_json(scope: Scope) -> bool:
    """True for the API and Gradio's own routes (scripts); False for pages (people)."""
    path: str = scope["path"]
    if path == "/api" or path.startswith("/api/") or path.endswith("/openapi.json"):
        return True
    parts = path.strip("/").split("/")
    if "gradio_api" in parts or parts[-1] in ("config", "info"):
        return True
    accept = dict(scope["headers"]).get(b"accept", b"")
    return b"text/html" not in accept and b"json" in accept


def refusal(
    scope: Scope, why: str, invalid: bool = True
) -> tuple[int, list[tuple[str, str]], bytes]:
    """The 401: JSON for scripts, a page with a token form for people. ``invalid``: a token
    was given and is wrong (RFC 6750's ``invalid_token``), not merely missing."""
    challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if invalid else "")
    headers = [("www-authenticate", challenge), ("cache-control", "no-store")]
    if wants_json(scope):
        detail = f"{why} Send it as the header 'Authorization: Bearer TOKEN'."
        body = json.dumps({"error": "unauthorized", "detail": detail}).encode()
        return 401, [*headers, ("content-type", "application/json")], body
    page = PAGE.format(why=html.escape(why), name=QUERY)
    return 401, [*headers, ("content-type", "text/html; charset=utf-8")], page.encode()


async def send_response(
    send: Send, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw += [(b"content-length", str(len(body)).encode()), (b"referrer-policy", b"no-referrer")]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Access token needed</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}}
input{{font:inherit;width:100%;box-sizing:border-box;margin:.5rem 0;padding:.4rem}}</style>
</head><body>
<h1>Access token needed</h1>
<p>{why}</p>
<p>Open the link you were given, the one ending in <code>?{name}=...</code>, once: this browser
is then let in for 30 days. Or type the token here:</p>
<form method="get">
<label>Access token <input type="password" name="{name}" autocomplete="current-password"
required autofocus></label>
<button type="submit">Open</button>
</form>
</body></html>
"""
