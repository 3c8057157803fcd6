"""The pii and secrets checks: what they find, what they leave alone, and
the checksums that tell a real number from one that only looks like it."""

from __future__ import annotations

import base64
import json

import pytest
from portway_guardrails_pii.pii import PIICheck, PIIConfig, iban_valid, luhn
from portway_guardrails_pii.secrets import SecretsCheck, SecretsConfig


def pii(**config):
    return PIICheck("pii", PIIConfig(type="pii", **config))


def secrets(**config):
    return SecretsCheck("secrets", SecretsConfig(type="secrets", **config))


def found(check, text):
    return [(m.category, text[m.start:m.end]) for m in check.scan(text)]


@pytest.mark.parametrize(("text", "expected"), [
    ("write to jane.doe+news@example.co.uk today", [("email", "jane.doe+news@example.co.uk")]),
    ("Mail: a@b.io.", [("email", "a@b.io")]),
    ("card 4111 1111 1111 1111 expires", [("card", "4111 1111 1111 1111")]),
    ("card 4111-1111-1111-1111", [("card", "4111-1111-1111-1111")]),
    ("amex 378282246310005", [("card", "378282246310005")]),
    ("IBAN GB82 WEST 1234 5698 7654 32 please", [("iban", "GB82 WEST 1234 5698 7654 32")]),
    ("DE89370400440532013000", [("iban", "DE89370400440532013000")]),
    ("server at 192.168.1.20 is down", [("ip", "192.168.1.20")]),
    ("v6 2001:db8::8a2e:370:7334 here", [("ip", "2001:db8::8a2e:370:7334")]),
    ("loopback ::1", [("ip", "::1")]),
    ("SSN 123-45-6789", [("ssn", "123-45-6789")]),
    ("NINO AB 12 34 56 C", [("nino", "AB 12 34 56 C")]),
    ("DNI 12345678Z", [("dni", "12345678Z")]),
    ("call +44 20 7946 0958 now", [("phone", "+44 20 7946 0958")]),
    ("call (555) 123-4567", [("phone", "(555) 123-4567")]),
    ("call 555-123-4567", [("phone", "555-123-4567")]),
    ("two: x@y.com and 10.0.0.1", [("email", "x@y.com"), ("ip", "10.0.0.1")]),
])
def test_pii_finds(text, expected):
    assert sorted(found(pii(), text)) == sorted(expected)


@pytest.mark.parametrize("text", [
    "no personal data here at all",
    "card 4111 1111 1111 1112 fails Luhn",           # one digit off
    "order 1234567890123 shipped",                     # 13 digits, not Luhn-valid
    "IBAN GB82 WEST 1234 5698 7654 33",               # checksum off by one
    "IBAN GB82 WEST 1234 5698 7654",                  # too short for GB
    "version 1.2.3.4.5 and 999.1.1.1",                # not an IPv4 address
    "time 12:30:45",                                   # not IPv6
    "SSN 000-12-3456 and 666-12-3456 and 900-12-3456", # never issued
    "NINO GB 12 34 56 C",                              # a prefix never used
    "DNI 12345678A",                                   # wrong check letter
    "email me @ home",
    "on 2024-01-15 at 10am",
    "user@localhost",                                  # no domain
])
def test_pii_leaves_alone(text):
    assert found(pii(), text) == []


def test_pii_entities_limit_what_is_found():
    text = "mail x@y.com from 10.0.0.1"
    assert found(pii(entities=["ip"]), text) == [("ip", "10.0.0.1")]


def test_checksums():
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("XX82WEST12345698765432")  # no such country


def _jwt(header: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part(header)}.{part({'sub': '1234567890', 'name': 'John'})}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"


KEY_BLOCK = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1c2\nabc\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(("text", "expected"), [
    ("key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789 ok", "openai_key"),
    ("key sk-abcdefghijklmnopqrstuvwxyz012345", "openai_key"),
    ("key sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789-AbC_xyz", "anthropic_key"),
    ("aws AKIAIOSFODNN7EXAMPLE id", "aws_key"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_key"),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789 end", "github_token"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_token"),
    ("AIzaSyD-abcdefghijklmnopqrstuvwxyz01234 in config", "google_key"),
    ("slack xoxb-1234567890-abcdefghij", "slack_token"),
    ("stripe sk_live_abcdefghijklmnopqrstuvwx", "stripe_key"),
    (f"here:\n{KEY_BLOCK}\nthanks", "private_key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk", "private_key"),   # not closed yet: to the end
    (f"Bearer {_jwt({'alg': 'HS256', 'typ': 'JWT'})}", "jwt"),
])
def test_secrets_find(text, expected):
    assert [c for c, _ in found(secrets(), text)] == [expected]


def test_a_private_key_block_is_matched_whole():
    text = f"a\n{KEY_BLOCK}\nb"
    assert found(secrets(), text) == [("private_key", KEY_BLOCK)]


@pytest.mark.parametrize("text", [
    "sk-short",                                        # too short for a key
    "the task-abcdefghijklmnopqrstuvwxyz is done",     # not a prefix
    "AKIA1234",                                        # too short
    "ghp_short",
    "eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJlLWhlcmUtbG9uZw",  # JWT-shaped, header not JSON
    "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----",
    "nothing secret here",
])
def test_secrets_leave_alone(text):
    assert found(secrets(), text) == []


def test_secret_kinds_limit_what_is_found():
    text = "AKIAIOSFODNN7EXAMPLE and sk-abcdefghijklmnopqrstuvwxyz012345"
    assert found(secrets(kinds=["aws_key"]), text) == [("aws_key", "AKIAIOSFODNN7EXAMPLE")]
