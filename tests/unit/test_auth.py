"""The authenticator's memory of verified tokens: a reused token is not re-verified, an
expired one is never served from memory, and the memory is bounded. The JWKS keys behind
their circuit breaker: known keys verify while the endpoint fails, unknown ones get 503 at
once while the breaker is open, a rotated key verifies after recovery, a retired one stops."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import pybreaker
import pytest
from fastapi import HTTPException

from apps.api.auth import JWKS_FAILURES, Authenticator, JwksKeys, issue_token
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


# -- JWKS keys behind their circuit breaker (no network: the fetch is replaced) ----------------


def _rsa_jwk(kid: str) -> tuple[Any, dict[str, str]]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return key, {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                 "n": b64(numbers.n), "e": b64(numbers.e)}  # fmt: skip


class FakeEndpoint:
    """Stands in for the HTTP fetch: serves `keys`, or raises while `down`."""

    def __init__(self, *jwks: dict[str, str]) -> None:
        self.keys = list(jwks)
        self.down = False
        self.calls = 0

    def __call__(self, refresh: bool = False) -> list[jwt.PyJWK]:
        self.calls += 1
        if self.down:
            raise jwt.PyJWKClientConnectionError("timed out")
        return [jwt.PyJWK(k) for k in self.keys]


def _keys(endpoint: FakeEndpoint, **kw: float) -> JwksKeys:
    keys = JwksKeys("http://idp.invalid/jwks", **kw)
    keys._client.get_signing_keys = endpoint  # type: ignore[method-assign]
    return keys


def _status(keys: JwksKeys, kid: str) -> int:
    try:
        keys.key(kid)
    except HTTPException as exc:
        return exc.status_code
    return 200


def test_known_keys_verify_while_the_endpoint_fails_and_unknown_ones_get_503_once_open() -> None:
    _, k1 = _rsa_jwk("k1")
    endpoint = FakeEndpoint(k1)
    keys = _keys(endpoint, breaker_seconds=60)
    keys.UNKNOWN_KID_COOLDOWN_SECONDS = 0  # every unknown kid may ask while closed
    assert keys.key("k1").key_id == "k1"
    endpoint.down = True
    # each unknown kid asks the failing endpoint, until the breaker opens
    assert [_status(keys, f"new{i}") for i in range(JWKS_FAILURES)] == [503] * JWKS_FAILURES
    assert keys.breaker.current_state == pybreaker.STATE_OPEN
    calls = endpoint.calls
    for i in range(20):
        assert _status(keys, f"other{i}") == 503
        assert keys.key("k1").key_id == "k1"
    assert endpoint.calls == calls  # open: not asked at all
    with pytest.raises(HTTPException) as info:
        keys.key("other")
    assert 1 <= int(info.value.headers["Retry-After"]) <= 60  # type: ignore[index]


def test_a_half_open_success_closes_the_breaker_and_a_rotated_key_verifies() -> None:
    _, k1 = _rsa_jwk("k1")
    _, k2 = _rsa_jwk("k2")
    endpoint = FakeEndpoint(k1)
    keys = _keys(endpoint, breaker_seconds=0.2)
    keys.key("k1")
    endpoint.down = True
    keys.UNKNOWN_KID_COOLDOWN_SECONDS = 0
    for _ in range(JWKS_FAILURES):
        _status(keys, "k2")
    assert keys.breaker.current_state == pybreaker.STATE_OPEN
    endpoint.down, endpoint.keys = False, [k1, k2]
    time.sleep(0.25)
    assert keys.key("k2").key_id == "k2"  # the half-open try fetched it
    assert keys.breaker.current_state == pybreaker.STATE_CLOSED


def test_a_stale_set_is_refreshed_in_the_background_and_removed_keys_stop_verifying() -> None:
    _, k1 = _rsa_jwk("k1")
    _, k2 = _rsa_jwk("k2")
    endpoint = FakeEndpoint(k1, k2)
    keys = _keys(endpoint, refresh_seconds=0.05)
    keys.UNKNOWN_KID_COOLDOWN_SECONDS = 0
    assert keys.key("k2").key_id == "k2"
    endpoint.keys = [k1]  # the provider retires k2
    time.sleep(0.06)
    assert keys.key("k2").key_id == "k2"  # still known: this request does not wait...
    deadline = time.monotonic() + 5
    while endpoint.calls < 2 or keys._fetching.locked():  # ...the refresh runs beside it
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert keys.key("k1").key_id == "k1"
    assert _status(keys, "k2") == 401


def test_jwks_mode_verifies_rs256_through_the_keys() -> None:
    private, k1 = _rsa_jwk("k1")
    settings = ApiSettings(auth_mode="jwks", jwks_url="http://idp.invalid/jwks")
    authenticator = Authenticator(settings)
    assert authenticator.jwks is not None
    authenticator.jwks._client.get_signing_keys = FakeEndpoint(k1)  # type: ignore[method-assign]
    now = int(time.time())
    claims = {"sub": "svc", "aud": "dex-api", "iat": now, "exp": now + 60, "scope": "predict"}
    token = jwt.encode(claims, private, "RS256", headers={"kid": "k1"})
    assert authenticator.verify(token).subject == "svc"
    no_kid = jwt.encode(claims, private, "RS256")
    with pytest.raises(HTTPException) as info:
        authenticator.verify(no_kid)
    assert info.value.status_code == 401
    assert "kid" in str(info.value.detail)
