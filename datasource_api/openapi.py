"""The OpenAPI 3.1 document of /api/v1, generated from the pydantic models in models.py."""
from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from datasource_api.models import (
    STAT_NAMES,
    VALUE_FIELDS,
    Annotation,
    AnnotationsParams,
    DataFrame,
    DeliveryRecord,
    ErrorBody,
    Health,
    Page,
    Params,
    SearchParams,
    StatRow,
    StatsParams,
    Trace,
    TraceParams,
    ValueItem,
    ValuesParams,
)

REF = "#/components/schemas/{model}"

# path -> (summary, query model, item model, path parameters)
ENDPOINTS: dict[str, tuple[str, type[Params], Any, dict[str, dict[str, Any]]]] = {
    "/api/v1/messages": ("Search delivery records, one per recipient", SearchParams, DeliveryRecord, {}),
    "/api/v1/messages/{queue_id}": ("Trace a message across linked queue IDs, with its raw lines", TraceParams, Trace,
                                    {"queue_id": {"type": "string", "maxLength": 64}}),
    "/api/v1/stats/{name}": ("Delivery-health statistic, as a time series or a table", StatsParams, StatRow,
                             {"name": {"type": "string", "enum": list(STAT_NAMES)}}),
    "/api/v1/values/{field}": ("Values of a field for template variables", ValuesParams, ValueItem,
                               {"field": {"type": "string", "enum": list(VALUE_FIELDS)}}),
    "/api/v1/annotations": ("Per-domain bounce and defer spikes as annotations", AnnotationsParams, Annotation, {}),
    "/api/v1/health": ("Health of the service and its store (Grafana's Save & test)", Params, Health, {}),
}


def _param_schemas() -> dict[type[BaseModel], dict[str, Any]]:
    return {m: m.model_json_schema(ref_template=REF, mode="validation") for m in
            {e[1] for e in ENDPOINTS.values()}}


@functools.cache
def _build() -> dict[str, Any]:
    pages = {path: Page[item] for path, (_, _, item, _) in ENDPOINTS.items()}
    models = [(m, "serialization") for m in (*pages.values(), Page[DataFrame], ErrorBody)]
    refs, schemas = models_json_schema(models, ref_template=REF)
    components = schemas.get("$defs", {})
    error_ref = refs[(ErrorBody, "serialization")]
    frames_ref = refs[(Page[DataFrame], "serialization")]
    params = _param_schemas()
    paths: dict[str, Any] = {}
    for path, (summary, query_model, _, path_params) in ENDPOINTS.items():
        schema = params[query_model]
        components.update(schema.pop("$defs", {}))
        parameters = [{"name": name, "in": "path", "required": True, "schema": s} for name, s in path_params.items()]
        for name, prop in schema.get("properties", {}).items():
            parameters.append({"name": name, "in": "query", "required": False, "schema": prop,
                               **({"description": prop["description"]} if "description" in prop else {})})
        errors = {str(code): {"description": text, "content": {"application/json": {"schema": error_ref}}}
                  for code, text in ((400, "bad parameter"), (401, "token missing or wrong"),
                                     (404, "not found"), (503, "query timed out"))}
        paths[path] = {"get": {
            "summary": summary,
            "parameters": parameters,
            "responses": {"200": {"description": "items (format=json) or Grafana data frames (format=frames)",
                                  "content": {"application/json": {"schema": {"anyOf": [
                                      refs[(pages[path], "serialization")], frames_ref]}}}},
                          **errors},
        }}
    paths["/api/v1/openapi.json"] = {"get": {"summary": "This document",
                                             "responses": {"200": {"description": "OpenAPI 3.1"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Postfix Insights data-source API", "version": "1"},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}, {}],
        "paths": paths,
    }


def document(version: str) -> dict[str, Any]:
    doc = _build()
    return {**doc, "info": {**doc["info"], "version": version}}


def response_schema(path: str, status: int = 200) -> dict[str, Any]:
    """A JSON Schema of one documented response (for the contract test), refs resolvable."""
    doc = _build()
    op = doc["paths"][path]["get"]["responses"][str(status)]
    return {**op["content"]["application/json"]["schema"], "components": doc["components"]}
