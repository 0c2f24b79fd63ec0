"""A loopback HTTP server for provider adapter tests: real sockets, real client libraries, canned payloads.

``FakeServer`` runs ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a thread. Routes map a
path prefix to a handler ``(path, query) -> Reply`` or to a list of replies served in turn (the last one
repeats), which is how tests script "429, then 200". Every request is recorded in ``requests``. A reply
with ``hold=True`` is never answered while the test runs (the server releases it on exit), so a client
timeout fires whatever the machine's load: timeout tests count the tries, never the seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PAYLOADS = Path(__file__).parent / "payloads"


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering
    hold: bool = False  # answer only when the server shuts down (timeouts, independent of load)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            kind = "application/json" if self.body[:1] in "{[" else "text/plain"
            return self.body.encode(), kind
        return self.body, "application/octet-stream"


def payload(name: str) -> str:
    return (PAYLOADS / name).read_text()


Handler = Callable[[str, dict[str, str]], Reply]


class FakeServer:
    def __init__(self) -> None:
        self.routes: list[tuple[str, Handler | list[Reply]]] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self.released = threading.Event()
        server = self

        class _H(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                with server._lock:
                    server.requests.append((parts.path, query))
                reply = server._reply(parts.path, query)
                if reply.hold:
                    server.released.wait(60)
                if reply.delay:
                    time.sleep(reply.delay)
                body, kind = reply.encoded()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.headers.get("Content-Type", kind))
                    for k, v in reply.headers.items():
                        if k != "Content-Type":
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            do_GET = _serve
            do_POST = _serve

            def log_message(self, *args) -> None:  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def route(self, prefix: str, handler: Handler | list[Reply] | Reply) -> None:
        """Add a route (checked before earlier ones, so tests can override defaults)."""
        if isinstance(handler, Reply):
            handler = [handler]
        self.routes.insert(0, (prefix, list(handler) if isinstance(handler, list) else handler))

    def _reply(self, path: str, query: dict[str, str]) -> Reply:
        for prefix, handler in self.routes:
            if path.startswith(prefix):
                if isinstance(handler, list):
                    with self._lock:
                        return handler.pop(0) if len(handler) > 1 else handler[0]
                return handler(path, query)
        return Reply(404, "")

    def hits(self, prefix: str) -> int:
        return sum(1 for p, _ in self.requests if p.startswith(prefix))

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()
