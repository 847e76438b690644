"""The credentials in the OpenAPI document.

``deps.current_principal`` reads its headers from the request rather than declaring them as parameters
(cheaper per request), so FastAPI no longer documents them. This adds the two ways to authenticate as
security schemes and marks every operation that needs one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIRouter

SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A JWT from POST /v1/auth/login, or an API key: 'Authorization: Bearer <it>'.",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "An API key."},
}


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def protected_operations(routers: Iterable[APIRouter], call: Callable[..., Any]) -> set[tuple[str, str]]:
    """(path, lower-case method) of every route whose dependencies include ``call``."""
    return {
        (route.path, method.lower())
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and _depends_on(route.dependant, call)
        for method in route.methods or ()
    }


def document_credentials(app: FastAPI, protected: set[tuple[str, str]]) -> None:
    """Make ``app.openapi()`` declare ``SCHEMES`` and require one of them on the ``protected`` operations."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {})["securitySchemes"] = SCHEMES
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if (path, method) in protected:
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
