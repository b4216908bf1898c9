"""Only public https addresses: refused in the form, and again at send time whatever DNS
says then."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from webhooks.addresses import RefusedAddress, resolve, url_problem
from webhooks.forms import WebhookCreateForm
from webhooks.transport import post


def _answer(address: str):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def getaddrinfo(host, port, *args, **kwargs):
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return getaddrinfo


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://192.168.1.10/hook",
        "https://[fe80::1]/hook",
        # Older IPv4 forms the resolver reads as addresses: 127.0.0.1 and 10.0.0.1.
        "https://2130706433/hook",
        "https://0x7f.1/hook",
        "https://0177.0.0.1/hook",
        "https://127.1/hook",
        "https://0xa000001/hook",
        # A fully qualified spelling, with the root's dot: the same addresses.
        "https://127.0.0.1./hook",
        "https://2130706433./hook",
        "https://10.1.2.3./hook",
    ],
)
def test_private_and_reserved_address_literals_are_refused_in_the_form_and_at_send_time(url):
    assert url_problem(url)[0] == "private"
    with pytest.raises(RefusedAddress):
        resolve(urlsplit(url))
    outcome = post(url, body=b"{}", headers={})
    assert not outcome.ok and outcome.status_code is None


@pytest.mark.parametrize("address", ["10.0.0.5", "127.0.0.1", "169.254.169.254", "::1", "fc00::1"])
def test_a_host_name_that_resolves_to_a_private_address_is_refused_at_send_time(
    monkeypatch, address
):
    monkeypatch.setattr(socket, "getaddrinfo", _answer(address))
    assert url_problem("https://hooks.example.com/x") is None
    with pytest.raises(RefusedAddress, match="private or reserved"):
        resolve(urlsplit("https://hooks.example.com/x"))
    assert "private or reserved" in post("https://hooks.example.com/x", body=b"", headers={}).error


def test_a_host_name_with_one_private_address_among_public_ones_is_refused(monkeypatch):
    def getaddrinfo(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(RefusedAddress):
        resolve(urlsplit("https://hooks.example.com/x"))


def test_a_public_address_is_the_one_connected_to(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _answer("93.184.215.14"))
    host, port, address = resolve(urlsplit("https://hooks.example.com:8443/x"))
    assert (host, port, str(address)) == ("hooks.example.com", 8443, "93.184.215.14")


def test_loopback_is_allowed_only_by_the_test_setting_and_only_127_0_0_1(settings):
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    assert url_problem("https://127.0.0.1/hook") is None
    assert url_problem("https://127.0.0.2/hook")[0] == "private"
    assert url_problem("https://[::1]/hook")[0] == "private"


def test_plain_http_is_refused_unless_debug_or_the_test_setting(settings):
    settings.DEBUG = False
    assert url_problem("http://hooks.example.com/x")[0] == "not_https"
    assert url_problem("ftp://hooks.example.com/x")[0] == "not_https"
    settings.WEBHOOKS_ALLOW_HTTP = True
    assert url_problem("http://hooks.example.com/x") is None


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://hooks.example.com/a\x00b", "control"),
        ("https://hooks.example.com/a\nX-Injected: 1", "control"),
        ("https://hooks.example.com/a\r\nb", "control"),
        ("https://hooks.example.com/" + "a" * 5000, "too_long"),
        ("https://hooks².example.com/", "not_ascii"),
        ("https://hooks.example.com/\ud800", "not_ascii"),
        ("https://user:pass@hooks.example.com/", "userinfo"),
        ("https://hooks.example.com:99999/", "invalid"),
        ("https:///nohost", "invalid"),
        # A zone names an interface of the host that sends: ours have none of the
        # customer's, and each delivery failed as "DNS lookup failed".
        ("https://[2001:4860::1%25eth0]/hook", "invalid"),
        ("https://[2001:4860::1%eth0]/hook", "invalid"),
        ("hooks.example.com", "not_https"),
        # A host with an empty label is no host name: it was refused only when sent.
        ("https://127.0.0.1../hook", "invalid"),
        ("https://hooks..example.com/", "invalid"),
        ("https://.hooks.example.com/", "invalid"),
        # Names that are this machine wherever they are looked up (RFC 6761).
        ("https://localhost/hook", "private"),
        ("https://localhost./hook", "private"),
        ("https://LocalHost/hook", "private"),
        ("https://hooks.localhost/hook", "private"),
        # A name without a dot is completed with the sending host's search domains (our
        # network's names): it passed the form and was refused at send time only if
        # what it found there was private.
        ("https://intranet/hook", "single_label"),
        ("https://intranet./hook", "single_label"),
        ("https://metadata:443/computeMetadata", "single_label"),
    ],
)
def test_hostile_addresses_are_form_errors_with_a_code(url, code):
    form = WebhookCreateForm({"url": url, "format": "generic", "min_severity": "low"})
    assert not form.is_valid()
    assert form.errors.as_data()["url"][0].code == code


SECRET_PART = "AbCdEfGhIjKlMnOpQrStUvWxYz012345abcdef"


@pytest.mark.parametrize(
    "url",
    [
        f"https://hooks.example.com/in/reminix_sk_{SECRET_PART}",
        f"https://hooks.example.com/x?key=reminix_ct_{SECRET_PART}",
        f"https://hooks.example.com/x#reminix_pat_{SECRET_PART}",
        f"https://reminix_sk_{SECRET_PART}@hooks.example.com/x",
        f"https://me:reminix_pat_{SECRET_PART}@hooks.example.com/x",
        f"https://hooks.example.com/x?key=reminix%5Fsk%5F{SECRET_PART}",
        f"https://hooks.example.com/x?key=reminix%255Fsk%255F{SECRET_PART}",
        f"https://hooks.example.com/%72eminix_ct_{SECRET_PART}",
        f"https://hooks.example.com/x?key=REMINIX_SK_{SECRET_PART}",
    ],
)
def test_an_address_that_carries_a_token_is_refused_beside_its_field(url):
    form = WebhookCreateForm({"url": url, "format": "generic", "min_severity": "low"})
    assert not form.is_valid()
    error = form.errors.as_data()["url"][0]
    assert error.code == "token"
    assert "token" in error.messages[0] and SECRET_PART not in error.messages[0]


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/reminix_sk_AbCd",  # a hint's 4 characters: no secret
        "https://hooks.example.com/hooks/reminix?source=reminix",
        "https://hooks.example.com/account/verify/abcdefghijklmnop",
    ],
)
def test_an_address_that_only_names_reminix_is_taken(url):
    form = WebhookCreateForm({"url": url, "format": "generic", "min_severity": "low"})
    assert form.is_valid(), form.errors


def test_an_address_that_carries_a_signing_secret_is_refused_naming_it_as_such():
    """A whsec_ secret is ours too, but not a Reminix token: the message says which."""
    url = f"https://hooks.example.com/x?secret=whsec_{SECRET_PART}"
    form = WebhookCreateForm({"url": url, "format": "generic", "min_severity": "low"})
    assert not form.is_valid()
    error = form.errors.as_data()["url"][0]
    assert error.code == "token"
    assert "signing secret" in error.messages[0] and "Reminix token" not in error.messages[0]
    assert SECRET_PART not in error.messages[0]


@pytest.mark.parametrize("url", ["https://localhost/hook", "https://hooks.localhost./hook"])
def test_a_localhost_name_is_refused_at_send_time_without_a_lookup(monkeypatch, url):
    def getaddrinfo(*args, **kwargs):
        raise AssertionError("looked up")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(RefusedAddress, match="private or reserved"):
        resolve(urlsplit(url))


def test_a_name_without_a_dot_is_refused_at_send_time_without_a_lookup(monkeypatch):
    """An endpoint saved before the form refused such names is not sent to either: the
    lookup would complete the name in our own network's domains."""

    def getaddrinfo(*args, **kwargs):
        raise AssertionError("looked up")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(RefusedAddress, match="full domain name"):
        resolve(urlsplit("https://intranet/hook"))


@pytest.mark.parametrize("url", ["https://localhost.example.com/x", "https://mylocalhost.com/x"])
def test_a_name_that_only_contains_localhost_is_taken(url):
    assert url_problem(url) is None
