"""Built-in web pages (search, trace, delivery health) over the data-source API."""
from __future__ import annotations

from aiohttp import web


def register(app: web.Application) -> None:
    """Add the page routes (`/`, `/messages/{queue_id}`, `/stats`, `/static/...`)."""
