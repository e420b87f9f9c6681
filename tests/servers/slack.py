"""A local Slack Web API: ``chat.postMessage`` (and ``auth.test``) in Slack's wire format.

Slack answers HTTP 200 with ``{"ok": true, "channel", "ts", "message"}`` or
``{"ok": false, "error": "channel_not_found"}``; a rate limit is HTTP 429 with a
``Retry-After`` header (seconds). Messages are recorded per channel. Inject a 429 with
``server.inject("status", path="chat.postMessage", status=429, headers={"Retry-After": "1"},
body={"ok": False, "error": "ratelimited"})``.
"""

from __future__ import annotations

import itertools
from urllib.parse import parse_qs

from servers.common import FakeServer, Request, Response

TOKEN = "xoxb-fake"  # a test token (too short to pass for a real one)


class SlackServer(FakeServer):
    def __init__(self, channels: set[str] | None = None, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.channels = channels  # None: every channel exists
        self.messages: dict[str, list[dict]] = {}
        self._ts = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    def all_messages(self) -> list[dict]:
        with self.lock:
            return [m for msgs in self.messages.values() for m in msgs]

    def before(self, req: Request) -> Response | None:
        auth = req.headers.get("Authorization", "")
        if auth != f"Bearer {self.token}":
            return Response(200, {"ok": False, "error": "invalid_auth"})
        return None

    def route(self, req: Request) -> Response:
        body = (
            req.body if isinstance(req.body, dict) else {k: v[0] for k, v in parse_qs(req.body or "").items()}
        )
        if req.path.endswith("/auth.test"):
            return Response(200, {"ok": True, "team": "test", "user_id": "U1"})
        if req.path.endswith("/chat.postMessage"):
            channel = body.get("channel")
            if not channel:
                return Response(200, {"ok": False, "error": "channel_not_found"})
            if self.channels is not None and channel not in self.channels:
                return Response(200, {"ok": False, "error": "channel_not_found"})
            if not body.get("text") and not body.get("blocks"):
                return Response(200, {"ok": False, "error": "no_text"})
            ts = f"1700000000.{next(self._ts):06d}"
            msg = {"channel": channel, "text": body.get("text"), "blocks": body.get("blocks"), "ts": ts}
            with self.lock:
                self.messages.setdefault(channel, []).append(msg)
            return Response(
                200, {"ok": True, "channel": channel, "ts": ts, "message": {"text": msg["text"], "ts": ts}}
            )
        return Response(200, {"ok": False, "error": "unknown_method"})
