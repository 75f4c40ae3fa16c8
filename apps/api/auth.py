"""JWT bearer authentication with scopes (PyJWT).

HS256 with a shared secret for local use; RS256 against the provider's JWKS (OIDC) in
production. A missing, malformed, expired, badly signed or wrong-audience token is 401 with
`WWW-Authenticate: Bearer`; a valid token without the route's scope is 403.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import HTTPException, Request, status

from apps.api.settings import ApiSettings


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


class Authenticator:
    """Verifies bearer tokens. A verified token's claims are remembered (bounded, until the
    token expires), so a client reusing its token is not re-verified on every request:
    the signature check and JSON parsing are most of the per-request cost."""

    CACHE_SIZE = 4096

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._jwks = (
            jwt.PyJWKClient(settings.jwks_url, cache_keys=True)
            if (settings.auth_mode == "jwks" and settings.jwks_url)
            else None
        )

    def decode(self, token: str) -> dict[str, Any]:
        s = self.settings
        options: Any = {"require": ["exp", "sub"]}
        try:
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
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
        except jwt.PyJWKClientError as exc:
            raise _unauthorized(f"cannot verify the token's key: {exc}") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"invalid token: {exc}") from None

    @property
    def verifies_remotely(self) -> bool:
        """Whether verifying may fetch keys over the network (JWKS)."""
        return self._jwks is not None

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

    def principal(self, request: Request) -> Principal:
        token = self.token_of(request)
        return self.remembered(token) or self.verify(token)


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
