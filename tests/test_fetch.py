"""Tests for animegen.data.fetch against a real HTTP server on 127.0.0.1 (no outside network needed)."""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from animegen.data import fetch as fetch_mod
from animegen.data.fetch import FetchError, FetchPolicy, UrlEntry, fetch, read_url_list


def _make_png() -> bytes:
    img = Image.new("RGB", (16, 12), (200, 40, 90))
    img.putpixel((3, 4), (0, 255, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


PNG = _make_png()
SLOW = 1.5  # seconds the slow routes stall (client timeouts in the tests are 0.3 s)
SHORT = 0.3
STREAM_TOTAL = 64 * 1024 * 1024  # what /stream would send if nobody stopped reading
PUBLIC_IP = "93.184.216.34"  # a globally routable address; tests route it to the loopback server


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.hits = collections.Counter()
        self.headers: dict[str, dict] = {}
        self.stop = threading.Event()
        self.stream_done = threading.Event()
        self.stream_sent = 0
        self.port = 0
        self.base = ""


def _make_handler(state: _State):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def _send(self, code: int, body: bytes = b"", headers=(), length: int | None = None):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)

        def _png(self, headers=()):
            self._send(200, PNG, [("Content-Type", "image/png"), *headers])

        def _redirect(self, location: str | None, code: int = 302):
            self._send(code, b"", [("Location", location)] if location is not None else [])

        def _chunked(self, pieces: list[bytes], finish: bool = True):
            self.protocol_version = "HTTP/1.1"
            self.close_connection = True
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            for p in pieces:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            if finish:
                self.wfile.write(b"0\r\n\r\n")

        def do_GET(self):
            parts = urlsplit(self.path)
            path = parts.path
            with state.lock:
                state.hits[path] += 1
                n = state.hits[path]
                state.headers[path] = dict(self.headers)
            try:
                self._route(path, unquote(parts.query), n)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up on purpose (timeouts, caps)

        def _route(self, path: str, query: str, n: int):
            if path in ("/good.png", "/echo"):
                self._png()
            elif path == "/404":
                self.send_error(404)
            elif path == "/500":
                self.send_error(500)
            elif path == "/429":
                self.send_error(429)
            elif path == "/flaky.png":
                if n == 1:
                    self.send_error(500)
                else:
                    self._png()
            elif path == "/slow":
                state.stop.wait(SLOW)
                self._png()
            elif path == "/slow-body":
                self.send_response(200)
                self.send_header("Content-Length", str(len(PNG)))
                self.end_headers()
                self.wfile.write(PNG[:40])
                self.wfile.flush()
                state.stop.wait(SLOW)
                self.wfile.write(PNG[40:])
            elif path == "/drip":  # a byte every 0.1 s: no single read waits long, the whole takes 4 s
                self.send_response(200)
                self.send_header("Content-Length", "40")
                self.end_headers()
                for _ in range(40):
                    if state.stop.wait(0.1):
                        break
                    try:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    except OSError:  # the client gave up
                        break
            elif path == "/truncated":
                self.close_connection = True
                self._send(200, PNG[:100], length=1000)
            elif path == "/lying-large":  # claims more than the cap but sends little
                self.close_connection = True
                self._send(200, PNG[:100], length=5000)
            elif path == "/stream":  # no Content-Length: close-delimited body, "endless"
                self.close_connection = True
                self.send_response(200)
                self.end_headers()
                block = b"\0" * 65536
                try:
                    while state.stream_sent < STREAM_TOTAL and not state.stop.is_set():
                        self.wfile.write(block)
                        state.stream_sent += len(block)
                finally:
                    state.stream_done.set()
            elif path == "/chunked.png":
                self._chunked([PNG[:10], PNG[10:50], PNG[50:]])
            elif path == "/chunked-truncated":
                self.wfile.flush()
                self.protocol_version = "HTTP/1.1"
                self.close_connection = True
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"1000\r\n" + PNG[:100])
            elif path.startswith("/r/"):  # /r/2 -> /r/d/1 -> /r/d/d/0 -> /good.png, relative Locations
                k = int(path.rsplit("/", 1)[1])
                code = (301, 302, 303, 307, 308)[k % 5]
                self._redirect(f"d/{k - 1}" if k > 0 else "../" * (path.count("/") - 1) + "good.png", code)
            elif path == "/loop":
                self._redirect("/loop")
            elif path == "/to-file":
                self._redirect("file:///etc/passwd")
            elif path == "/to-ftp":
                self._redirect(f"ftp://127.0.0.1:{state.port}/good.png")
            elif path == "/to-metadata":
                self._redirect("http://169.254.169.254/latest/meta-data/")
            elif path == "/no-location":
                self._redirect(None)
            elif path == "/robots":  # X-Robots-Tag: <query>; several values separated by '|'
                self._png([("X-Robots-Tag", v) for v in query.split("|")])
            else:
                self.send_error(404)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # hung-up clients are expected here
        pass


@pytest.fixture
def server():
    state = _State()
    httpd = _Server(("127.0.0.1", 0), _make_handler(state))
    state.port = httpd.server_address[1]
    state.base = f"http://127.0.0.1:{state.port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


class FakeSleep:
    def __init__(self):
        self.calls: list[float] = []

    def __call__(self, seconds: float):
        self.calls.append(seconds)


def local(**kw) -> FetchPolicy:
    """Policy for the loopback server: private addresses allowed, short timeout."""
    kw.setdefault("allow_private", True)
    kw.setdefault("timeout", 2.0)
    return FetchPolicy(**kw)


def fail(url: str, policy: FetchPolicy, sleep=None) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, policy, sleep=sleep if sleep is not None else FakeSleep())
    return info.value


@pytest.fixture
def route_public(monkeypatch, server):
    """Make ``*.example`` resolve to PUBLIC_IP and carry connections to PUBLIC_IP:80 to the server.

    Returns the log of resolver calls and of addresses actually connected to.
    """
    log = {"resolved": [], "connected": []}
    real = socket.create_connection
    real_resolve = fetch_mod._resolve

    def resolve(host, port):
        log["resolved"].append((host, port))
        return [PUBLIC_IP] if host.endswith(".example") else real_resolve(host, port)

    def connect(address, timeout=None, *args, **kw):
        log["connected"].append(address)
        if address == (PUBLIC_IP, 80):
            address = ("127.0.0.1", server.port)
        elif not address[0].startswith("127."):
            raise AssertionError(f"test tried to connect to {address}")
        return real(address, timeout, *args, **kw)

    monkeypatch.setattr(fetch_mod, "_resolve", resolve)
    monkeypatch.setattr(socket, "create_connection", connect)
    return log


# --------------------------------------------------------------------------- interface


def test_policy_defaults_and_error_shape():
    p = FetchPolicy()
    assert (p.allow_private, p.max_bytes, p.timeout, p.retries, p.backoff, p.max_redirects, p.honor_noai) == (
        False, 50_000_000, 10.0, 2, 0.5, 5, True,
    )  # fmt: skip
    assert "noai" in p.user_agent
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.retries = 3  # type: ignore[misc]
    e = FetchError("http_404", "gone")
    assert (e.reason, e.detail, str(e)) == ("http_404", "gone", "http_404: gone")
    assert isinstance(e, Exception)
    bare = FetchError("too_large")
    assert (bare.detail, str(bare)) == ("", "too_large")  # no detail: the reason alone


def test_an_error_crosses_a_process_boundary_whole():
    """Fetch workers hand errors back through pickle, which rebuilds an exception from its args."""
    back = pickle.loads(pickle.dumps(FetchError("http_503", "busy")))
    assert (back.reason, back.detail, back.transient, str(back)) == ("http_503", "busy", True, "http_503: busy")
    assert repr(back) == "FetchError('http_503', 'busy')"  # what a traceback or a log line shows


def test_an_international_host_name_is_resolved_as_punycode_and_no_address_is_a_named_dns_failure(monkeypatch):
    asked = []

    def resolve(host, port):
        asked.append((host, port))
        return []

    monkeypatch.setattr(fetch_mod, "_resolve", resolve)
    e = fail("http://bücher.example/a.png", FetchPolicy(timeout=SHORT))
    assert asked == [("xn--bcher-kva.example", 80)]
    assert (e.reason, e.detail) == ("dns_failed", "xn--bcher-kva.example: no addresses")  # resolving to nothing is named


def test_an_https_server_that_never_answers_the_handshake_times_out():
    """The policy's timeout reaches the TLS connection too (the loopback server above speaks HTTP only):
    a listener that completes TCP but never sends a ServerHello must not hang the client."""
    outcome: list = []

    def client(port: int) -> None:
        try:
            fetch(f"https://127.0.0.1:{port}/a.png", local(timeout=SHORT, retries=0), sleep=FakeSleep())
        except FetchError as e:
            outcome.append(e)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel accepts the TCP connection; nobody ever reads or writes it
        worker = threading.Thread(target=client, args=(listener.getsockname()[1],), daemon=True)
        worker.start()
        worker.join(SLOW)
        hung = worker.is_alive()
    worker.join(5)  # closing the listener resets a client that would have waited forever
    assert not hung, "the TLS handshake ignored the policy's timeout"
    assert [e.reason for e in outcome] == ["timeout"], outcome


# --------------------------------------------------------------------------- success paths


def test_good_png(server):
    data = fetch(server.base + "/good.png", local())
    assert data == PNG
    assert Image.open(io.BytesIO(data)).size == (16, 12)
    seen = server.headers["/good.png"]
    assert seen["User-Agent"] == FetchPolicy().user_agent
    assert seen["Host"] == f"127.0.0.1:{server.port}"
    assert seen.get("Accept-Encoding") == "identity"


def test_scheme_is_case_insensitive(server):
    assert fetch(server.base.replace("http://", "HTTP://") + "/good.png", local()) == PNG


def test_chunked_body(server):
    assert fetch(server.base + "/chunked.png", local()) == PNG


def test_body_exactly_at_cap_is_accepted(server):
    assert fetch(server.base + "/good.png", local(max_bytes=len(PNG))) == PNG
    assert fail(server.base + "/good.png", local(max_bytes=len(PNG) - 1)).reason == "too_large"


# --------------------------------------------------------------------------- HTTP errors and retries


def test_404_is_not_retried(server):
    sleep = FakeSleep()
    e = fail(server.base + "/404", local(retries=2), sleep)
    assert e.reason == "http_404"
    assert server.hits["/404"] == 1
    assert sleep.calls == []


def test_500_is_retried_with_exponential_backoff(server):
    sleep = FakeSleep()
    e = fail(server.base + "/500", local(retries=2, backoff=0.5), sleep)
    assert e.reason == "http_500"
    assert server.hits["/500"] == 3
    assert sleep.calls == [0.5, 1.0]
    assert "3 attempts" in e.detail


def test_backoff_follows_policy(server):
    sleep = FakeSleep()
    assert fail(server.base + "/500", local(retries=3, backoff=0.1), sleep).reason == "http_500"
    assert sleep.calls == pytest.approx([0.1, 0.2, 0.4])
    assert server.hits["/500"] == 4


def test_no_retries_when_retries_is_zero(server):
    sleep = FakeSleep()
    assert fail(server.base + "/500", local(retries=0), sleep).reason == "http_500"
    assert server.hits["/500"] == 1
    assert sleep.calls == []


def test_429_is_retried(server):
    sleep = FakeSleep()
    assert fail(server.base + "/429", local(retries=1), sleep).reason == "http_429"
    assert server.hits["/429"] == 2
    assert sleep.calls == [0.5]


def test_flaky_500_then_200_succeeds_on_retry(server):
    sleep = FakeSleep()
    assert fetch(server.base + "/flaky.png", local(retries=2), sleep=sleep) == PNG
    assert server.hits["/flaky.png"] == 2
    assert sleep.calls == [0.5]


def test_slow_response_times_out(server):
    t0 = time.monotonic()
    e = fail(server.base + "/slow", local(timeout=SHORT, retries=0))
    assert e.reason == "timeout"
    assert time.monotonic() - t0 < SLOW - 0.3  # gave up at the timeout, did not wait for the server


def test_timeout_is_retried(server):
    sleep = FakeSleep()
    assert fail(server.base + "/slow", local(timeout=SHORT, retries=1), sleep).reason == "timeout"
    assert server.hits["/slow"] == 2
    assert sleep.calls == [0.5]


def test_stalled_body_times_out(server):
    assert fail(server.base + "/slow-body", local(timeout=SHORT, retries=0)).reason == "timeout"


def test_a_dripping_body_stops_at_the_attempts_deadline(server):
    """timeout bounds the whole attempt, not each read: one byte per 0.1 s under a 0.3 s timeout."""
    e = fail(server.base + "/drip", local(timeout=SHORT, retries=0))
    assert e.reason == "timeout" and "not done within" in e.detail, e.detail
    received = int(e.detail.split(", ")[1].split(" bytes")[0])
    assert received < 40, e.detail  # it gave up mid-body (about 3 of the 40 bytes), not after the server's 4 s


def test_connection_refused_is_connection_error_and_retried():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleep = FakeSleep()
    e = fail(f"http://127.0.0.1:{port}/x.png", local(retries=1), sleep)
    assert e.reason == "connection_error"
    assert sleep.calls == [0.5]


# --------------------------------------------------------------------------- size caps and truncation


def test_truncated_body(server):
    e = fail(server.base + "/truncated", local(retries=0))
    assert e.reason == "truncated"
    assert "100" in e.detail and "1000" in e.detail


def test_truncated_chunked_body(server):
    assert fail(server.base + "/chunked-truncated", local(retries=0)).reason == "truncated"


def test_content_length_over_cap_is_refused_upfront(server):
    # The server sends only 100 bytes: a cap enforced only while reading would say "truncated".
    e = fail(server.base + "/lying-large", local(max_bytes=1000, retries=0))
    assert e.reason == "too_large"
    assert "5000" in e.detail


def test_stream_without_content_length_stops_at_cap(server):
    e = fail(server.base + "/stream", local(max_bytes=100_000, retries=0))
    assert e.reason == "too_large"
    assert server.stream_done.wait(5)
    # The client hung up long before the server could push everything (only socket buffers filled).
    assert server.stream_sent < STREAM_TOTAL // 2


# --------------------------------------------------------------------------- redirects


def test_redirect_chain_is_followed(server):
    assert fetch(server.base + "/r/3", local(max_redirects=4)) == PNG
    # each Location is resolved against the URL of the hop that sent it
    chain = ["/r/3", "/r/d/2", "/r/d/d/1", "/r/d/d/d/0", "/good.png"]
    assert dict(server.hits) == {p: 1 for p in chain}


def test_redirect_chain_longer_than_limit(server):
    sleep = FakeSleep()
    e = fail(server.base + "/r/3", local(max_redirects=3), sleep)
    assert e.reason == "too_many_redirects"
    assert server.hits["/good.png"] == 0
    assert sleep.calls == []


def test_redirect_loop(server):
    sleep = FakeSleep()
    e = fail(server.base + "/loop", local(max_redirects=5, retries=2), sleep)
    assert e.reason == "too_many_redirects"
    assert server.hits["/loop"] == 6  # the first request plus 5 followed redirects, no retries
    assert sleep.calls == []


def test_no_redirects_allowed(server):
    assert fail(server.base + "/r/0", local(max_redirects=0)).reason == "too_many_redirects"


@pytest.mark.parametrize("path, scheme", [("/to-file", "file"), ("/to-ftp", "ftp")])
def test_redirect_to_other_scheme_is_refused(server, path, scheme):
    e = fail(server.base + path, local())
    assert e.reason == "bad_scheme"
    assert scheme in e.detail


def test_redirect_without_location(server):
    assert fail(server.base + "/no-location", local(retries=0)).reason == "http_302"


# --------------------------------------------------------------------------- X-Robots-Tag


@pytest.mark.parametrize(
    "tag, refused",
    [
        ("noai", True),
        ("noindex, noimageai", True),
        ("NoAI", True),
        ("animegen-collect: noai", True),
        ("noindex|noai", True),  # two separate headers
        ("otherbot: noai", False),
        ("noindex, nofollow", False),
    ],
)
def test_x_robots_tag_noai(server, tag, refused):
    url = f"{server.base}/robots?{tag}"
    if refused:
        e = fail(url, local(retries=2))
        assert e.reason == "robots_noai"
        assert server.hits["/robots"] == 1  # a refusal is final
    else:
        assert fetch(url, local()) == PNG


def test_noai_can_be_ignored(server):
    assert fetch(f"{server.base}/robots?noai", local(honor_noai=False)) == PNG


# --------------------------------------------------------------------------- SSRF: schemes, URLs, addresses


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "javascript:alert(1)",
        "gopher://127.0.0.1:6379/_INFO",
        "example.com/a.png",
    ],
)
def test_bad_scheme(url):
    assert fail(url, FetchPolicy()).reason == "bad_scheme"


@pytest.mark.parametrize(
    "url", ["", "   ", "http://", "http:///a.png", "http://[::1/a.png", "http://example.com:99999/", "http://exa mple.com/"]
)
def test_bad_url(url):
    assert fail(url, FetchPolicy()).reason == "bad_url"


@pytest.fixture
def no_connect(monkeypatch):
    attempts = []

    def refuse(address, *args, **kw):
        attempts.append(address)
        raise AssertionError(f"connected to {address}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "10.0.0.1", "169.254.169.254", "0.0.0.0", "localhost"])
def test_blocked_addresses(server, no_connect, host):
    port = server.port if host != "169.254.169.254" else 80
    sleep = FakeSleep()
    e = fail(f"http://{host}:{port}/good.png", FetchPolicy(timeout=SHORT), sleep)
    assert e.reason == "blocked_address"
    assert no_connect == []
    assert server.hits["/good.png"] == 0
    assert sleep.calls == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["::ffff:127.0.0.1"],  # IPv4-mapped IPv6
        ["::ffff:a00:1"],  # ::ffff:10.0.0.1
        ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254
        ["2002:a00:1::1"],  # 6to4 of 10.0.0.1
        [PUBLIC_IP, "10.0.0.1"],  # every resolved address is checked, not just the first
        ["100.64.0.1"],  # shared address space (CGNAT)
        ["192.168.1.1"],
        ["172.16.0.1"],
        ["fc00::1"],
        ["fe80::1%1"],
        ["224.0.0.1"],
        ["255.255.255.255"],
        ["::"],
    ],
)
def test_blocked_resolved_addresses(monkeypatch, no_connect, addresses):
    monkeypatch.setattr(fetch_mod, "_resolve", lambda host, port: list(addresses))
    assert fail("http://images.example/a.png", FetchPolicy(timeout=SHORT)).reason == "blocked_address"
    assert no_connect == []


def test_allow_private_lifts_the_address_check(monkeypatch, server):
    monkeypatch.setattr(fetch_mod, "_resolve", lambda host, port: ["127.0.0.1"])
    url = f"http://internal.example:{server.port}/good.png"
    assert fail(url, FetchPolicy(timeout=2.0)).reason == "blocked_address"
    assert fetch(url, FetchPolicy(allow_private=True, timeout=2.0)) == PNG


def test_dns_failure(monkeypatch):
    def gaierror(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(fetch_mod, "_resolve", gaierror)
    sleep = FakeSleep()
    e = fail("http://no-such-host.invalid/a.png", FetchPolicy(), sleep)
    assert e.reason == "dns_failed"
    assert sleep.calls == []


def test_connects_to_the_checked_address_and_keeps_the_host_header(server, route_public):
    assert fetch("http://images.example/echo", FetchPolicy(timeout=2.0)) == PNG
    assert route_public["resolved"] == [("images.example", 80)]  # resolved once, never again
    assert route_public["connected"] == [(PUBLIC_IP, 80)]  # connected to the IP, not the name
    assert server.headers["/echo"]["Host"] == "images.example"


def test_redirect_target_address_is_checked_again(server, route_public):
    e = fail("http://images.example/to-metadata", FetchPolicy(timeout=2.0))
    assert e.reason == "blocked_address"
    assert "169.254.169.254" in e.detail
    assert server.hits["/to-metadata"] == 1
    assert route_public["connected"] == [(PUBLIC_IP, 80)]


def test_redirects_between_public_hosts_work_without_allow_private(server, route_public):
    assert fetch("http://images.example/r/2", FetchPolicy(timeout=2.0)) == PNG
    assert len(route_public["resolved"]) == 4  # every hop resolved and checked


class _FakeTLS:
    """Stands in for the SSL context: records the SNI name, then fails the handshake."""

    verify_mode = ssl.CERT_REQUIRED
    check_hostname = True

    def __init__(self, exc: Exception):
        self.exc = exc
        self.server_hostnames = []

    def wrap_socket(self, sock, server_hostname=None, **kw):
        self.server_hostnames.append(server_hostname)
        raise self.exc


def test_https_is_pinned_and_verifies_the_original_name(monkeypatch, server):
    tls = _FakeTLS(ssl.SSLError("handshake failed"))
    monkeypatch.setattr(fetch_mod, "_ssl_context", lambda: tls)
    monkeypatch.setattr(fetch_mod, "_resolve", lambda host, port: ["127.0.0.1"])
    connected = []
    real = socket.create_connection

    def connect(address, *args, **kw):
        connected.append(address)
        return real(address, *args, **kw)

    monkeypatch.setattr(socket, "create_connection", connect)
    sleep = FakeSleep()
    e = fail(f"https://secure.example:{server.port}/good.png", local(retries=1), sleep)
    assert e.reason == "connection_error"
    assert connected == [("127.0.0.1", server.port)] * 2
    assert tls.server_hostnames == ["secure.example"] * 2
    assert sleep.calls == [0.5]


def test_https_certificate_error_is_not_retried(monkeypatch, server):
    tls = _FakeTLS(ssl.SSLCertVerificationError("certificate verify failed"))
    monkeypatch.setattr(fetch_mod, "_ssl_context", lambda: tls)
    sleep = FakeSleep()
    e = fail(f"https://127.0.0.1:{server.port}/good.png", local(retries=2), sleep)
    assert e.reason == "connection_error"
    assert sleep.calls == []


def test_real_tls_against_plain_http_server_fails_cleanly(server):
    assert fail(f"https://127.0.0.1:{server.port}/good.png", local(retries=0)).reason == "connection_error"


# --------------------------------------------------------------------------- URL lists


def test_read_csv(tmp_path):
    p = tmp_path / "list.csv"
    p.write_text(
        "URL,Licence,Author,extra\n"
        "https://a.example/1.png,CC-BY-4.0,Alice,x\n"
        "\n"
        ' https://a.example/2.png ,"CC0, public",Bob\n'
        'https://a.example/3.png,,"multi\nline"\n'
        "https://a.example/4.png,MIT,Carol\n",
        encoding="utf-8",
    )
    assert read_url_list(p) == [
        UrlEntry("https://a.example/1.png", "CC-BY-4.0", "Alice", 2),
        UrlEntry("https://a.example/2.png", "CC0, public", "Bob", 4),
        UrlEntry("https://a.example/3.png", "", "multi\nline", 5),
        UrlEntry("https://a.example/4.png", "MIT", "Carol", 7),
    ]


def test_read_csv_prefers_license_and_credit_and_handles_bom(tmp_path):
    p = tmp_path / "list.csv"
    p.write_text("\ufeffcredit,url,license,licence\nDan,http://b.example/x.png,MIT,ignored\n", encoding="utf-8")
    assert read_url_list(str(p)) == [UrlEntry("http://b.example/x.png", "MIT", "Dan", 2)]


def test_read_tsv(tmp_path):
    p = tmp_path / "list.tsv"
    p.write_text("url\tlicense\nhttp://c.example/a,b.png\tCC0\n", encoding="utf-8")
    assert read_url_list(p) == [UrlEntry("http://c.example/a,b.png", "CC0", "", 2)]


def test_read_txt(tmp_path):
    p = tmp_path / "urls.txt"
    p.write_text("# my list\n\nhttp://d.example/1.png\n   https://d.example/2.png  \n  # indented comment\n\t\nftp://x/3\n")
    assert read_url_list(p) == [
        UrlEntry("http://d.example/1.png", line=3),
        UrlEntry("https://d.example/2.png", line=4),
        UrlEntry("ftp://x/3", line=7),  # kept: fetch turns it into a bad_scheme reject
    ]


def test_read_other_extension_is_plain_text(tmp_path):
    p = tmp_path / "urls.list"
    p.write_text("url,license\nhttp://e.example/1.png\n")
    assert [e.url for e in read_url_list(p)] == ["url,license", "http://e.example/1.png"]


def test_csv_without_url_column(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("link,license\nhttp://f.example/1.png,MIT\n")
    with pytest.raises(ValueError) as info:
        read_url_list(p)
    msg = str(info.value)
    assert "bad.csv" in msg and "url" in msg and "link" in msg and "license" in msg


def test_empty_csv(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("")
    with pytest.raises(ValueError, match="empty.csv"):
        read_url_list(p)
