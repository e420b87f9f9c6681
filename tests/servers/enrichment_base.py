"""A local HTTP server for provider fakes: real sockets, threads, and injected faults.

Each fake (``apollo.py``, ``zoominfo.py``, ``clay.py``, ``clearbit.py``) subclasses
``FakeServer`` and answers in the provider's documented wire format. Tests queue faults
that hit the next matching requests: ``429`` (with ``Retry-After``), ``500``/``502``/``503``,
``timeout`` (answer after the client gave up), ``malformed`` (200 with broken JSON),
``empty`` (200 with no body) and ``drop`` (close the connection without an answer).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Fault:
    kind: str
    times: int = 1
    path: str | None = None  # only requests whose path starts with this
    retry_after: float = 0.01
    delay: float = 1.0  # for "timeout": how long the server waits before answering


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes/str as is
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # http.server's default backlog of 5 refuses concurrent clients
    daemon_threads = True
    allow_reuse_address = True


class FakeServer:
    """Start with ``with FakeServer() as s:``; ``s.url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urllib.parse.urlsplit(self.path)
                rec = Recorded(
                    self.command,
                    parts.path,
                    urllib.parse.parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with owner.lock:
                    owner.requests.append(rec)
                    fault = owner._take_fault(rec.path)
                if fault is not None and owner._fault(self, fault):
                    return
                reply = owner.handle(rec)
                owner._send(self, reply)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._handler = Handler
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeServer:
        self._server = _Server(("127.0.0.1", 0), self._handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- faults --------------------------------------------------------------------------
    def fail(self, kind: str, times: int = 1, path: str | None = None, **kw) -> None:
        with self.lock:
            self.faults.append(Fault(kind, times, path, **kw))

    def _take_fault(self, path: str) -> Fault | None:
        for f in self.faults:
            if f.path is None or path.startswith(f.path):
                f.times -= 1
                if f.times <= 0:
                    self.faults.remove(f)
                return f
        return None

    def _fault(self, h: BaseHTTPRequestHandler, f: Fault) -> bool:
        """Act out a fault; True when the request is fully handled."""
        if f.kind == "429":
            self._send(h, Reply(429, {"error": "rate limited"}, {"Retry-After": str(f.retry_after)}))
        elif f.kind in ("500", "502", "503"):
            self._send(h, Reply(int(f.kind), {"error": "server error"}))
        elif f.kind == "timeout":
            time.sleep(f.delay)
            return False  # answer for real, too late for the client
        elif f.kind == "malformed":
            self._send(h, Reply(200, b'{"organization": {"name": "Acme"'))
        elif f.kind == "empty":
            self._send(h, Reply(200, b""))
        elif f.kind == "drop":
            h.close_connection = True
            h.connection.shutdown(2)
        else:
            raise ValueError(f"unknown fault {f.kind}")
        return True

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, reply: Reply) -> None:
        if isinstance(reply.body, bytes):
            data = reply.body
        elif isinstance(reply.body, str):
            data = reply.body.encode()
        elif reply.body is None:
            data = b""
        else:
            data = json.dumps(reply.body).encode()
        try:
            h.send_response(reply.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in reply.headers.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    # -- routes (override) -------------------------------------------------------------
    def handle(self, req: Recorded) -> Reply:
        return Reply(404, {"error": f"no route {req.method} {req.path}"})

    def count(self, path: str, method: str | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.path == path and (method is None or r.method == method))
