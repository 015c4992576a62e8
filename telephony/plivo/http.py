"""The Plivo SDK's requests, sent over `telephony.http`'s kept-alive connections rather than `requests`.

`plivo.RestClient.request` makes every API request in two steps it names for itself: `create_request`
builds it (`requests.Request(...)` prepared by a `requests.Session`: JSON of the fields, or the query
of a GET, on `{base_uri}/{auth_id}/{path}/`) and `send_request` sends it (`session.send`) for
`process_response` to read the status and the JSON of. `LeanRestClient` builds the same request
itself and sends it with a `Transport`; what it answers has what `process_response` reads. The
SDK's other requests (multipart uploads, Call Insights, Lookup) still go through `requests`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import plivo

from telephony.http import Answer, Transport, basic_auth, query

PLIVO_API = "https://api.plivo.com/"  # the SDK builds every URL on this literal base


@dataclass(frozen=True)
class Outgoing:
    """A request `LeanRestClient.create_request` built, for its `send_request`."""

    method: str
    url: str
    body: bytes | None


class Received:
    """An answer as `plivo.RestClient.process_response` reads it (a `requests.Response`'s `status_code`,
    `url` and `json`), with its `text` and `headers` beside."""

    def __init__(self, answer: Answer, url: str) -> None:
        self.status_code = answer.status
        self.url = url
        self.headers = answer.headers
        self.content = answer.body
        self.text = answer.text

    def json(self, **options: Any) -> Any:
        """The body's JSON (`options` as `json.loads` takes them); ValueError when it is none."""
        return json.loads(self.text, **options)


class LeanRestClient(plivo.RestClient):  # type: ignore[misc]
    """`plivo.RestClient` whose JSON requests go over one `Transport`, to `api_base_url` when given."""

    def __init__(self, auth_id: str, auth_token: str, *, timeout: float, api_base_url: str | None) -> None:
        super().__init__(auth_id, auth_token, timeout=timeout)
        self.transport = Transport(timeout=timeout, direct=bool(api_base_url))
        self._elsewhere = api_base_url.rstrip("/") + "/" if api_base_url else None
        self._headers = {
            "User-Agent": self.session.headers["User-Agent"],
            "Content-Type": "application/json",  # the SDK's session sends it on every request
            "Accept": "application/json",
            "Authorization": basic_auth(*self.session.auth),
        }

    def create_request(self, method: str, path: Any = None, data: Any = None, **kwargs: Any) -> Any:
        """A request on the SDK's API base, built as `requests` would prepare it; others as the SDK builds them."""
        if kwargs:  # a Call Insights or Lookup request: another host, the SDK's own way
            return super().create_request(method, path, data, **kwargs)
        url = "/".join([self.base_uri, self.session.auth[0], *(str(part) for part in path or [])]) + "/"
        if method == "GET":
            return Outgoing(method, query(url, data), None)
        body = None if data is None else json.dumps(data, allow_nan=False).encode()
        return Outgoing(method, url, body)

    def send_request(self, request: Any, **kwargs: Any) -> Any:
        """Send a request `create_request` built over the transport; any other through `requests`."""
        if not isinstance(request, Outgoing):
            return super().send_request(request, **kwargs)
        url = request.url
        if self._elsewhere and url.startswith(PLIVO_API):
            url = self._elsewhere + url[len(PLIVO_API) :]
        return Received(self.transport.request(request.method, url, headers=self._headers, body=request.body), url)

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__(*exc_info)
        self.transport.close()
