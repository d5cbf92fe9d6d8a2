"""Built-in web pages (search, trace, delivery health) over the data-source API.

The pages are static HTML shells; their JavaScript (served as files, so the CSP can forbid
inline script) reads the filters from the URL and calls `/api/v1/...` same-origin, so every
number comes from the one API code path. Nothing from the store is rendered here.

Auth: with tokens configured, a page request without a valid `pi_token` cookie gets a small
login form; `POST /login` checks the token in constant time and sets the cookie that both
the pages and the API accept.
"""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from html import escape
from pathlib import Path
from string import Template

from aiohttp import web

from datasource_api.access import COOKIE, token_ok

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATE_DIR = HERE / "templates"
COOKIE_MAX_AGE = 30 * 86400
TOKENS = web.AppKey("page_tokens", tuple)
PAGES = web.AppKey("page_shells", dict)

# No inline script or style anywhere; data reaches the DOM only through textContent.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

# page name -> (title, scripts after common.js)
SHELLS: dict[str, tuple[str, tuple[str, ...]]] = {
    "search": ("Search", ("search.js",)),
    "trace": ("Message trace", ("trace.js",)),
    "stats": ("Delivery health", ("vendor/uPlot.iife.min.js", "charts.js", "stats.js")),
}
STYLES: dict[str, tuple[str, ...]] = {"stats": ("vendor/uPlot.min.css",)}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _static_version() -> str:
    """Changes whenever a static file does, so browsers never mix old and new scripts."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(STATIC_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _render(name: str, auth: bool, version: str) -> str:
    title, scripts = SHELLS[name]
    base = Template((TEMPLATE_DIR / "base.html").read_text())
    # a vendored file that was never built is left out (the page says so) rather than a 404
    scripts = tuple(s for s in scripts if (STATIC_DIR / s).is_file())
    styles = tuple(s for s in ("app.css", *STYLES.get(name, ())) if (STATIC_DIR / s).is_file())
    return base.substitute(
        title=title,
        page=name,
        styles="\n".join(f'<link rel="stylesheet" href="/static/{s}?v={version}">' for s in styles),
        scripts="\n".join(f'<script src="/static/{s}?v={version}"></script>'
                          for s in ("common.js", *scripts)),
        body=(TEMPLATE_DIR / f"{name}.html").read_text(),
        logout=('<form method="post" action="/logout" class="logout"><button type="submit">Log out</button></form>'
                if auth else ""),
    )


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)


def _authorised(request: web.Request) -> bool:
    tokens = request.app[TOKENS]
    return not tokens or token_ok(request.cookies.get(COOKIE), tokens)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never `//host` or `/\\host`, which browsers read as another origin."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(
            c in target for c in "\r\n\t"):
        return "/"
    return target


def _login_form(next_url: str, message: str = "", status: int = 401) -> web.Response:
    page = Template((TEMPLATE_DIR / "login.html").read_text()).substitute(
        next=escape(_safe_next(next_url), quote=True),
        message=f'<p class="error" role="alert">{escape(message)}</p>' if message else "",
    )
    return _html(page, status)


def _page(name: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not _authorised(request):
            return _login_form(request.path_qs)
        return _html(request.app[PAGES][name])
    return handler


def _redirect(target: str) -> web.Response:
    return web.Response(status=303, headers={**HEADERS, "Location": target})


async def _login_get(request: web.Request) -> web.StreamResponse:
    target = _safe_next(request.query.get("next"))
    if _authorised(request):
        return _redirect(target)
    return _login_form(target, status=200)


async def _login_post(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token, target = form.get("token"), _safe_next(str(form.get("next") or "/"))
    tokens = request.app[TOKENS]
    if not tokens:
        return _redirect(target)
    if not isinstance(token, str) or not token_ok(token, tokens):
        await asyncio.sleep(0.5)  # slows guessing; the comparison itself leaks no timing
        return _login_form(target, "That token is not valid.")
    resp = _redirect(target)
    resp.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, path="/", httponly=True, samesite="Strict",
                    secure=request.secure)
    return resp


async def _logout(request: web.Request) -> web.StreamResponse:
    resp = _redirect("/")
    resp.del_cookie(COOKIE, path="/")
    return resp


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/static/"):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "public, max-age=86400" if request.query.get("v")
                                    else "no-cache")


def register(app: web.Application, tokens: list[str] | tuple[str, ...] = ()) -> None:
    """Add the page routes (`/`, `/messages/{queue_id}`, `/stats`, `/login`, `/logout`, `/static/...`).

    `tokens`: when non-empty, pages need the `pi_token` cookie holding one of them."""
    app[TOKENS] = tuple(t for t in tokens if t)
    version = _static_version()
    app[PAGES] = {name: _render(name, bool(app[TOKENS]), version) for name in SHELLS}
    app.router.add_get("/", _page("search"))
    app.router.add_get("/messages/{queue_id}", _page("trace"))
    app.router.add_get("/stats", _page("stats"))
    app.router.add_get("/login", _login_get)
    app.router.add_post("/login", _login_post)
    app.router.add_post("/logout", _logout)
    app.router.add_static("/static/", STATIC_DIR)
    app.on_response_prepare.append(_static_headers)
