"""Base of the local vendor servers: a threaded HTTP server on 127.0.0.1 with fault injection.

Each server subclasses :class:`FakeServer` and implements ``route()``. Faults are queued
with :meth:`FakeServer.inject` and match on method, path and (optionally) the request
body; ``after=True`` applies the request to the in-memory state *before* failing, which
is the nasty case for creates (the CRM created the records, the client never heard).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    body: Any  # parsed JSON, or the text for CSV bodies

    def q(self, name: str, default: str | None = None) -> str | None:
        v = self.query.get(name)
        return v[0] if v else default


@dataclass
class Response:
    status: int
    body: Any = None  # dict/list -> JSON; str/bytes -> as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json;charset=UTF-8"


@dataclass
class Fault:
    kind: str  # status | timeout | disconnect | malformed
    method: str | None = None
    path: re.Pattern | None = None
    when: Callable[[Request], bool] | None = None
    times: int | None = 1  # None: every matching request
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 1.0
    after: bool = False  # apply the request to the state first, then fail
    hits: int = 0

    def matches(self, req: Request) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method and self.method != req.method:
            return False
        if self.path and not self.path.search(req.path):
            return False
        return not (self.when and not self.when(req))


class _HTTPServer(ThreadingHTTPServer):
    request_queue_size = 128  # http.server's backlog of 5 drops concurrent clients
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the vendors serve it
    # headers and body go out in two writes: without TCP_NODELAY each response waits for
    # the client's delayed ACK (~20-40 ms), which would make the fake slower than the real API
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _handle(self) -> None:
        self.server.app._handle(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle


class FakeServer:
    """A vendor API on a random local port. Subclasses implement :meth:`route`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, int]] = []  # (method, path, status) of every request
        self.httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.app = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        # a short poll: shutdown() waits up to one poll interval (0.5 s by default)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- faults and assertions
    def inject(
        self,
        kind: str,
        *,
        method: str | None = None,
        path: str | None = None,
        when: Callable[[Request], bool] | None = None,
        times: int | None = 1,
        status: int = 500,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 1.0,
        after: bool = False,
    ) -> Fault:
        """Queue a fault: ``status`` (e.g. 429 with a Retry-After header, 500, 503), ``timeout``
        (hold the response ``delay`` s), ``disconnect`` (close without answering) or
        ``malformed`` (2xx with a truncated body, or ``body(real_body)`` if callable)."""
        f = Fault(kind, method, re.compile(path) if path else None, when, times, status, body,
                  headers or {}, delay, after)  # fmt: skip
        with self.lock:
            self.faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def calls(self, method: str | None = None, path: str | None = None, status: int | None = None) -> int:
        rx = re.compile(path) if path else None
        with self.lock:
            return sum(
                1
                for m, p, s in self.log
                if (method is None or m == method)
                and (rx is None or rx.search(p))
                and (status is None or s == status)
            )

    def reset_log(self) -> None:
        with self.lock:
            self.log.clear()

    # ---- to implement
    def route(self, req: Request) -> Response:
        raise NotImplementedError

    def before(self, req: Request) -> Response | None:
        """Checks every request goes through first (auth, rate limits); None to go on."""
        return None

    def decorate(self, req: Request, resp: Response) -> None:
        """Add headers every response carries (rate-limit info)."""

    # ---- plumbing
    def _handle(self, h: _Handler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        ctype = h.headers.get("Content-Type", "")
        body: Any = None
        if raw:
            if "json" in ctype:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
            else:
                body = raw.decode("utf-8", "replace")
        req = Request(h.command, parts.path, parse_qs(parts.query), dict(h.headers), raw, body)
        with self.lock:
            fault = next((f for f in self.faults if f.matches(req)), None)
            if fault:
                fault.hits += 1
        resp = self.before(req)
        if resp is None and fault and not fault.after and fault.kind != "malformed":
            return self._fail(h, req, fault)
        if resp is None:
            try:
                resp = self.route(req)
            except Exception as e:  # a bug in the fake must show up as a 500, not a hang
                resp = Response(500, {"message": f"fake server error: {e!r}"})
        if fault and resp.status < 400 and (fault.after or fault.kind == "malformed"):
            if fault.kind == "malformed":
                if callable(fault.body):
                    resp = Response(resp.status, fault.body(resp.body), resp.headers, resp.content_type)
                else:
                    text = json.dumps(resp.body) if not isinstance(resp.body, str) else resp.body
                    resp = Response(
                        resp.status, text[: max(1, len(text) // 2)], resp.headers, resp.content_type
                    )
            else:
                return self._fail(h, req, fault)
        self.decorate(req, resp)
        self._send(h, req, resp)

    def _fail(self, h: _Handler, req: Request, f: Fault) -> None:
        if f.kind == "timeout":
            time.sleep(f.delay)
            with self.lock:
                self.log.append((req.method, req.path, 0))
            h.close_connection = True
            return
        if f.kind == "disconnect":
            with self.lock:
                self.log.append((req.method, req.path, 0))
            h.close_connection = True
            return
        resp = Response(
            f.status,
            f.body if f.body is not None else {"message": f"injected HTTP {f.status}"},
            dict(f.headers),
        )
        self.decorate(req, resp)
        self._send(h, req, resp)

    def _send(self, h: _Handler, req: Request, resp: Response) -> None:
        if isinstance(resp.body, (dict, list)):
            data = json.dumps(resp.body).encode()
        elif isinstance(resp.body, str):
            data = resp.body.encode()
        elif resp.body is None:
            data = b""
        else:
            data = resp.body
        with self.lock:
            self.log.append((req.method, req.path, resp.status))
        try:
            h.send_response(resp.status)
            if data or resp.status != 204:
                h.send_header("Content-Type", resp.content_type)
            h.send_header("Content-Length", str(len(data)))
            for k, v in resp.headers.items():
                h.send_header(k, v)
            h.end_headers()
            if data:
                h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


def iso(ts: float | None = None) -> str:
    """ISO 8601 UTC with milliseconds, as both vendors print timestamps."""
    ts = time.time() if ts is None else ts
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"
