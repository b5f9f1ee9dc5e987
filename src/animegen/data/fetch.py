"""Download raw images from URL lists, safely: one URL in, bytes or one named reason out.

:func:`fetch` is the only place the ``collect`` stage touches the network.  It returns the body of a
``200 OK`` response or raises :class:`FetchError`, whose ``reason`` is one of the names below, so a
bad URL becomes a row in ``rejects.csv`` and never a crash:

``bad_scheme``           anything but ``http``/``https`` (``file:``, ``ftp:``, ``data:``, no scheme)
``bad_url``              empty, unparsable, no host, bad port, whitespace or control characters in the host
``dns_failed``           the host name does not resolve
``blocked_address``      a resolved address is private, loopback, link-local, shared (CGNAT), reserved,
                         multicast or unspecified (also behind IPv4-mapped, 6to4 and NAT64 IPv6)
``http_<code>``          any final status other than 200, e.g. ``http_404`` (redirects are followed)
``timeout``              an attempt (connecting, the response, the whole body) took longer than ``timeout`` seconds
``connection_error``     refused, reset, TLS failure, malformed HTTP response
``too_large``            ``Content-Length`` over ``max_bytes``, or more than ``max_bytes`` actually sent
``truncated``            fewer bytes than ``Content-Length``, or the body stream broke off
``too_many_redirects``   more than ``max_redirects`` redirects (loops included)
``robots_noai``          ``X-Robots-Tag`` says ``noai`` or ``noimageai`` (like img2dataset)

Guarantees, and why:

* SSRF.  URL lists are written by other people, so a URL must not make the pipeline read
  ``file:///etc/passwd``, a cloud metadata endpoint (``http://169.254.169.254/``) or a service on the
  build machine.  Only ``http``/``https`` are accepted; the host is resolved once with
  :func:`socket.getaddrinfo`, *every* resolved address is checked with :mod:`ipaddress`, and the
  connection is then made to one of exactly those checked addresses (the connection class is pinned
  to them; the original name is sent as ``Host`` and used for TLS SNI and certificate checks).
  Nothing resolves the name a second time, so DNS rebinding between check and connect is
  impossible.  Redirects are followed by hand, and every hop is checked again (scheme and
  addresses), so a public URL cannot bounce the fetch to a private one.  :mod:`urllib`'s opener is
  deliberately not used: it follows redirects on its own, accepts ``file:`` and honours proxy
  environment variables.  ``allow_private=True`` lifts the address check (tests use loopback).
* Caps.  A body is refused up front when ``Content-Length`` exceeds ``max_bytes`` and is otherwise
  read in chunks, stopping as soon as more than ``max_bytes`` arrived, so memory per fetch is bounded
  whatever the server claims.  A short body is ``truncated``, never silently returned.
  ``timeout`` is the deadline of each attempt as a whole (connecting, the response and the whole
  body): a server that drips a byte at a time cannot hold a download past it.
* Retries.  Only transient failures are retried (``http_5xx``, ``http_429``, ``timeout``,
  ``connection_error`` other than certificate errors, ``truncated``), at most ``retries`` extra
  times, with the delay before retry ``k`` (0-based) being ``backoff * 2**k``; the ``sleep``
  function is injectable so tests run fast and can check the delays.  Other ``4xx`` and all the
  policy refusals are final at once.  Each retry starts again from the original URL.
* Consent.  With ``honor_noai`` a response whose ``X-Robots-Tag`` carries ``noai`` or ``noimageai``
  (unscoped, or scoped to our user-agent token, e.g. ``animegen-collect: noai``) is refused before
  its body is read.

:func:`read_url_list` reads the URL list files (CSV/TSV with a ``url`` column, or plain text) and
keeps the 1-based line number of every entry.
"""

from __future__ import annotations

import csv
import functools
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

__all__ = ["FetchError", "FetchPolicy", "UrlEntry", "fetch", "read_url_list"]

CHUNK = 64 * 1024
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
NOAI_DIRECTIVES = frozenset({"noai", "noimageai"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# Everything printable in ASCII except space stays as is in the request target; the rest
# (space, non-ASCII, control characters) is percent-encoded, so no header injection is possible.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False  # allow private, loopback, link-local, reserved... addresses (tests need loopback)
    max_bytes: int = 50_000_000  # body cap, enforced on Content-Length AND on bytes actually read
    timeout: float = 10.0  # seconds, the deadline of one attempt: connecting, the response and the whole body
    retries: int = 2  # extra attempts for transient failures only (5xx, 429, timeouts, connection errors); never for 4xx
    backoff: float = 0.5  # seconds; delay before retry k is backoff * 2**k
    max_redirects: int = 5
    honor_noai: bool = True  # refuse when X-Robots-Tag has noai / noimageai (as img2dataset does)
    user_agent: str = "animegen-collect/0.1 (+research; honours X-Robots-Tag noai)"


class FetchError(Exception):
    """A URL that could not be fetched, with a named ``reason`` (see the module docstring)."""

    def __init__(self, reason: str, detail: str = "", *, transient: bool | None = None):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail
        self.transient = _is_transient_reason(reason) if transient is None else transient

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


def _is_transient_reason(reason: str) -> bool:
    if reason in ("timeout", "connection_error", "truncated", "http_429"):
        return True
    return reason.startswith("http_5")


@dataclass
class UrlEntry:
    url: str
    license: str = ""
    credit: str = ""
    line: int = 0  # 1-based line number in the list file


# --------------------------------------------------------------------------- URL lists


def read_url_list(path) -> list[UrlEntry]:
    """Read a URL list: ``.csv``/``.tsv`` with a header row, anything else one URL per line.

    CSV/TSV: a ``url`` column is required (case-insensitive); ``license`` (or ``licence``) and
    ``credit`` (or ``author``) are optional.  Completely empty rows are skipped; a row with an empty
    ``url`` is kept (it becomes a ``bad_url`` reject).  Text: surrounding whitespace is stripped,
    blank lines and lines starting with ``#`` are skipped.  ``line`` is the 1-based line where the
    entry starts.  A UTF-8 byte order mark is ignored.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, "\t" if suffix == ".tsv" else ",")
    entries = []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, raw in enumerate(f, start=1):
            s = raw.strip()
            if s and not s.startswith("#"):
                entries.append(UrlEntry(url=s, line=lineno))
    return entries


def _read_csv(path: Path, delimiter: str) -> list[UrlEntry]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        columns = [c.strip() for c in header] if header else []
        lower = [c.lower() for c in columns]

        def col(*names: str) -> int | None:
            for n in names:
                if n in lower:
                    return lower.index(n)
            return None

        i_url, i_lic, i_cred = col("url"), col("license", "licence"), col("credit", "author")
        if i_url is None:
            msg = f"{path}: URL list has no 'url' column in its header row; columns found: {columns}"
            raise ValueError(msg)

        def cell(row: list[str], i: int | None) -> str:
            return row[i].strip() if i is not None and i < len(row) else ""

        entries = []
        last = reader.line_num
        for row in reader:
            start, last = last + 1, reader.line_num
            if not any(c.strip() for c in row):
                continue
            entry = UrlEntry(url=cell(row, i_url), license=cell(row, i_lic), credit=cell(row, i_cred), line=start)
            entries.append(entry)
    return entries


# --------------------------------------------------------------------------- URL parsing and address checks


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal without brackets
    port: int
    request_target: str  # path?query, percent-encoded
    host_header: str


def _parse(url: str) -> _Target:
    if not isinstance(url, str) or not url.strip():
        raise FetchError("bad_url", "empty URL")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise FetchError("bad_scheme", f"scheme {parts.scheme!r} in {url!r}" if scheme else f"no scheme in {url!r}")
        host = parts.hostname
        port = parts.port  # ValueError when not a number or out of range
    except ValueError as e:
        raise FetchError("bad_url", f"{url!r}: {e}") from None
    if not host:
        raise FetchError("bad_url", f"no host in {url!r}")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in parts.netloc):
        raise FetchError("bad_url", f"whitespace or control character in host of {url!r}")
    if port == 0:
        raise FetchError("bad_url", f"port 0 in {url!r}")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise FetchError("bad_url", f"host {parts.hostname!r}: {e}") from None
    port = port or DEFAULT_PORTS[scheme]
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    target = quote(target, safe=_TARGET_SAFE)
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == DEFAULT_PORTS[scheme] else f"{bracketed}:{port}"
    return _Target(url, scheme, host, port, target, host_header)


def _resolve(host: str, port: int) -> list[str]:
    """All addresses ``host`` resolves to, in resolver order, without duplicates (tests replace this)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _blocked_reason(address: str) -> str | None:
    """Why connecting to ``address`` is refused by default (``None`` for a public address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = _blocked_reason(str(embedded))
            if inner:
                return f"embeds {embedded}: {inner}"
    for name in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    if not ip.is_global:
        return "not globally routable"
    return None


def _checked_addresses(t: _Target, policy: FetchPolicy) -> list[str]:
    try:
        addresses = _resolve(t.host, t.port)
    except (socket.gaierror, UnicodeError) as e:
        raise FetchError("dns_failed", f"{t.host}: {e}") from None
    except OSError as e:
        raise FetchError("dns_failed", f"{t.host}: {type(e).__name__}: {e}") from None
    if not addresses:
        raise FetchError("dns_failed", f"{t.host}: no addresses")
    if not policy.allow_private:
        for a in addresses:
            why = _blocked_reason(a)
            if why:
                raise FetchError("blocked_address", f"{t.host} resolves to {a} ({why}) in {t.url!r}")
    return addresses


# --------------------------------------------------------------------------- pinned connections


def _connect_any(addresses: list[str], port: int, timeout: float) -> socket.socket:
    last: OSError | None = None
    for a in addresses:
        try:
            return socket.create_connection((a, port), timeout)
        except OSError as e:
            last = e
    assert last is not None
    raise last


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection that only ever connects to addresses that were already checked."""

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self):
        self.sock = _connect_any(self._addresses, self.port, self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address; SNI and the certificate check use the original host name."""

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float, context: ssl.SSLContext):
        super().__init__(host, port, timeout=timeout, context=context)
        self._addresses = addresses

    def connect(self):
        sock = _connect_any(self._addresses, self.port, self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()  # verifies certificates and host names
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# --------------------------------------------------------------------------- fetching


def _noai(headers, user_agent: str) -> str | None:
    """The offending ``X-Robots-Tag`` value if it forbids AI use for us (img2dataset's rule)."""
    token = user_agent.split("/", 1)[0].strip().lower()
    for value in headers.get_all("X-Robots-Tag") or []:
        scope, sep, rest = value.partition(":")
        ua = scope.strip().lower() if sep else None
        directives = {d.strip().lower() for d in (rest if sep else value).split(",")}
        if (ua is None or ua == token) and directives & NOAI_DIRECTIVES:
            return value.strip()
    return None


def _read_body(resp: http.client.HTTPResponse, sock: socket.socket, deadline: float, t: _Target,
               policy: FetchPolicy) -> bytes:  # fmt: skip
    """The body, in chunks of what has arrived (``read1``), each wait bounded by what is left of the
    attempt's ``deadline`` (``time.monotonic()``)."""
    expected = resp.length  # None when chunked or no (valid) Content-Length
    if expected is not None and expected > policy.max_bytes:
        raise FetchError("too_large", f"Content-Length {expected} > max_bytes {policy.max_bytes} for {t.url!r}")
    buf = bytearray()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            chunk = resp.read1(min(CHUNK, policy.max_bytes + 1 - len(buf)))
            if not chunk:
                break
            buf += chunk
            if len(buf) > policy.max_bytes:
                raise FetchError("too_large", f"body over max_bytes {policy.max_bytes} for {t.url!r}")
    except TimeoutError:
        raise FetchError("timeout", f"not done within {policy.timeout}s, {len(buf)} bytes in, from {t.url!r}") from None
    except (OSError, http.client.HTTPException) as e:
        raise FetchError("truncated", f"body broke off after {len(buf)} bytes ({type(e).__name__}) for {t.url!r}") from None
    if expected is not None and len(buf) < expected:
        raise FetchError("truncated", f"got {len(buf)} of {expected} bytes (Content-Length) for {t.url!r}")
    return bytes(buf)


def _request(t: _Target, addresses: list[str], policy: FetchPolicy) -> tuple[bytes | None, str | None]:
    """One GET to a checked target: ``(body, None)`` on 200, ``(None, location)`` on a redirect; all of
    it within ``policy.timeout`` seconds."""
    deadline = time.monotonic() + policy.timeout
    if t.scheme == "https":
        conn = _PinnedHTTPSConnection(t.host, t.port, addresses, policy.timeout, _ssl_context())
    else:
        conn = _PinnedHTTPConnection(t.host, t.port, addresses, policy.timeout)
    resp = None
    try:
        try:
            conn.putrequest("GET", t.request_target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", t.host_header)
            conn.putheader("User-Agent", policy.user_agent)
            conn.putheader("Accept", "image/*, */*;q=0.5")
            conn.putheader("Accept-Encoding", "identity")
            conn.putheader("Connection", "close")
            conn.endheaders()
            sock = conn.sock  # the response takes it over ("Connection: close"): keep it to bound each wait
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            resp = conn.getresponse()
        except TimeoutError:
            raise FetchError("timeout", f"no response within {policy.timeout}s from {t.url!r}") from None
        except ssl.SSLCertVerificationError as e:
            raise FetchError("connection_error", f"TLS certificate: {e} for {t.url!r}", transient=False) from None
        except (OSError, http.client.HTTPException) as e:
            raise FetchError("connection_error", f"{type(e).__name__}: {e} for {t.url!r}") from None

        status = resp.status
        if status in REDIRECT_CODES:
            location = resp.getheader("Location")
            if not location:
                raise FetchError(f"http_{status}", f"HTTP {status} redirect without Location from {t.url!r}")
            return None, location.strip()
        if status != 200:
            raise FetchError(f"http_{status}", f"HTTP {status} {resp.reason} from {t.url!r}")
        if policy.honor_noai:
            tag = _noai(resp.headers, policy.user_agent)
            if tag:
                raise FetchError("robots_noai", f"X-Robots-Tag {tag!r} from {t.url!r}")
        return _read_body(resp, sock, deadline, t, policy), None
    finally:
        # With "Connection: close" http.client hands the socket to the response, so closing the
        # connection alone would leave it open (the server would keep sending).
        if resp is not None:
            resp.close()
        conn.close()


def _fetch_once(url: str, policy: FetchPolicy) -> bytes:
    current = url
    for _hop in range(max(policy.max_redirects, 0) + 1):
        t = _parse(current)
        addresses = _checked_addresses(t, policy)
        body, location = _request(t, addresses, policy)
        if body is not None:
            return body
        current = urljoin(current, location)
    raise FetchError("too_many_redirects", f"more than {policy.max_redirects} redirects from {url!r} (last {current!r})")


def fetch(url: str, policy: FetchPolicy = FetchPolicy(), sleep=time.sleep) -> bytes:
    """Return the body of ``url`` or raise :class:`FetchError` with a named reason.

    Transient failures are retried ``policy.retries`` times, sleeping ``policy.backoff * 2**k``
    (through ``sleep``) before retry ``k``; everything else fails at once.
    """
    attempt = 0
    while True:
        try:
            return _fetch_once(url, policy)
        except FetchError as e:
            if not e.transient or attempt >= policy.retries:
                if attempt:
                    raise FetchError(e.reason, f"{e.detail} (after {attempt + 1} attempts)", transient=e.transient) from e
                raise
            sleep(policy.backoff * 2**attempt)
            attempt += 1
