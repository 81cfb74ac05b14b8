"""A small client of Nightingale's (n9e v8/v9) HTTP API, on the standard library only.

Every answer of n9e is an envelope ``{"dat": ..., "err": ""}``, often with HTTP 200 even when the
request failed, so each call checks ``err``. Transport, HTTP and JSON problems are wrapped where
they enter, as ``N9eError`` subclasses (user errors: exit status 1):

    N9eError
      ├── Unreachable     the server cannot be reached (refused, timed out, DNS, TLS)
      ├── LoginFailed     wrong user/password, or a token the server refuses (HTTP 401/403)
      └── ApiError        the server answered with an error, or with something that is not its API

Every request asks for English (``X-Language: en``): n9e answers errors in Chinese otherwise, and
gen passes the server's own text on. An answer that is not n9e's (a proxy's HTML error page, a
wrong URL) becomes one line: the status and a short reason, never the raw body.

Credentials are sent, never logged, printed or put in an error message. Proxies from the
environment are not used: a site's n9e is reached directly inside the site.
"""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from generator.core import errors

API = "/api/n9e"
LANGUAGE = {"X-Language": "en"}
"""Sent with every request: the language n9e answers errors in (it defaults to Chinese)."""
REASON_CHARS = 120
"""A non-n9e answer's reason is cut to this many characters."""


class N9eError(errors.GenError):
    """A problem talking to n9e; the message says which server and what to check."""


class Unreachable(N9eError, errors.OperationalError):
    """The server did not answer (exit status 3: nothing was decided)."""


class LoginFailed(N9eError):
    """The server refused the credentials."""


class ApiError(N9eError):
    """The server answered with an error (or not like n9e)."""


@dataclass(frozen=True)
class Credentials:
    """How to authenticate: a user and password (logged in via /auth/login) or an access token."""

    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.token and not (self.username and self.password):
            raise N9eError(
                "no n9e credentials: give --user and --password "
                "(or GEN_N9E_USER and GEN_N9E_PASSWORD), "
                "or --token (GEN_N9E_TOKEN)"
            )


@dataclass(frozen=True)
class Settings:
    """Where the site's n9e is and how patient to be with it."""

    url: str
    """Base URL of the n9e center, e.g. http://10.86.3.30:17000."""
    timeout: float = 15.0
    """Seconds to wait for one request."""


class Client:
    """An authenticated session with one n9e server."""

    def __init__(self, settings: Settings, credentials: Credentials) -> None:
        parsed = urllib.parse.urlparse(settings.url)
        if "@" in parsed.netloc:
            raise N9eError(
                "the n9e URL holds credentials; give them with --user/--password or --token instead"
            )
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise N9eError(f"not an http(s) URL of an n9e server: {settings.url!r}")
        self.base = settings.url.rstrip("/")
        self.timeout = settings.timeout
        self._credentials = credentials
        self._token = credentials.token
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"Client({self.base!r})"

    def login(self) -> None:
        """Get an access token for the user and password (a given token is used as it is)."""
        if self._credentials.token:
            return
        body = {"username": self._credentials.username, "password": self._credentials.password}
        envelope = self._send("POST", f"{API}/auth/login", body, authorized=False)
        err = envelope.get("err") if isinstance(envelope, dict) else None
        dat = envelope.get("dat") if isinstance(envelope, dict) else None
        if err or not isinstance(dat, dict) or not dat.get("access_token"):
            reason = err or "no access token in the answer"
            raise LoginFailed(
                f"n9e at {self.base} refused the login of user "
                f"{self._credentials.username!r}: {reason}"
            )
        self._token = str(dat["access_token"])

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        """``dat`` of a GET (``path`` below /api/n9e)."""
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self.call("GET", path + suffix)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """``dat`` of a request below /api/n9e; a non-empty ``err`` raises ``ApiError``."""
        envelope = self._send(method, API + path, body)
        if not isinstance(envelope, dict):
            raise ApiError(
                f"{method} {self.base}{API}{path}: the answer is not n9e's JSON envelope"
            )
        if envelope.get("err"):
            raise ApiError(f"{method} {API}{path}: {envelope['err']}")
        return envelope.get("dat")

    def call_raw(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """The whole envelope of a request below /api/n9e
        (for answers that carry per-item errors)."""
        envelope = self._send(method, API + path, body)
        if not isinstance(envelope, dict):
            raise ApiError(
                f"{method} {self.base}{API}{path}: the answer is not n9e's JSON envelope"
            )
        return envelope

    def _send(self, method: str, path: str, body: Any, authorized: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json", **LANGUAGE}
        if authorized:
            if not self._token:
                self.login()
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
            if e.code in (401, 403):
                raise LoginFailed(
                    f"n9e at {self.base} refused {method} {path} (HTTP {e.code}: {_reason(raw)}); "
                    "check the user, password or token"
                ) from e
            if not _is_envelope(raw):
                raise ApiError(f"{method} {self.base}{path}: HTTP {e.code}: {_reason(raw)}") from e
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise Unreachable(
                f"cannot reach n9e at {self.base}: {reason}; check --url and the network"
            ) from e
        return _decode(raw, status, f"{method} {self.base}{path}")


def _is_envelope(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


def _decode(raw: bytes, status: int, request: str) -> Any:
    """The JSON of an answer; anything else is one line naming the status (is this n9e at all?)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        reason = _reason(raw)
        raise ApiError(f"{request}: HTTP {status}, not n9e's API (check --url): {reason}") from e


def _reason(raw: bytes) -> str:
    """One short line saying what the server answered: n9e's ``err``, or another body's gist."""
    try:
        decoded = json.loads(raw)
    except ValueError:
        return _gist(raw.decode(errors="replace"))
    if isinstance(decoded, dict) and decoded.get("err"):
        return _one_line(str(decoded["err"]))
    return _one_line(json.dumps(decoded))


def _gist(text: str) -> str:
    """An HTML page's title (else its text without tags), or a plain body, on one short line."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title and title.group(1).strip():
        return _one_line(html.unescape(title.group(1)))
    tags = r"<(script|style)\b.*?</\1>|<[^>]*>"
    stripped = re.sub(tags, " ", text, flags=re.IGNORECASE | re.DOTALL)
    return _one_line(html.unescape(stripped)) or "empty answer"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 3] + "..."
