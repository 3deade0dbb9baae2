"""Local and private hosts are recognised in every spelling (the fault suite found that
``http://127.1`` and ``http://localhost.`` slipped past a string comparison)."""

from __future__ import annotations

import pytest

from payments.credentials import check_callback_url
from payments.errors import InvalidInput
from settings.hosts import host_of, is_internal_host, is_loopback_host

LOOPBACK = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.1",
    "localhost",
    "LOCALHOST.",
    "a.localhost",
    "::1",
    "::ffff:127.0.0.1",
    "0.0.0.0",
    "127.255.0.9",
]
PRIVATE = [
    "10.0.0.5",
    "192.168.1.1",
    "172.16.3.4",
    "169.254.169.254",
    "100.64.0.1",
    "fd00::1",
    "fe80::1",
]
PUBLIC = ["motcua.example.vn", "8.8.8.8", "2001:4860:4860::8888", "dichvucong.gov.vn"]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_in_every_spelling(host: str) -> None:
    assert is_loopback_host(host) and is_internal_host(host)


@pytest.mark.parametrize("host", PRIVATE)
def test_private_is_internal_not_loopback(host: str) -> None:
    assert is_internal_host(host) and not is_loopback_host(host)


@pytest.mark.parametrize("host", PUBLIC)
def test_public_hosts_pass(host: str) -> None:
    assert not is_internal_host(host)


def test_host_of_brackets_and_trailing_dot() -> None:
    assert host_of("https://[::1]:8443/x") == "::1"
    assert host_of("http://LocalHost.:80/") == "localhost"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.1/cb",
        "https://127.1/cb",
        "https://localhost./cb",
        "https://[::ffff:127.0.0.1]/cb",
        "https://10.0.0.5/cb",
        "https://169.254.169.254/latest/meta-data",
    ],
)
def test_production_callbacks_refuse_local_and_private(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_callback_url(url, allow_loopback=False)


def test_callbacks_allowed_where_they_should_be() -> None:
    assert check_callback_url("https://motcua.example.vn/cb", allow_loopback=False)
    assert check_callback_url("http://127.0.0.1:9000/cb", allow_loopback=True)
    with pytest.raises(InvalidInput):
        check_callback_url("http://motcua.example.vn/cb", allow_loopback=False)


def test_production_refuses_a_local_tax_endpoint_in_any_spelling() -> None:
    from settings.config import Profile, Settings

    for url in ("http://127.1:8099", "http://localhost:8099", "http://[::1]:8099"):
        problems = Settings(profile=Profile.PRODUCTION, tax_authority_url=url).production_problems()
        assert "the tax authority endpoint points at a local sandbox" in problems
