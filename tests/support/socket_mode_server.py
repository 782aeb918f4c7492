"""A loopback Socket Mode server: Slack's side of the websocket, as slack_sdk's client expects it.

`SocketModeFakeSlack` (below, a `FakeSlack` of bot/sandbox/slack_emulator.py) starts one and
answers `apps.connections.open` with its `ws://127.0.0.1:PORT/link/?ticket=…` URL, so
`python -m bot socket` connects to it exactly as it connects to Slack.
The protocol it speaks (docs/slack-platform.md §7.1):

- on every new connection it sends `hello` (`num_connections`, `debug_info`, `connection_info`);
- `send()` wraps a payload in an envelope `{envelope_id, type, payload, accepts_response_payload,
  retry_attempt, retry_reason}`; the client acks with `{envelope_id, payload?}`, and every ack is
  recorded (`acks()`, `wait_ack()`);
- an envelope not acked when its connection ends stays pending and is sent again on the next
  connection with `retry_attempt` one higher and `retry_reason` `"timeout"` (at-least-once
  delivery); one sent while no client is connected waits for the next connection;
- `disconnect(reason)` sends Slack's `disconnect` message; `drop()` ends the connection abruptly
  (no close frame); `lose_ack=True` drops the connection when that envelope's ack arrives, so the
  ack is lost after the bot has done the work (the "in flight at the drop" case);
- `refuse()` answers new handshakes with HTTP 503, so a client cannot reconnect.

It needs the `websockets` package (a dev dependency), imported only when a server starts. Every
thread is a daemon or ends when `stop()` closes its connection; nothing here logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bot.sandbox.slack_emulator import SANDBOX_APP_ID, FakeSlack, block_action_payload, slash_command_fields

if TYPE_CHECKING:
    from websockets.http11 import Request, Response
    from websockets.sync.server import Server, ServerConnection

__all__ = ["SocketAck", "SocketModeFakeSlack", "SocketModeServer"]

RETRY_REASON = "timeout"  # what the fake puts in a re-sent envelope's retry_reason
_CLOSE_TIMEOUT = 1.0  # seconds a closing handshake may take before the socket is cut
# websockets logs every connection at INFO; a logger outside the hierarchy, above CRITICAL, keeps it quiet.
_SILENT = logging.Logger("fake-socket-mode", level=logging.CRITICAL + 1)


@dataclass(frozen=True)
class SocketAck:
    """One acknowledgement the client sent: the envelope it acks and the message it carries."""

    envelope_id: str
    payload: dict[str, Any] | None  # None: an empty ack
    connection: int  # which connection (1 = the first) carried it
    at: float  # time.monotonic() on arrival


@dataclass
class _Envelope:
    envelope_id: str
    type: str
    payload: dict[str, Any]
    accepts_response_payload: bool
    attempts: int = 0  # deliveries so far
    lose_ack: bool = False  # drop the connection instead of recording the next ack

    def message(self) -> str:
        return json.dumps(
            {
                "envelope_id": self.envelope_id,
                "type": self.type,
                "payload": self.payload,
                "accepts_response_payload": self.accepts_response_payload,
                "retry_attempt": max(0, self.attempts - 1),
                "retry_reason": RETRY_REASON if self.attempts > 1 else "",
            }
        )


@dataclass
class _Link:
    number: int
    connection: ServerConnection
    delivered: set[str] = field(default_factory=set)


class SocketModeServer:
    """Slack's Socket Mode endpoint on loopback; see the module docstring."""

    def __init__(self, *, host: str = "127.0.0.1", app_id: str = "A0SANDBOX") -> None:
        self.host = host
        self.app_id = app_id
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._links: list[_Link] = []  # open connections, newest last
        self._pending: dict[str, _Envelope] = {}  # sent, not yet acked, in sending order
        self._acks: list[SocketAck] = []
        self._tickets: set[str] = set()
        self._refusing = False
        self.connections = 0  # handshakes completed
        self.refused = 0  # handshakes answered 503

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SocketModeServer:
        from websockets.sync.server import serve

        if self._server is not None:
            raise RuntimeError("the Socket Mode server is already running")
        self._server = serve(
            self._serve_link,
            self.host,
            0,
            process_request=self._admit,
            compression=None,  # slack_sdk's builtin client negotiates no extension
            ping_interval=None,  # the client pings; the server answers
            close_timeout=_CLOSE_TIMEOUT,
            server_header="FakeSlack/1",
            logger=_SILENT,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"fake-socket-mode-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        with self._lock:
            links = list(self._links)
        for link in links:
            _cut(link.connection)
        server.shutdown()
        if thread is not None:
            thread.join(timeout=2)
        self._server = self._thread = None

    def __enter__(self) -> SocketModeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Socket Mode server is not running: call start() first")
        return int(self._server.socket.getsockname()[1])

    def new_url(self) -> str:
        """A fresh connection URL, as `apps.connections.open` issues one."""
        ticket = uuid.uuid4().hex
        with self._lock:
            self._tickets.add(ticket)
        return f"ws://{self.host}:{self.port}/link/?ticket={ticket}"

    # -- driving the client ----------------------------------------------------------------

    def send(self, kind: str, payload: dict[str, Any], *, lose_ack: bool = False) -> str:
        """Send an envelope of `kind` ("slash_commands", "interactive", …) to the newest
        connection, or keep it for the next one; returns its envelope_id."""
        envelope = _Envelope(
            envelope_id=str(uuid.uuid4()),
            type=kind,
            payload=payload,
            accepts_response_payload=kind in ("slash_commands", "interactive"),
            lose_ack=lose_ack,
        )
        with self._lock:
            self._pending[envelope.envelope_id] = envelope
            link = self._links[-1] if self._links else None
            if link is not None:
                self._deliver(link, envelope)
        return envelope.envelope_id

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's `disconnect` message on the newest connection (reason: refresh_requested,
        warning, link_disabled); the client is expected to open a new connection."""
        message = json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}})
        with self._lock:
            link = self._links[-1] if self._links else None
        if link is not None:
            with contextlib.suppress(Exception):
                link.connection.send(message)

    def drop(self) -> int:
        """End every open connection abruptly, without a close frame; returns how many."""
        with self._lock:
            links = list(self._links)
        for link in links:
            _cut(link.connection)
        return len(links)

    def refuse(self, refusing: bool = True) -> None:
        """Answer new handshakes with HTTP 503 (True) or accept them again (False)."""
        with self._lock:
            self._refusing = refusing

    # -- inspection ------------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    def acks(self, envelope_id: str | None = None) -> list[SocketAck]:
        """Every ack received, oldest first (duplicates included), or those of one envelope."""
        with self._lock:
            return [a for a in self._acks if envelope_id is None or a.envelope_id == envelope_id]

    def pending(self) -> list[str]:
        """Envelopes sent and not acked yet."""
        with self._lock:
            return list(self._pending)

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> SocketAck:
        """The first ack of `envelope_id`; AssertionError when none arrives within `timeout`."""
        if not self.wait(lambda server: bool(server.acks(envelope_id)), timeout):
            raise AssertionError(f"no ack of envelope {envelope_id} within {timeout:g} s")
        return self.acks(envelope_id)[0]

    def wait_connections(self, count: int, timeout: float = 10.0) -> bool:
        """Block until `count` handshakes have completed in all and a connection is open."""
        return self.wait(lambda server: server.connections >= count and server.open_connections > 0, timeout)

    def wait(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
            return True

    # -- the websocket side (server threads) ------------------------------------------------

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        ticket = request.path.partition("ticket=")[2].partition("&")[0]
        with self._lock:
            if self._refusing:
                self.refused += 1
                self._changed.notify_all()
                return connection.respond(503, "Socket Mode is not accepting connections\n")
            if ticket not in self._tickets:
                return connection.respond(401, "unknown ticket\n")
        return None

    def _serve_link(self, connection: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        with self._lock:
            self.connections += 1
            link = _Link(self.connections, connection)
            self._links.append(link)
            hello = {
                "type": "hello",
                "num_connections": len(self._links),
                "debug_info": {"host": "fake-slack", "approximate_connection_time": 3600},
                "connection_info": {"app_id": self.app_id},
            }
            with contextlib.suppress(ConnectionClosed):
                connection.send(json.dumps(hello))
                for envelope in list(self._pending.values()):
                    self._deliver(link, envelope)
            self._changed.notify_all()
        try:
            for message in connection:
                self._received(link, message)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                if link in self._links:
                    self._links.remove(link)
                self._changed.notify_all()

    def _deliver(self, link: _Link, envelope: _Envelope) -> None:
        """Send `envelope` on `link` (lock held); a closed link keeps it pending."""
        if envelope.envelope_id in link.delivered:
            return
        envelope.attempts += 1
        link.delivered.add(envelope.envelope_id)
        with contextlib.suppress(Exception):
            link.connection.send(envelope.message())

    def _received(self, link: _Link, message: str | bytes) -> None:
        try:
            ack = json.loads(message)
        except ValueError:
            return
        if not isinstance(ack, dict) or not isinstance(ack.get("envelope_id"), str):
            return
        envelope_id = ack["envelope_id"]
        payload = ack["payload"] if isinstance(ack.get("payload"), dict) else None
        with self._lock:
            envelope = self._pending.get(envelope_id)
            if envelope is not None and envelope.lose_ack:
                envelope.lose_ack = False
                lost = True
            else:
                lost = False
                self._pending.pop(envelope_id, None)
                self._acks.append(SocketAck(envelope_id, payload, link.number, time.monotonic()))
                self._changed.notify_all()
        if lost:
            _cut(link.connection)


def _cut(connection: ServerConnection) -> None:
    """End a connection the way a network failure does: no close frame, a TCP reset."""
    sock = connection.socket
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes the thread reading it


class SocketModeFakeSlack(FakeSlack):
    """FakeSlack with its Socket Mode server: `apps.connections.open` answers with a URL of it,
    and `socket_command()` / `socket_click()` send envelopes built from the same fields as the
    HTTP bodies of bot/sandbox/slack_emulator.py."""

    def __init__(self, **fake_slack: Any) -> None:
        super().__init__(**fake_slack)
        self._socket: SocketModeServer | None = None

    def start(self) -> SocketModeFakeSlack:
        super().start()
        self._socket = SocketModeServer(host=self.host, app_id=SANDBOX_APP_ID).start()
        return self

    def stop(self) -> None:
        if self._socket is not None:
            self._socket.stop()
            self._socket = None
        super().stop()

    def __enter__(self) -> SocketModeFakeSlack:
        return self.start()

    @property
    def socket(self) -> SocketModeServer:
        """The Socket Mode server (started)."""
        if self._socket is None:
            raise RuntimeError("the Socket Mode server is not running: call start() first")
        return self._socket

    def socket_mode_url(self) -> str | None:
        return self.socket.new_url()

    def socket_command(self, text: str, *, response_url: str, lose_ack: bool = False, **fields: Any) -> str:
        """`/desk-languages <text>` as a `slash_commands` envelope; returns its envelope_id."""
        payload = slash_command_fields(text, response_url=response_url, **fields)
        return self.socket.send("slash_commands", dict(payload), lose_ack=lose_ack)

    def socket_event(self, payload: dict[str, Any], *, lose_ack: bool = False) -> str:
        """An Events API callback (`event_callback` payload, e.g. `function_executed_event()`'s) as an
        `events_api` envelope; returns its envelope_id."""
        return self.socket.send("events_api", payload, lose_ack=lose_ack)

    def socket_click(self, action_id: str, *, response_url: str, lose_ack: bool = False, **fields: Any) -> str:
        """A button click as an `interactive` envelope (`block_action_payload`'s keywords)."""
        payload = block_action_payload(action_id, response_url=response_url, **fields)
        return self.socket.send("interactive", payload, lose_ack=lose_ack)
