"""Identifier normalisation and hashing for the ad platforms, against campaign-apis.md §5.3."""

from __future__ import annotations

import hashlib

import pytest

from trebol.activation.hashing import (
    normalise_email,
    normalise_phone_google,
    normalise_phone_meta,
    sha256_hex,
)

# campaign-apis.md §5.3: SHA-256 hex of the UTF-8 normalised input
VECTORS = {
    "test@example.com": "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b",
    "jane.doe@gmail.com": "831f6494ad6be4fcb3a724c3d5fef22d3ceffa3c62ef3a7984e45a0ea177f982",
    "janedoe@gmail.com": "d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69",
    "+18005550100": "fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30",
    "18005550100": "92cfdc5fbcd4a20fbe5d3857af6c1aba31762105bba7f21a17155e920653046c",
}


@pytest.mark.parametrize(("normalised", "digest"), VECTORS.items())
def test_sha256_hex_matches_the_reference_vectors(normalised: str, digest: str) -> None:
    assert sha256_hex(normalised) == digest


@pytest.mark.parametrize("raw", ["Test@Example.com", "  test@example.COM\t", "\nTEST@EXAMPLE.COM "])
def test_emails_are_trimmed_and_lower_cased_before_hashing(raw: str) -> None:
    assert normalise_email(raw) == "test@example.com"
    assert sha256_hex(normalise_email(raw)) == VECTORS["test@example.com"]


@pytest.mark.parametrize("raw", ["+1 (800) 555-0100", "+18005550100", "0018005550100", "1-800-555-0100"])
def test_meta_phones_are_digits_only_without_plus_or_leading_zeros(raw: str) -> None:
    assert normalise_phone_meta(raw) == "18005550100"
    assert sha256_hex(normalise_phone_meta(raw)) == VECTORS["18005550100"]


def test_meta_phone_of_a_spanish_e164_number() -> None:
    assert normalise_phone_meta("+34600123456") == "34600123456"
    assert normalise_phone_meta("+34 600 12 34 56") == "34600123456"


@pytest.mark.parametrize("raw", ["+1 (800) 555-0100", "+18005550100", "0018005550100"])
def test_google_phones_are_e164_with_plus(raw: str) -> None:
    assert normalise_phone_google(raw) == "+18005550100"
    assert sha256_hex(normalise_phone_google(raw)) == VECTORS["+18005550100"]


def test_the_two_platforms_hash_the_same_phone_differently() -> None:
    phone = "+34600123456"
    assert sha256_hex(normalise_phone_meta(phone)) != sha256_hex(normalise_phone_google(phone))


@pytest.mark.parametrize("raw", ["", "   ", "n/a", "+", "000"])
def test_a_phone_without_digits_normalises_to_empty(raw: str) -> None:
    assert normalise_phone_meta(raw) == ""
    assert normalise_phone_google(raw) == ""


def test_non_ascii_email_is_hashed_as_utf8() -> None:
    assert normalise_email(" Ñandú@Example.ES ") == "ñandú@example.es"
    utf8 = b"\xc3\xb1and\xc3\xba@example.es"  # not Latin-1 (b"\xf1and\xfa...")
    assert sha256_hex("ñandú@example.es") == hashlib.sha256(utf8).hexdigest()
