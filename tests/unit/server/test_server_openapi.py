"""The OpenAPI document: valid OpenAPI 3.1, one operation for every route a client calls,
and the vendored Swagger UI files present in the package."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.routing import Mount, Route

from stepwise.server import dashboard
from stepwise.server.api.api_docs import ASSETS, assets_folder
from stepwise.server.api.openapi import build_document
from stepwise.server.app import build_app


def app_routes() -> set[tuple[str, str]]:
    state: Any = SimpleNamespace(config=SimpleNamespace(server_kind="dev"))
    starlette_app = build_app(state).app
    # The dashboard's pages are for people, not API clients (docs/dashboard.md).
    pages = {route.path for route in dashboard.routes() if isinstance(route, Route)}
    found = set()
    for route in starlette_app.routes:
        if isinstance(route, Mount):
            assert route.path in (ASSETS, "/static")
            continue
        assert isinstance(route, Route)
        if route.path in pages:
            continue
        for method in route.methods or ():
            if method != "HEAD":  # Starlette adds HEAD to every GET
                found.add((route.path, method.lower()))
    return found


@pytest.mark.parametrize("dev", [True, False])
def test_the_document_is_valid_openapi_3_1(dev: bool) -> None:
    document = build_document(dev=dev)
    errors = [str(e.message) for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
    assert document["openapi"].startswith("3.1.")


def test_every_route_of_the_app_is_described() -> None:
    documented = {
        (path, method)
        for path, item in build_document(dev=True)["paths"].items()
        for method in item
    }
    assert app_routes() == documented


def test_production_documents_auth_and_leaves_out_dev_only_routes() -> None:
    dev, production = build_document(dev=True), build_document(dev=False)
    assert dev["security"] == []
    assert production["security"] == [{"signingKey": []}]
    assert "/dev" in dev["paths"] and "/dev" not in production["paths"]
    # Routes that never need the key say so whatever the mode.
    for path in ("/health", "/e/{key}", "/openapi.json", "/docs"):
        [operation] = production["paths"][path].values()
        assert operation["security"] == []


def test_every_operation_has_an_id_and_json_error_responses() -> None:
    ids = []
    for path, item in build_document(dev=True)["paths"].items():
        for method, operation in item.items():
            ids.append(operation["operationId"])
            for status, response in operation["responses"].items():
                if status.startswith("4") or status.startswith("5"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["$ref"].endswith(
                        ("/Error", "/EventSendError", "/AppSyncError")
                    ), (path, method)
    assert len(ids) == len(set(ids))


def test_swagger_ui_files_ship_in_the_package() -> None:
    folder = assets_folder()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"):
        assert (folder / name).stat().st_size > 0, name
    bundle = (folder / "swagger-ui-bundle.js").read_text()
    assert "SwaggerUIBundle" in bundle
