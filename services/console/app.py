"""The console: composition of the pages, the session store, the API clients, security headers, probes."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from shared import migrate
from shared.db import make_engine, make_sessionmaker
from shared.metrics import HttpMetricsMiddleware, metrics_response, new_registry
from shared.settings import ConsoleSettings

from . import admin, pages, security
from .clients import Apis
from .sessions import SessionStore

HERE = Path(__file__).parent
MIGRATIONS = HERE / "migrations"


# httpx logs every call's URL at INFO; the console's own access log is enough.
logging.getLogger("httpx").setLevel(logging.WARNING)


class Console:
    """What `baove run console` serves; shaped like a service's Runtime (api, migrate, run_migrations)."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.name = "console"
        self.settings = settings
        self.db_url = settings.db_url()
        self.engine = make_engine(self.db_url, pool_size=5)
        self.sessions = SessionStore(make_sessionmaker(self.engine), timedelta(hours=settings.session_hours))
        self.apis = Apis({s: settings.api_url(s) for s in ("intake", "routing", "reporting")}, settings.api_timeout_seconds)
        self.registry = new_registry()
        self.run_migrations = True
        self.api = FastAPI(title="baove console", lifespan=self._lifespan, docs_url=None, redoc_url=None, openapi_url=None)
        self.api.state.console = self
        self.api.add_middleware(security.SecurityHeaders)
        self.api.add_middleware(GZipMiddleware, minimum_size=1000)
        self.api.add_middleware(HttpMetricsMiddleware, registry=self.registry)
        self.api.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
        self._install_probes()
        pages.install(self.api)
        self.api.include_router(admin.router)

    def migrate(self) -> None:
        migrate.upgrade(MIGRATIONS, self.db_url)

    @asynccontextmanager
    async def _lifespan(self, _app: FastAPI):
        if self.run_migrations:
            await asyncio.to_thread(self.migrate)
        try:
            yield
        finally:
            await self.apis.close()
            await self.engine.dispose()

    def _install_probes(self) -> None:
        @self.api.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok", "service": self.name}

        @self.api.get("/readyz")
        async def readyz() -> JSONResponse:
            """The three APIs answer."""
            checks = await self.apis.ready()
            ok = all(v == "ok" for v in checks.values())
            return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

        @self.api.get("/metrics")
        async def metrics(_request: Request) -> Response:
            return metrics_response(self.registry)


def create_runtime(settings: ConsoleSettings | None = None) -> Console:
    return Console(settings or ConsoleSettings())
