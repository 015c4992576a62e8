"""The Twilio SDK's HTTP client, over `telephony.http`'s kept-alive connections rather than `requests`.

The SDK lets a program give it its own client, a `twilio.http.HttpClient` ("Custom HTTP Clients for
the Twilio Python Helper Library": github.com/twilio/twilio-python, advanced-examples/
custom-http-client.md). Its `request` gets the method, the URL, the query and form fields, the
headers and the account's credentials, and answers a `twilio.http.response.Response` of the status,
the text and the headers. This one encodes them as `TwilioHttpClient` has `requests` encode them (a
form, or JSON where the SDK asks for it).
"""

from __future__ import annotations

import json
import logging

from twilio.http import HttpClient
from twilio.http.response import Response

from telephony.http import Transport, basic_auth, form, query

log = logging.getLogger("twilio.http_client")  # the SDK's own client logs here
JSON_TYPES = ("application/json", "application/scim+json")


class LeanHttpClient(HttpClient):  # type: ignore[misc]
    """`twilio.http.HttpClient` over one `Transport`: the SDK's requests sent as they come, none again."""

    def __init__(self, *, timeout: float, direct: bool) -> None:
        """`direct`: the API is a configured one (a sandbox): no proxy from the environment reroutes it."""
        super().__init__(log, False, timeout)
        self.transport = Transport(timeout=timeout, direct=direct)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """One request as `TwilioHttpClient` sends it; urllib3's errors are raised as they come.
        Redirects are not followed, whatever `allow_redirects` says: the API answers none."""
        del allow_redirects
        if timeout is not None and timeout <= 0:
            raise ValueError(timeout)
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = basic_auth(*auth)
        body: bytes | None = None
        if data:  # an empty form is no body, as `requests` sends it
            if sent.get("Content-Type") in JSON_TYPES:
                body = json.dumps(data).encode()
            else:
                sent["Content-Type"] = "application/x-www-form-urlencoded"
                body = form(data).encode()
        answer = self.transport.request(
            method.upper(), query(url, params), headers=sent, body=body, timeout=timeout or self.timeout
        )
        return Response(answer.status, answer.text, answer.headers)
