"""A real HTTP server in a thread, on a free port, that receives alert webhooks and Slack
messages the way an operator's endpoint would: it checks the signature, records every
request, and answers the status codes a test plans (e.g. 500 the first time)."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from usage.webhook_signature import HEADER, signature_valid


@dataclass
class Received:
    path: str
    headers: dict
    body: str
    signature_ok: bool | None  # None: no secret configured (Slack)
    status: int

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: str = ""
    # Answers for the n-th request of each X-Meterdesk-Delivery (or of each path for
    # Slack), then 200.
    first_answers: tuple[int, ...] = ()
    answer_body: bytes = b""  # instead of the small JSON answer
    received: list[Received] = field(default_factory=list)
    _seen: dict = field(default_factory=dict)

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                signature_ok = None
                if receiver.secret:
                    signature_ok = signature_valid(
                        secret=receiver.secret,
                        header=self.headers.get(HEADER, ""),
                        body=body,
                        now=int(time.time()),
                    )
                key = self.headers.get("X-Meterdesk-Delivery") or self.path
                n = receiver._seen[key] = receiver._seen.get(key, 0) + 1
                status = 200
                if signature_ok is False:
                    status = 400
                elif n <= len(receiver.first_answers):
                    status = receiver.first_answers[n - 1]
                receiver.received.append(
                    Received(self.path, dict(self.headers), body, signature_ok, status)
                )
                answer = receiver.answer_body or json.dumps({"ok": status == 200, "n": n}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
