"""A virtual API server speaking StableToolBench's `POST /virtual` protocol: FastAPI + pydantic + uvicorn.

Request body (JSON object, `VirtualRequest`): `category`, `tool_name`, `api_name` (strings), `tool_input`
(a JSON string or an object), and optionally `strip`, `toolbench_key`, `rapidapi_key` (strings, ignored
here). The answer is the API's response, normally `{"error": "", "response": ...}`; a refused request gets
a 4xx (or 503) whose body has the same shape with a one-line reason in `error`. OpenAPI docs: `/docs`.

What answers is `protocol.VirtualAPI` (cache, then simulator); this module is its HTTP layer. Bounds: the
body's size (`max_body_bytes`, checked before and while reading, chunked bodies included), the time to send
it, its nesting depth, open connections (`max_connections`), and the simulator (`max_simulations` at once,
`max_waiting` queued, the rest 503 with Retry-After). The server binds to loopback unless told otherwise,
and says so on stderr when it is not.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from ..errors import SwirlError
from .cache import CacheLocation, ResponseCache, cache_key, cache_location
from .protocol import (
    MAX_DEPTH,
    NO_SIMULATOR_ERROR,
    RETRY_AFTER_S,
    NestingError,
    RequestError,
    Simulator,
    VirtualAPI,
    VirtualRequest,
    VirtualResponse,
    fwm_simulator,
    loads_bounded,
    parse_request,
    simulator_state,
)

__all__ = [  # the protocol's names too, so that `server` stays the one import for callers
    "MAX_DEPTH", "NO_SIMULATOR_ERROR", "CacheLocation", "NestingError", "RequestError", "ResponseCache",
    "VirtualAPI", "VirtualAPIServer", "VirtualRequest", "cache_key", "cache_location", "create_app",
    "fwm_simulator", "loads_bounded", "make_server", "parse_request", "serve", "simulator_state",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
BODY_TIMEOUT_S = 30.0  # a client that stalls mid-body is cut off rather than held open
KEEP_ALIVE_S = 30
MAX_CONNECTIONS = 512
SPARE_THREADS = 32  # worker threads beyond the simulator's slots and queue, so hits never wait behind misses


class _JSONReply(Response):
    # json.dumps's own spacing, as the server always answered: clients comparing bytes see no change.
    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False).encode("utf-8")


def _reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> _JSONReply:
    headers = dict(headers or {})
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    if status in (408, 411, 413):  # the body was not (fully) read: the connection cannot carry another request
        headers["Connection"] = "close"
    return _JSONReply(payload, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    length = request.headers.get("content-length")
    if length is None and "chunked" not in request.headers.get("transfer-encoding", "").lower():
        raise RequestError(411, "Content-Length required")
    if length is not None and int(length) > limit:  # the HTTP parser has already refused a non-number
        raise RequestError(413, f"request body of {length} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(413, f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestError(408, f"request body not received within {timeout_s:g} s") from None
    return b"".join(chunks)


async def _read_call(request: Request) -> VirtualRequest:
    # The body is read and parsed here, not by FastAPI, so that its size, the time to send it and its
    # nesting are bounded before anything recurses on it, whatever the Content-Type says.
    state = request.app.state
    raw = await _read_body(request, state.max_body_bytes, state.body_timeout_s)
    try:
        body = loads_bounded(raw.decode("utf-8"))
    except NestingError as exc:
        raise RequestError(400, f"request body is {exc}") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(400, f"request body is not valid JSON: {exc}") from None
    try:
        return parse_request(body)
    except RequestError:
        state.api.count("errors")
        raise


def create_app(api: VirtualAPI, *, max_body_bytes: int = MAX_BODY_BYTES,
               body_timeout_s: float = BODY_TIMEOUT_S) -> FastAPI:
    """The ASGI app serving `api`: POST /virtual, GET /health, OpenAPI docs at /docs."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Every admitted miss holds a worker thread while it runs or waits for a slot; size the pool so
        # that hits and refusals still find a thread when the simulator's queue is full.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, api.capacity + SPARE_THREADS)
        yield

    app = FastAPI(title="SWIRL virtual API server", lifespan=lifespan,
                  description="StableToolBench's `/virtual` protocol, answered from a response cache and, on a "
                              "miss, a world model. Refusals use the response shape with the reason in `error`.")
    app.state.api, app.state.max_body_bytes, app.state.body_timeout_s = api, max_body_bytes, body_timeout_s

    refusals = {status: {"model": VirtualResponse, "description": why} for status, why in (
        (400, "invalid JSON, a bad field, or nesting deeper than the limit"), (408, "body sent too slowly"),
        (411, "no Content-Length and not chunked"), (413, "body over the size limit"),
        (503, "the simulator's queue is full; retry after the Retry-After seconds"))}

    @app.post("/virtual", response_model=VirtualResponse, responses=refusals, openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": VirtualRequest.model_json_schema()}}}})
    async def virtual(call: Annotated[VirtualRequest, Depends(_read_call)]) -> Response:
        """Answer one API call: from the cache, else from the simulator (saved to the cache)."""
        try:
            status, payload = await anyio.to_thread.run_sync(api.answer_call, call)
        except Exception as exc:  # e.g. the cache folder became unwritable: answer, do not drop the line
            log.exception("request failed")
            status, payload = 500, {"error": f"server error: {type(exc).__name__}: {exc}", "response": ""}
        return _reply(status, payload)

    @app.get("/health")
    async def health() -> Response:
        """Counters: hits, misses, simulated, errors, busy (503s); simulations running and admitted now."""
        return _reply(200, api.health())

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> Response:
        return _reply(exc.status, {"error": str(exc), "response": ""})

    @app.exception_handler(HTTPException)
    async def routing_error(request: Request, exc: HTTPException) -> Response:
        message = {404: f"unknown path {request.url.path!r}; POST /virtual",
                   405: "use POST /virtual"}.get(exc.status_code, str(exc.detail))
        return _reply(exc.status_code, {"error": message, "response": ""}, exc.headers)  # 405 names Allow

    return app


class VirtualAPIServer:
    """A bound uvicorn server for `api`; `serve_forever()` (e.g. in a thread) until `shutdown()`."""

    def __init__(self, sock: socket.socket, api: VirtualAPI, *, max_body_bytes: int = MAX_BODY_BYTES,
                 body_timeout_s: float = BODY_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS):
        self.socket, self.api = sock, api
        self.server_address = sock.getsockname()[:2]
        self.app = create_app(api, max_body_bytes=max_body_bytes, body_timeout_s=body_timeout_s)
        # h11, not httptools: its size limit on the request line and headers is one we set and test.
        config = uvicorn.Config(self.app, http="h11", lifespan="on", log_config=None, access_log=False,
                                limit_concurrency=max_connections, timeout_keep_alive=KEEP_ALIVE_S,
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._started, self._stopped = threading.Event(), threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve_forever(self, poll_interval: float | None = None) -> None:
        """Serve until shutdown() (or Ctrl-C in the main thread). `poll_interval` is accepted for
        socketserver's signature; uvicorn checks for shutdown every 0.1 s."""
        self._started.set()
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serving (in-flight requests get a few seconds to finish); returns once serve_forever has."""
        self._server.should_exit = True
        if self._started.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        raise SwirlError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        return socket.create_server(address[:2], family=family, backlog=128)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)  # create_server's own text repeats the address
        raise SwirlError(f"cannot listen on {host}:{port}: {reason}") from None


def make_server(cache_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                simulator: Simulator | None = None, save_misses: bool = True,
                max_body_bytes: int = MAX_BODY_BYTES, max_simulations: int = 2,
                max_waiting: int = 16, max_connections: int = MAX_CONNECTIONS,
                body_timeout_s: float = BODY_TIMEOUT_S,
                load_simulator: Callable[[], Simulator] | None = None) -> VirtualAPIServer:
    """A bound, not yet serving, server; call `.serve_forever()` (e.g. in a thread), then `.shutdown()`.

    SwirlError (before the cache folder is created) if the address cannot be bound. `load_simulator` builds
    the simulator once the address is bound, so a busy port fails before an expensive model load."""
    sock = _listen(host, port)
    try:
        if load_simulator is not None:
            simulator = load_simulator()
        api = VirtualAPI(cache_dir, simulator=simulator, save_misses=save_misses,
                         max_simulations=max_simulations, max_waiting=max_waiting)
    except BaseException:
        sock.close()
        raise
    if not ipaddress.ip_address(sock.getsockname()[0]).is_loopback:
        print(f"warning: binding {host}, not loopback: anyone who can reach this machine can query the "
              "server and fill its cache", file=sys.stderr, flush=True)
    return VirtualAPIServer(sock, api, max_body_bytes=max_body_bytes, body_timeout_s=body_timeout_s,
                            max_connections=max_connections)


def serve(cache_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8080,
          simulator: Simulator | None = None, save_misses: bool = True,
          max_body_bytes: int = MAX_BODY_BYTES, max_simulations: int = 2, max_waiting: int = 16,
          load_simulator: Callable[[], Simulator] | None = None) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server = make_server(cache_dir, host=host, port=port, simulator=simulator, save_misses=save_misses,
                         max_body_bytes=max_body_bytes, max_simulations=max_simulations, max_waiting=max_waiting,
                         load_simulator=load_simulator)
    print(f"virtual API server on {server.url}/virtual (docs {server.url}/docs), cache {server.api.cache.root}",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
