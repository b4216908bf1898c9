"""One POST to a webhook address, with the standard library: the host resolved and checked
(addresses.resolve), connected to by the checked address, TLS verified against the host
name, 5 seconds to look it up, to connect and to each read, and 15 for the whole attempt
from the lookup on, no redirect followed, and at most 64 KB of the answer read, of which
only a short excerpt is kept.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from core.mail import one_line
from core.redact import redact_tokens_escaped
from webhooks.addresses import Address, LookupsBusy, RefusedAddress, resolve

TIMEOUT = 5.0
# The whole attempt, from the lookup to the last byte read: past it the socket is shut
# down under the read, so a far end that trickles its answer (a header line a second, or
# "100 Continue" forever) cannot hold the sender, and every other project's alerts behind
# it, for longer.
TOTAL = 3 * TIMEOUT
MAX_READ = 64 * 1024
EXCERPT = 120


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt went: a 2xx status is a delivery, anything else a failure.
    `attempted` is False when nothing was tried (no DNS lookup could start): that says
    nothing of the endpoint, and costs its delivery none of its attempts."""

    status_code: int | None
    error: str = ""
    attempted: bool = True

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def where(url: str) -> str:
    """What logs may say about an address: scheme and host. A Slack URL's path is its
    secret, and a query string may hold one too."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or '?'}"
    except ValueError:
        return "(unparsable address)"


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address we checked, whatever the host name says now.

    `expired` is set by the attempt's deadline, which shuts down `sock`: a socket made
    after it passed (connecting and the TLS handshake can take up to TIMEOUT each, after a
    lookup that may have too) is never used, or the answer after it would be read with
    nothing left to stop it."""

    def __init__(
        self, host: str, port: int, address: Address, timeout: float, expired: threading.Event
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address
        self._expired = expired

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self._address), self.port), self.timeout)
        self._unless_expired()

    def _unless_expired(self) -> None:
        if self._expired.is_set():
            raise TimeoutError("the attempt's deadline passed while connecting")


class _PinnedHTTPSConnection(_PinnedHTTPConnection, http.client.HTTPSConnection):
    def __init__(
        self, host: str, port: int, address: Address, timeout: float, expired: threading.Event
    ) -> None:
        self._tls = ssl.create_default_context()
        http.client.HTTPSConnection.__init__(self, host, port, timeout=timeout, context=self._tls)
        self._address = address
        self._expired = expired

    def connect(self) -> None:
        # Set at once, so that the deadline can shut it down under the handshake too.
        self.sock = socket.create_connection((str(self._address), self.port), self.timeout)
        self._unless_expired()
        # The certificate must name the host we were given, not the address we dialled.
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self.host)
        self._unless_expired()


def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    project_id: int | None = None,
    person_id: int | None = None,
) -> Outcome:
    """POST `body` to `url`, an endpoint of `project_id` made by `person_id` (whose shares
    of the DNS lookups it uses: addresses.MAX_LOOKUPS_UNANSWERED_PER_PROJECT and _PER_PERSON).
    Never raises for anything the
    far end or the network does: the outcome says what happened, in one short line
    without the address's secrets."""
    deadline = time.monotonic() + TOTAL
    try:
        parts: SplitResult = urlsplit(url)
        host, port, address = resolve(
            parts, within=min(TIMEOUT, TOTAL), project_id=project_id, person_id=person_id
        )
    except LookupsBusy as busy:
        return Outcome(None, one_line(str(busy), limit=300), attempted=False)
    except RefusedAddress as refused:
        return Outcome(None, one_line(str(refused), limit=300))
    except ValueError:
        return Outcome(None, "The address cannot be parsed.")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    left = max(deadline - time.monotonic(), 0.001)
    each = min(TIMEOUT, left)  # to connect, and for each read
    expired = threading.Event()
    connection: _PinnedHTTPConnection
    if parts.scheme == "https":
        connection = _PinnedHTTPSConnection(host, port, address, each, expired)
    else:
        connection = _PinnedHTTPConnection(host, port, address, each, expired)

    def cut() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(left, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        excerpt = one_line(_answered(_read_some(response, deadline), parts), limit=EXCERPT)
        status = response.status
    except TimeoutError:
        if expired.is_set() or each < TIMEOUT:  # what was left of the attempt ran out
            return Outcome(None, f"No complete answer within {TOTAL:.0f} seconds.")
        return Outcome(None, f"No answer within {TIMEOUT:.0f} seconds.")
    except ssl.SSLError as error:
        if expired.is_set():
            return Outcome(None, f"No complete answer within {TOTAL:.0f} seconds.")
        return Outcome(None, one_line(f"TLS failed: {error.reason or type(error).__name__}"))
    except (OSError, http.client.HTTPException) as error:
        if expired.is_set():
            return Outcome(None, f"No complete answer within {TOTAL:.0f} seconds.")
        return Outcome(None, one_line(f"Connection failed: {type(error).__name__}"))
    finally:
        watchdog.cancel()
        connection.close()
    if expired.is_set():  # cut short: whatever status came, the answer never ended
        return Outcome(None, f"No complete answer within {TOTAL:.0f} seconds.")
    if 200 <= status < 300:
        return Outcome(status)
    if 300 <= status < 400:
        return Outcome(status, f"HTTP {status}: redirects are not followed; use the final address.")
    detail = f": {excerpt}" if excerpt else ""
    return Outcome(status, one_line(f"HTTP {status}{detail}", limit=300))


def _read_some(response: http.client.HTTPResponse, deadline: float) -> str:
    """At most MAX_READ bytes of the answer, within the deadline, as text."""
    read = b""
    while len(read) < MAX_READ and time.monotonic() < deadline:
        chunk = response.read1(MAX_READ - len(read))
        if not chunk:
            break
        read += chunk
    return read.decode("utf-8", errors="replace")


def _answered(text: str, parts: SplitResult) -> str:
    """What the far end answered, as the log and the delivery's row keep it: without the
    address's secret path (_without_address), and without any Reminix token it quotes (a
    service showing the key it was configured with, or echoing what anyone sent it): the
    delivery log shows the row to every member. Both cut before the excerpt is shortened,
    which could leave a token's first part."""
    return redact_tokens_escaped(_without_address(text, parts))


# Path segments this long may be (part of) a secret; shorter ones ("hooks") are not.
SECRET_SEGMENT = 8


def _without_address(text: str, parts: SplitResult) -> str:
    """`text` with the address's path and query cut out, as sent and decoded, whole and
    by segment. A far end that does not know the path echoes it in its answer ("Cannot
    POST /services/T000/B000/XXXX", as Express and many others answer), and a Slack URL's
    path is its secret: the excerpt goes into the log and the delivery's row. Cut before
    the excerpt is shortened, which could leave a secret's first part."""
    pieces = {parts.path, parts.query}
    pieces |= {p for p in parts.path.split("/") if len(p) >= SECRET_SEGMENT}
    pieces |= {unquote(p) for p in pieces}
    for piece in sorted(pieces - {"", "/"}, key=len, reverse=True):
        text = text.replace(piece, "[address]")
    return text
