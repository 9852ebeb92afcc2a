"""The small builders and patterns the OpenAPI document's modules share (openapi.py,
openapi_money.py, openapi_reconciliation.py)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
JSON = "application/json"
WABA_PATTERN = "^[0-9]{1,32}$"
MONTH_PATTERN = "^[0-9]{4}-(0[1-9]|1[0-2])$"
USER_PATTERN = "^([0-9]{4,20}|[A-Z]{2}\\.(ENT\\.)?[A-Za-z0-9]{1,128})$"


def operation(
    method: str,
    name: str,
    summary: str,
    ok: Schema,
    parameters: list[Schema] | None = None,
    body: str | None = None,
) -> Schema:
    """One operation: its 200 answer ``ok``, 400 and 401 (and 404 when a path parameter can
    name nothing)."""
    op: Schema = {
        "operationId": name,
        "summary": summary,
        "responses": {
            "200": ok,
            "400": {"$ref": "#/components/responses/BadRequest"},
            "401": {"$ref": "#/components/responses/Unauthorized"},
        },
    }
    if parameters:
        op["parameters"] = parameters
        if any(p["in"] == "path" for p in parameters):
            op["responses"]["404"] = {
                "description": "The path is not one of the API's (e.g. an empty id).",
                "content": {JSON: {"schema": ref("Error")}},
            }
    if body:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(body)}}}
    return {method: op}


def json_ok(name: str) -> Schema:
    return {"description": "OK", "content": {JSON: {"schema": ref(name)}}}


def query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}  # fmt: skip


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(**properties: Schema) -> Schema:
    """An object with exactly these properties, all required."""
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }


def string(pattern: str | None = None) -> Schema:
    return {"type": "string"} if pattern is None else {"type": "string", "pattern": pattern}


def enum(values: list[str]) -> Schema:
    return {"type": "string", "enum": values}


def nullable(schema: Schema) -> Schema:
    if "enum" in schema:
        return {**schema, "nullable": True, "enum": [*schema["enum"], None]}
    return {**schema, "nullable": True}


def money() -> Schema:
    return {"type": "string", "description": "An exact decimal, e.g. `0.0625`."}


def count() -> Schema:
    return {"type": "integer", "minimum": 0}


def time() -> Schema:
    return {"type": "string", "format": "date-time", "example": "2025-11-22T08:00:00Z"}
