"""The HTTP front: a ThreadingHTTPServer whose handler hands every request to
:meth:`stripe_emulator.app.Emulator.handle` (auth, form decoding, routing, errors)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .app import Emulator


class _Handler(BaseHTTPRequestHandler):
    server_version = "stripe-emulator/1.0"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one response = headers + body, no 40 ms delayed ACK
    emulator: Emulator

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        response = self.emulator.handle(self.command, self.path, self.headers, body)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_DELETE = do_HEAD = _serve

    def log_message(self, format, *args):
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)


def make_server(emulator: Emulator, host: str, port: int, *, verbose=False) -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"emulator": emulator})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.verbose = verbose
    return server
