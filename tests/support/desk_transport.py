"""A scripted transport for `DeskClient`, for fast tests: a real `requests.Session` whose HTTP
adapter answers from a script instead of the network (no socket is opened).

Each step is a JSON object (answered with HTTP 200), an HTTP status (answered with a small
HTML page), or an exception to raise as the transport would (`requests.exceptions.ReadTimeout`,
`ConnectionError`, …). Every request that reached the adapter is recorded.
"""

from __future__ import annotations

import io
import json
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter

BASE_URL = "http://desk.test"
OK: dict[str, Any] = {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}


@dataclass(frozen=True)
class Sent:
    api: str  # the command of the path
    query: str
    body: Any  # the decoded JSON body


class ScriptedDesk(BaseAdapter):
    def __init__(self, *steps: dict[str, Any] | int | BaseException) -> None:
        super().__init__()
        self._steps: deque[dict[str, Any] | int | BaseException] = deque(steps)
        self.sent: list[Sent] = []

    def session(self) -> requests.Session:
        session = requests.Session()
        session.mount(BASE_URL, self)
        return session

    def sent_to(self, api: str) -> list[Sent]:
        return [request for request in self.sent if request.api == api]

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
        self.sent.append(Sent(parts.path.rsplit("/", 1)[-1], parts.query, json.loads(body or b"null")))
        if not self._steps:
            raise AssertionError("the client sent more requests than the test scripted")
        step = self._steps.popleft()
        if isinstance(step, BaseException):
            raise step
        response = requests.Response()
        response.request, response.url = request, request.url
        if isinstance(step, int):
            response.status_code, content, kind = step, b"<html>gateway</html>", "text/html"
        else:
            response.status_code, content, kind = 200, json.dumps(step).encode(), "application/json"
        response.headers["Content-Type"] = kind
        response.raw = io.BytesIO(content)
        return response

    def close(self) -> None:
        pass
