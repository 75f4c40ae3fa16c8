"""JWT bearer authentication with scopes (PyJWT).

HS256 with a shared secret for local use; RS256 against the provider's JWKS (OIDC) in
production. A missing, malformed, expired, badly signed or wrong-audience token is 401 with
`WWW-Authenticate: Bearer`; a valid token without the route's scope is 403.

The JWKS endpoint is a dependency that can fail or freeze, so `JwksKeys` keeps the keys it
fetched and puts a circuit breaker (pybreaker) in front of the endpoint:

- a token whose key (`kid`) was fetched before verifies without any network call, whatever
  the endpoint does: the set is re-read in the background once it is older than
  `jwks_refresh_seconds`, and a request never waits for that (a key the provider removed
  stops verifying after at most that long);
- a token naming a key not fetched yet makes its request fetch the set, at most
  `jwks_timeout_seconds` long, one fetch at a time, and while the endpoint is healthy at most
  once per `UNKNOWN_KID_COOLDOWN_SECONDS` (tokens with made-up keys cannot hammer it); a key
  that is still unknown then is 401;
- after `JWKS_FAILURES` failed fetches in a row the breaker opens: for `jwks_breaker_seconds`
  no request touches the endpoint, and a token naming an unknown key gets 503 with
  Retry-After at once (not 401: the token may be valid, signed with a key just rotated in;
  the client should retry, not discard it). Then one fetch tries again (half-open), and a
  success closes the breaker. The outage is logged when the breaker opens (again after each
  failed retry, so once per interval) and when it closes, never once per request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
import pybreaker
from fastapi import HTTPException, Request, status

from apps.api.settings import ApiSettings

log = logging.getLogger("dex.api.auth")

JWKS_FAILURES = 3
"""JWKS fetch failures in a row that open the breaker."""


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    claims: dict[str, Any]


def _unauthorized(detail: str, error: str = "invalid_token") -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": f'Bearer error="{error}"'},
    )


class _JwksAnnouncer(pybreaker.CircuitBreakerListener):
    """One log line per change of the breaker's state, with the failure that caused it; and
    when the breaker will let a fetch through again (for Retry-After)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.cause = ""
        self.open_until = 0.0
        """`time.monotonic()` until which the breaker refuses fetches."""

    def failure(self, cb: Any, exc: BaseException) -> None:
        self.cause = f"{type(exc).__name__}: {exc}"[:300]

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        if new_state.name == pybreaker.STATE_OPEN:
            self.open_until = time.monotonic() + self.seconds
            log.warning(
                "jwks endpoint %s (%s): known keys keep verifying; tokens with an unknown key "
                "get 503 for %.0f s",
                "still failing" if old_state.name == pybreaker.STATE_HALF_OPEN else "failing",
                self.cause,
                self.seconds,
            )
        elif new_state.name == pybreaker.STATE_CLOSED and old_state.name != pybreaker.STATE_CLOSED:
            self.open_until = 0.0
            log.info("jwks endpoint answers again: unknown keys are fetched once more")


class JwksKeys:
    """The identity provider's signing keys by `kid`, fetched from its JWKS endpoint through
    a circuit breaker (see the module's docstring)."""

    UNKNOWN_KID_COOLDOWN_SECONDS = 10.0
    """While the endpoint is healthy, the least time between two fetches for unknown keys."""

    def __init__(
        self,
        url: str,
        timeout_seconds: float = 2.0,
        refresh_seconds: float = 300.0,
        breaker_seconds: float = 30.0,
    ) -> None:
        # PyJWT does the HTTP and the parsing; the caching is here, keyed by kid, so a known
        # key is found without PyJWT's client lock (held for a whole fetch)
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout_seconds)
        self.timeout_seconds = timeout_seconds
        self.refresh_seconds = refresh_seconds
        self._announcer = _JwksAnnouncer(breaker_seconds)
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=JWKS_FAILURES,
            reset_timeout=breaker_seconds,
            listeners=[self._announcer],
            name="jwks",
            throw_new_error_on_trip=False,
        )
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -math.inf
        """`time.monotonic()` of the last successful fetch."""
        self._attempts = 0
        self._last_ok = False
        self._fetching = threading.Lock()
        """Held for the whole of a fetch: one at a time."""
        self.fetches = 0
        """Fetches that reached the endpoint (for tests and metrics)."""

    def key(self, kid: object) -> jwt.PyJWK:
        """The key a token names; 401 for a key the endpoint does not list, 503 when it cannot
        be asked now."""
        if not isinstance(kid, str) or not kid:
            raise _unauthorized("the token's header names no signing key (kid)")
        known = self._keys.get(kid)
        if known is not None:
            if time.monotonic() - self._fetched_at >= self.refresh_seconds:
                self._refresh_in_background()
            return known
        closed = self.breaker.current_state == pybreaker.STATE_CLOSED
        if closed and time.monotonic() - self._fetched_at < self.UNKNOWN_KID_COOLDOWN_SECONDS:
            raise _unauthorized("the token's signing key (kid) is not one of the provider's")
        self._fetch(wait=closed)
        known = self._keys.get(kid)
        if known is None:
            raise _unauthorized("the token's signing key (kid) is not one of the provider's")
        return known

    def _fetch(self, wait: bool) -> None:
        """Fetch now, or share the outcome of the fetch under way; 503 when it fails. While
        the breaker is not closed a fetch under way is its one trial: no waiting for it."""
        seen = self._attempts
        if not self._fetching.acquire(timeout=self.timeout_seconds + 1 if wait else 0):
            raise self._unavailable()
        try:
            if self._attempts == seen:
                self._attempt()
            if not self._last_ok:
                raise self._unavailable()
        finally:
            self._fetching.release()

    def _refresh_in_background(self) -> None:
        if time.monotonic() < self._announcer.open_until:
            return  # the breaker would refuse it: no thread for nothing
        if not self._fetching.acquire(blocking=False):
            return  # a fetch is under way

        def run() -> None:
            try:
                self._attempt()
            finally:
                self._fetching.release()

        threading.Thread(target=run, name="dex-jwks-refresh", daemon=True).start()

    def _attempt(self) -> None:
        """One fetch through the breaker; the caller holds `_fetching`."""
        ok = False
        try:
            keys = self.breaker.call(self._get)
        except pybreaker.CircuitBreakerError:
            pass  # open: not asked; the breaker logged the outage
        except Exception as exc:
            log.debug("jwks fetch failed: %s", exc)
        else:
            self._keys = {k.key_id: k for k in keys if k.key_id}
            self._fetched_at = time.monotonic()
            ok = True
        self._last_ok = ok
        self._attempts += 1

    def _get(self) -> list[jwt.PyJWK]:
        self.fetches += 1
        return self._client.get_signing_keys(refresh=True)

    def _unavailable(self) -> HTTPException:
        wait = max(1, math.ceil(self._announcer.open_until - time.monotonic()))
        return HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the token's signing key is not known yet and the identity provider's "
            "key set (JWKS) cannot be fetched now: retry later",
            headers={"Retry-After": str(wait)},
        )


class Authenticator:
    """Verifies bearer tokens. A verified token's claims are remembered (bounded, until the
    token expires), so a client reusing its token is not re-verified on every request:
    the signature check and JSON parsing are most of the per-request cost."""

    CACHE_SIZE = 4096

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self._verified: dict[str, tuple[float, Principal]] = {}
        self.jwks = (
            JwksKeys(
                settings.jwks_url,
                timeout_seconds=settings.jwks_timeout_seconds,
                refresh_seconds=settings.jwks_refresh_seconds,
                breaker_seconds=settings.jwks_breaker_seconds,
            )
            if (settings.auth_mode == "jwks" and settings.jwks_url)
            else None
        )
        """The provider's keys behind their circuit breaker (RS256 mode), else None."""

    def decode(self, token: str) -> dict[str, Any]:
        s = self.settings
        options: Any = {"require": ["exp", "sub"]}
        try:
            if self.jwks is not None:
                key = self.jwks.key(jwt.get_unverified_header(token).get("kid")).key
                return jwt.decode(
                    token,
                    key,
                    algorithms=["RS256"],
                    audience=s.jwt_audience,
                    issuer=s.jwt_issuer,
                    options=options,
                    leeway=30,
                )
            return jwt.decode(
                token,
                s.jwt_secret,
                algorithms=["HS256"],
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                options=options,
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("token audience is not this API") from None
        except jwt.InvalidIssuerError:
            raise _unauthorized("token issuer is not trusted") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"invalid token: {exc}") from None

    @property
    def verifies_remotely(self) -> bool:
        """Whether verifying may fetch keys over the network (JWKS)."""
        return self.jwks is not None

    def token_of(self, request: Request) -> str:
        header = request.headers.get("Authorization")
        problem = header_problem(header)
        if problem is not None:
            raise _unauthorized(problem, "invalid_request")
        assert header is not None
        return header.partition(" ")[2].strip()

    def remembered(self, token: str) -> Principal | None:
        """The principal of a token verified before and not yet expired, else None."""
        hit = self._verified.get(token)
        if hit is None:
            return None
        if time.time() >= hit[0]:
            self._verified.pop(token, None)
            return None
        return hit[1]

    def verify(self, token: str) -> Principal:
        """The token's principal; 401 for a bad signature, claims or claim shapes."""
        claims = self.decode(token)
        scopes = scopes_of(claims.get("scope", claims.get("scp", "")))
        issued = claims.get("iat")
        start = float(issued) if isinstance(issued, int | float) else time.time()
        lifetime = float(claims["exp"]) - start
        if lifetime > self.settings.jwt_max_lifetime_seconds:
            raise _unauthorized(
                f"token lifetime {lifetime:.0f} s exceeds the accepted "
                f"{self.settings.jwt_max_lifetime_seconds} s"
            )
        principal = Principal(str(claims["sub"]), scopes, claims)
        # remembered until expiry (no leeway: a cached token never outlives its exp)
        if self.CACHE_SIZE <= 0:
            return principal
        while len(self._verified) >= self.CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # oldest first
        self._verified[token] = (float(claims["exp"]), principal)
        return principal


def header_problem(header: str | None) -> str | None:
    """What is wrong with an Authorization header before any token is looked at, if anything
    (the edge answers 401 with it before a request body is read)."""
    if not header:
        return "missing bearer token"
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "malformed Authorization header: expected 'Bearer <token>'"
    return None


def scopes_of(raw: object) -> frozenset[str]:
    """The documented claim shapes only: a space-separated string (RFC 8693 `scope`) or a
    list of strings (`scp`); anything else is a bad token, never a grant."""
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return frozenset(raw)
    raise _unauthorized("the token's scope claim is neither a string nor a list of strings")


def require(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"token lacks the '{scope}' scope",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )


def issue_token(
    secret: str,
    subject: str,
    scopes: list[str],
    audience: str = "dex-api",
    ttl_seconds: int = 3600,
    issuer: str | None = None,
) -> str:
    """A local development token (HS256). Production tokens come from the OIDC provider."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "scope": " ".join(scopes),
    }
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")
