"""A bank's HTTP API (aiohttp, on the party's own event loop beside its ZeroMQ links).

POST /v1/score, POST /v1/reload, GET /healthz, GET /metrics, GET /openapi.json. Errors are JSON
`{"error": ..., ...}`: 400 names the field, 404 the ids this bank does not list (nothing about the other
bank), 429 when the queue is full, 503 names the peer that is away (or says this bank drains).
An optional bearer token guards /v1/*; health, metrics and the description stay open (for probes).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from typing import Any

from aiohttp import web

from parties.serve.service import Overloaded, Service, Unavailable

log = logging.getLogger("mpc.serve.http")
MAX_BODY = 1 << 20
SERVICE: web.AppKey[Service] = web.AppKey("service", Service)


class BadRequest(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def parse_ids(body: Any, limit: int) -> tuple[list[str], bool]:
    """The ids asked for and whether the request named one (`account_id`) or several (`account_ids`)."""
    if not isinstance(body, dict):
        raise BadRequest("body", "the body must be a JSON object")
    unknown = sorted(set(body) - {"account_id", "account_ids"})
    if unknown:
        raise BadRequest(unknown[0], f"unknown field {unknown[0]!r} (expected account_id or account_ids)")
    if ("account_id" in body) == ("account_ids" in body):
        raise BadRequest("account_id", "give exactly one of account_id and account_ids")
    if "account_id" in body:
        value = body["account_id"]
        if not isinstance(value, str) or not value:
            raise BadRequest("account_id", "account_id must be a non-empty string")
        return [value], True
    ids = body["account_ids"]
    if not isinstance(ids, list) or not ids:
        raise BadRequest("account_ids", "account_ids must be a non-empty list of strings")
    if len(ids) > limit:
        raise BadRequest("account_ids", f"at most {limit} ids per request (got {len(ids)})")
    for i, value in enumerate(ids):
        if not isinstance(value, str) or not value:
            raise BadRequest(f"account_ids[{i}]", f"account_ids[{i}] must be a non-empty string")
    if len(set(ids)) != len(ids):
        raise BadRequest("account_ids", "account_ids lists an id twice")
    return ids, False


def make_app(service: Service, token: str | None = None, access_log: bool = False) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_auth(token)] if token else [])
    app[SERVICE] = service
    app.router.add_post("/v1/score", score)
    app.router.add_post("/v1/reload", reload)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    return app


def _auth(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _error(401, "missing or wrong bearer token", field="Authorization")
        return await handler(request)

    return check


async def score(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    t0 = time.perf_counter()
    response = await _score(service, request)
    service.requests.inc(status=str(response.status))
    if response.status == 200:
        service.latency.observe(time.perf_counter() - t0)
    return response


async def _score(service: Service, request: web.Request) -> web.Response:
    try:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("body", "the body is not valid JSON") from None
        ids, single = parse_ids(body, service.plan.classes[-1])
    except BadRequest as exc:
        return _error(400, str(exc), field=exc.field)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the body is larger than {MAX_BODY} bytes", field="body")
    table = service.table
    assert table is not None
    unknown = [i for i, ok in zip(ids, table.listed(ids), strict=True) if not ok]
    if unknown:
        return _error(404, "this bank does not list " + ("this account" if single else "these accounts"),
                      account_ids=unknown)
    try:
        pending = service.submit(ids)
    except Overloaded as exc:
        return web.json_response({"error": str(exc)}, status=429, headers={"Retry-After": "1"})
    except Unavailable as exc:
        return _error(503, str(exc), peer=exc.peer)
    try:
        flags, scores = await asyncio.wait_for(asyncio.shield(pending.future), service.opts.request_timeout_s)
    except Unavailable as exc:
        return _error(503, str(exc), peer=exc.peer)
    except TimeoutError:
        return _error(503, f"no answer within {service.opts.request_timeout_s:g} s (the request may still be "
                           "computed; its answer is dropped)", peer=None)
    results = []
    for i, account in enumerate(ids):
        item: dict[str, Any] = {"account_id": account, "flag": bool(flags[i])}
        if scores is not None:
            item["score"] = round(float(scores[i]), 6)
        results.append(item)
    return web.json_response(results[0] if single else {"results": results})


async def reload(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        table = await service.reload()
    except Exception as exc:  # noqa: BLE001 - a bad file: the old data stay in use, the error is reported
        log.warning("%s: reload failed, keeping the data loaded before: %s", service.name, exc)
        return _error(422, f"reload failed, the data loaded before stay in use: {exc}")
    return web.json_response({"accounts": len(table.ids), "transactions": table.transactions})


async def healthz(request: web.Request) -> web.Response:
    ok, body = request.app[SERVICE].health()
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[SERVICE].render_metrics(), content_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"}, charset="utf-8")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


def _err(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "mpc serve", "version": "1",
             "description": "Fraud scores computed on secret shares by two banks and a helper; each bank "
                            "serves its own requests. See docs/serve.md."},
    "paths": {
        "/v1/score": {"post": {
            "summary": "Score one account (account_id) or several (account_ids) jointly with the other bank",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                {"type": "object", "required": ["account_id"], "additionalProperties": False,
                 "properties": {"account_id": {"type": "string", "minLength": 1}}},
                {"type": "object", "required": ["account_ids"], "additionalProperties": False,
                 "properties": {"account_ids": {"type": "array", "minItems": 1, "uniqueItems": True,
                                                "items": {"type": "string", "minLength": 1}}}}]}}}},
            "responses": {
                "200": {"description": "The flag (and the score where the policy allows it); for account_ids, "
                                       "{\"results\": [...]} in the order asked",
                        "content": {"application/json": {"schema": {"oneOf": [
                            {"$ref": "#/components/schemas/Result"},
                            {"type": "object", "properties": {"results": {"type": "array", "items": {
                                "$ref": "#/components/schemas/Result"}}}}]}}}},
                "400": _err("Malformed body; `field` names the field"),
                "401": _err("Missing or wrong bearer token (when the service has one)"),
                "404": _err("This bank does not list the account(s); says nothing of the other bank"),
                "429": _err("The bounded queue is full; retry later (Retry-After)"),
                "503": _err("A peer is away (`peer` names it), or this bank is draining"),
            }}},
        "/v1/reload": {"post": {"summary": "Read this bank's data again (new transactions)",
                                "responses": {"200": {"description": "Accounts listed and transactions read"},
                                              "422": _err("The data could not be read; the old data stay")}}},
        "/healthz": {"get": {"summary": "200 while the session with every peer is up and material is ready",
                             "responses": {"200": {"description": "ok, with pool levels"},
                                           "503": {"description": "not serving: `reason` (and `peer`) say why"}}}},
        "/metrics": {"get": {"summary": "Prometheus text format", "responses": {"200": {"description": "metrics"}}}},
        "/openapi.json": {"get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI"}}}},
    },
    "components": {"schemas": {
        "Result": {"type": "object", "required": ["account_id", "flag"],
                   "properties": {"account_id": {"type": "string"}, "flag": {"type": "boolean"},
                                  "score": {"type": "number", "description": "only with --reveal-scores"}}},
        "Error": {"type": "object", "required": ["error"],
                  "properties": {"error": {"type": "string"}, "field": {"type": "string"},
                                 "peer": {"type": ["string", "null"]},
                                 "account_ids": {"type": "array", "items": {"type": "string"}}}},
    }},
}
