"""What the routes share, and the dependencies that hand it to them.

`create_app` makes one `Services` and keeps it on `app.state.services`; a dependency or route
reaches it through its request (`services(request)`), never through a closure. Dependencies
are coroutines: a plain `def` would cost a thread-pool round trip per request. What may block
on the network (a JWKS fetch, Redis) still goes to a thread.
"""

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from apps.api.auth import Authenticator, Principal
from apps.api.backends import Backends
from apps.api.features import Features
from apps.api.model_store import LoadedModel, ModelStore
from apps.api.observability import Metrics
from apps.api.predlog import PredictionLog
from apps.api.rollout import Rollout
from apps.api.settings import ApiSettings


@dataclass(frozen=True)
class Services:
    """The app's long-lived parts, made once by `create_app`."""

    settings: ApiSettings
    metrics: Metrics
    store: ModelStore
    """The champion alias's model (`rollout.challenger` holds the challenger's)."""
    backends: Backends
    predlog: PredictionLog
    rollout: Rollout
    features: Features
    authenticator: Authenticator


def services(request: Request) -> Services:
    """The `Services` of the app serving this request."""
    found: Services = request.app.state.services
    return found


bearer = HTTPBearer(auto_error=False, description="A JWT with the route's scope.")


async def client(
    request: Request,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> Principal:
    """The caller, from its bearer token (401/503 when it cannot be verified), within its
    rate limit (429 with Retry-After beyond it)."""
    s = services(request)
    authenticator = s.authenticator
    token = authenticator.token_of(request)
    principal = authenticator.remembered(token)
    if principal is None:
        if authenticator.verifies_remotely:
            principal = await asyncio.to_thread(authenticator.verify, token)
        else:
            principal = authenticator.verify(token)
    if s.backends.remote is not None:
        wait = await asyncio.to_thread(s.backends.hit, principal.subject)
    else:
        wait = s.backends.hit(principal.subject)
    if wait is not None:
        s.metrics.limited.inc()
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"rate limit {s.settings.rate_limit} exceeded",
            headers={"Retry-After": str(wait)},
        )
    return principal


Client = Annotated[Principal, Depends(client)]


async def model(request: Request) -> LoadedModel:
    """The champion being served (503 until there is one)."""
    s = services(request)
    current = s.store.current
    if current is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="no model loaded yet: the registry has no "
            f"'{s.settings.model_alias}' and no local copy exists",
        )
    s.metrics.model.labels(current.name, current.version, current.alias).set(1)
    return current


Model = Annotated[LoadedModel, Depends(model)]
