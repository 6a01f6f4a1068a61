"""Local alert channels for the alert tests: an SMTP server (aiosmtpd) and a Slack-compatible
incoming webhook (a POST of ``{"text": …}`` answered ``200 ok``, as Slack's), both on 127.0.0.1,
recording what they received."""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpSink:
    """An SMTP server keeping every message it accepts (``messages``)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def connection(self, to: str = "oncall@example.com") -> str:
        """The Airflow connection (JSON) of this server, as ``trebol_alerts_smtp``."""
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                           "extra": {"from_email": "trebol@example.com", "to": to,
                                     "disable_ssl": True, "disable_tls": True}})

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._controller.stop()


class _Handler(BaseHTTPRequestHandler):
    server: _WebhookServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append({"path": self.path, "body": json.loads(body)})
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")


class _WebhookServer(ThreadingHTTPServer):
    received: list[dict[str, Any]]


class SlackWebhookSink:
    """A Slack-compatible incoming webhook keeping every post (``received``: path and JSON)."""

    TOKEN = "T0000/B0000/fake-webhook-token"

    def __init__(self) -> None:
        self._server = _WebhookServer(("127.0.0.1", 0), _Handler)
        self._server.received = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def received(self) -> list[dict[str, Any]]:
        return self._server.received

    @property
    def texts(self) -> list[str]:
        return [post["body"]["text"] for post in self.received]

    def connection(self) -> str:
        """The Airflow connection (JSON) of this endpoint, as ``trebol_alerts_webhook``: the base
        URL as host, the webhook's token as password (Slack's form)."""
        return json.dumps({"conn_type": "slackwebhook",
                           "host": f"http://127.0.0.1:{self._server.server_port}/services",
                           "password": self.TOKEN})

    def __enter__(self) -> SlackWebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
