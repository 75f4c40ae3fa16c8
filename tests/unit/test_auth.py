"""The authenticator's memory of verified tokens: a reused token is not re-verified, an
expired one is never served from memory, and the memory is bounded."""

from __future__ import annotations

import time

import pytest
from fastapi import HTTPException

from apps.api.auth import Authenticator, issue_token
from apps.api.settings import ApiSettings

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret-" + "x" * 32


@pytest.fixture
def auth(monkeypatch: pytest.MonkeyPatch) -> tuple[Authenticator, list[str]]:
    authenticator = Authenticator(ApiSettings(jwt_secret=SECRET))
    decoded: list[str] = []
    real = authenticator.decode

    def counting(token: str) -> dict[str, object]:
        decoded.append(token)
        return real(token)

    monkeypatch.setattr(authenticator, "decode", counting)
    return authenticator, decoded


def test_a_reused_token_is_verified_once(auth: tuple[Authenticator, list[str]]) -> None:
    authenticator, decoded = auth
    token = issue_token(SECRET, "alice", ["predict"])
    assert authenticator.remembered(token) is None
    first = authenticator.verify(token)
    assert authenticator.remembered(token) == first
    assert first.subject == "alice"
    assert first.scopes == frozenset({"predict"})
    assert decoded == [token]


def test_bad_tokens_are_never_remembered(auth: tuple[Authenticator, list[str]]) -> None:
    authenticator, _ = auth
    forged = issue_token("another-secret-" + "y" * 32, "mallory", ["predict"])
    for _ in range(2):
        with pytest.raises(HTTPException) as info:
            authenticator.verify(forged)
        assert info.value.status_code == 401
    assert authenticator.remembered(forged) is None


def test_an_expired_token_is_not_served_from_memory(
    auth: tuple[Authenticator, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    authenticator, _ = auth
    token = issue_token(SECRET, "bob", ["predict"], ttl_seconds=60)
    authenticator.verify(token)
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert authenticator.remembered(token) is None


def test_memory_is_bounded(auth: tuple[Authenticator, list[str]]) -> None:
    authenticator, _ = auth
    authenticator.CACHE_SIZE = 3
    tokens = [issue_token(SECRET, f"user{i}", ["predict"]) for i in range(5)]
    for t in tokens:
        authenticator.verify(t)
    assert [authenticator.remembered(t) is not None for t in tokens] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_memory_can_be_turned_off(auth: tuple[Authenticator, list[str]]) -> None:
    authenticator, decoded = auth
    authenticator.CACHE_SIZE = 0
    token = issue_token(SECRET, "carol", ["predict"])
    authenticator.verify(token)
    authenticator.verify(token)
    assert authenticator.remembered(token) is None
    assert decoded == [token, token]


def test_only_the_documented_scope_shapes_grant_anything() -> None:
    from fastapi import HTTPException

    from apps.api.auth import scopes_of

    assert scopes_of("predict forecast") == {"predict", "forecast"}
    assert scopes_of(["predict"]) == {"predict"}
    assert scopes_of("") == frozenset()
    for odd in (123, {"predict": 1}, ["predict", 1], None, 1.5):
        with pytest.raises(HTTPException) as caught:
            scopes_of(odd)
        assert caught.value.status_code == 401
