"""The HTTP under the platforms' REST clients: one pool of kept-alive connections, straight over urllib3.

Both SDKs send through `requests` by default, and `requests` prepares every request afresh: it
merges the session's cookies, hooks and settings, looks for proxies and a netrc in the environment,
and checks each argument against a runtime Protocol (`requests.utils.to_key_val_list`: some 7 µs a
call on Python 3.11, called 16 times a message). A dispatch job sends one message an offer, so this
sends them with urllib3 (which `requests` itself sends with) and nothing more, at about half the
CPU a message on Twilio and three quarters on Plivo (`sewamitra bench dispatch`'s sending phase):

- a timeout for connecting and one for reading, no retries (a POST tried again could send an SMS
  twice), no redirects followed (the SDKs' own default);
- TLS verified against `certifi`'s bundle, as `requests` does;
- a proxy from the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), as `requests` honours, unless
  the API is a configured one (a sandbox, a test's API), which is reached directly.

It raises `Unreachable` when it gets no answer, `TimedOut` (one of them) when the API took longer
than the timeout to connect or answer, as `requests` tells them apart.
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

POOL_SIZE = 10  # connections kept to one host: a job sends one request at a time, a web process a few


class Unreachable(Exception):
    """No answer came from the API: it refused the connection, dropped it, or was not found."""


class TimedOut(Unreachable):
    """The API took longer than the timeout to take the connection or to answer."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, read whole: its status, its headers (names in lower case), its body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as text, in the charset its Content-Type names (UTF-8 when it names none)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", errors="replace")


class Transport:
    """Kept-alive connections to a platform's API, for one process's REST client."""

    def __init__(self, *, timeout: float, direct: bool) -> None:
        """`direct`: the API is a configured one (a sandbox): no proxy from the environment reroutes it."""
        if timeout <= 0:
            raise ValueError("a REST request's timeout must be positive")
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._options: dict[str, Any] = {
            "maxsize": POOL_SIZE,
            "ca_certs": certifi.where(),
            "cert_reqs": "CERT_REQUIRED",
        }
        self._direct = urllib3.PoolManager(**self._options)
        self._proxies = {} if direct else urllib.request.getproxies()
        self._through: dict[str, urllib3.PoolManager] = {}  # a proxy's URL -> its manager

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """Send one request and read its answer whole (`Unreachable` when none came)."""
        try:
            answer = self._manager(url).request(
                method,
                url,
                body=body,
                headers=dict(headers),
                timeout=urllib3.Timeout(connect=timeout, read=timeout) if timeout else self.timeout,
                retries=False,  # no second try, and a redirect answered as it is
                preload_content=True,
            )
        except NewConnectionError as error:  # a refused connection: urllib3 counts it among its timeouts
            raise Unreachable(str(error)) from error
        except TimeoutError as error:
            raise TimedOut(str(error)) from error
        except HTTPError as error:
            raise Unreachable(str(error)) from error
        return Answer(answer.status, {name.lower(): value for name, value in answer.headers.items()}, answer.data)

    def close(self) -> None:
        self._direct.clear()
        for manager in self._through.values():
            manager.clear()

    def _manager(self, url: str) -> urllib3.PoolManager:
        """The direct pool, or a proxy's where the environment names one for this URL."""
        if not self._proxies:
            return self._direct
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all")
        if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
            return self._direct
        if proxy not in self._through:
            self._through[proxy] = urllib3.ProxyManager(proxy, **self._options)
        return self._through[proxy]


def basic_auth(user: str, password: str) -> str:
    """An Authorization header's value for HTTP Basic authentication (latin-1, as `requests` encodes it)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("latin-1")).decode("ascii")


def form(fields: Mapping[str, Any] | None) -> str:
    """Fields as `application/x-www-form-urlencoded`, as `requests` encodes a dict: a list or tuple is
    one field each of its items, None is left out, anything else is its `str`."""
    pairs: list[tuple[str, str | bytes]] = []
    for name, value in (fields or {}).items():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if item is not None:
                pairs.append((name, item if isinstance(item, (str, bytes)) else str(item)))
    return urlencode(pairs)


def query(url: str, params: Mapping[str, Any] | None) -> str:
    """`url` with `params` appended to its query string."""
    encoded = form(params)
    if not encoded:
        return url
    return f"{url}{'&' if urlsplit(url).query else '?'}{encoded}"
