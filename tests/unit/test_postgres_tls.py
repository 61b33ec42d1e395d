"""PostgreSQL over TLS: libpq's sslmode/sslrootcert in a database URL become asyncpg's `ssl` (asyncpg takes neither)."""

from __future__ import annotations

import ssl

import pytest

from shared.db import postgres_tls

URL = "postgresql+asyncpg://svc:p%40ss@db.example:5432/intake"
PATHS = ssl.get_default_verify_paths()
BUNDLE = PATHS.cafile or PATHS.openssl_cafile  # a PEM file of CAs, standing for the operator's sslrootcert


def test_a_url_without_tls_options_is_left_as_it_is():
    assert postgres_tls(URL) == (URL, {})
    assert postgres_tls(URL + "?application_name=intake") == (URL + "?application_name=intake", {})


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require"])
def test_the_modes_that_check_no_certificate_pass_through_by_name(mode):
    assert postgres_tls(f"{URL}?sslmode={mode}&application_name=intake") == (URL + "?application_name=intake", {"ssl": mode})


@pytest.mark.parametrize(("mode", "host_checked"), [("verify-ca", False), ("verify-full", True)])
def test_verify_modes_check_the_servers_certificate_against_the_root_given(mode, host_checked):
    url, args = postgres_tls(f"{URL}?sslmode={mode}&sslrootcert={BUNDLE}")
    assert url == URL and "sslrootcert" not in url
    context = args["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is host_checked
    assert context.get_ca_certs(), "the root file's CAs are the ones trusted"


def test_require_with_a_root_certificate_verifies_it_as_libpq_does():
    _, args = postgres_tls(f"{URL}?sslmode=require&sslrootcert={BUNDLE}")
    assert args["ssl"].verify_mode == ssl.CERT_REQUIRED and not args["ssl"].check_hostname


def test_an_unknown_mode_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="verify-full"):
        postgres_tls(f"{URL}?sslmode=always")
