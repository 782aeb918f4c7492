"""A threaded WSGI server on loopback, for the demo and the end-to-end tests.

Production runs under granian (`python -m bot serve`); this serves the very same
WSGI application in a background thread on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request lines."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class LoopbackServer:
    def __init__(self, wsgi_app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = make_server(host, port, wsgi_app, server_class=_ThreadingServer, handler_class=_QuietHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        # A short poll interval, so stop() returns at once rather than after up to half a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="loopback-wsgi"
        )

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
