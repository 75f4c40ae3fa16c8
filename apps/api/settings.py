"""API settings from the environment (pydantic-settings, prefix `DEX_API_`).

Outside development the settings refuse to start with a placeholder or missing signing key,
HS256 in production, or a wildcard CORS origin with credentials.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.model import MODEL_NAME

PLACEHOLDERS = {"", "changeme", "change-me", "secret", "dev-secret"}


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEX_API_", extra="ignore")

    environment: Literal["local", "dev", "prod"] = "local"
    model_name: str = MODEL_NAME
    model_alias: str = "champion"
    # rollout: the registry's challenger, online
    rollout: Literal["off", "shadow", "canary"] = Field(
        "off",
        description="off: the champion answers everything; shadow: the challenger also scores "
        "(a share of) requests off the response path, both logged; canary: a share of callers, "
        "sticky per token subject, is answered by the challenger.",
    )
    challenger_alias: str = "challenger"
    canary_share: float = Field(
        0.0, ge=0, le=1, description="Share of callers (by token subject) the challenger answers."
    )
    shadow_share: float = Field(
        1.0, ge=0, le=1, description="Share of requests the challenger also scores in shadow mode."
    )
    tracking_uri: str = Field("sqlite:///mlflow.db", description="MLflow registry URI.")
    model_cache_dir: str = Field(
        ".dex/model-cache",
        description="Local copy of the served model: restarts serve even when MLflow is down.",
    )
    refresh_seconds: float = Field(30.0, gt=0, description="How often the alias is re-read.")
    lake_url: str | None = Field(
        None,
        description="Gold features for /v1/forecast; the prediction log goes to its raw layer.",
    )
    redis_url: str | None = Field(None, description="Cache and rate limits; in-process if unset.")
    redis_ca_file: str | None = Field(
        None,
        description="PEM CA bundle that verifies a `rediss://` server whose CA is not in the "
        "system trust store (Memorystore's instance CA): the chain is verified, not the host "
        "name (Memorystore names its IP only in the certificate's CN).",
    )
    forecast_ttl_seconds: int = Field(300, ge=1)
    redis_breaker_seconds: float = Field(
        10.0, gt=0, description="How long the API stays off a failing Redis before retrying it."
    )
    # auth
    auth_mode: Literal["hs256", "jwks"] = "hs256"
    jwt_secret: str = Field("", description="HS256 shared secret (local use).")
    jwks_url: str | None = Field(None, description="The OIDC provider's JWKS (RS256).")
    jwt_issuer: str | None = None
    jwt_audience: str = "dex-api"
    jwt_max_lifetime_seconds: int = Field(
        86_400,
        ge=60,
        description="The longest token lifetime accepted (exp - iat, or exp - now without "
        "iat): a leaked long-lived token is refused.",
    )
    jwks_timeout_seconds: float = Field(
        2.0,
        gt=0,
        le=30,
        description="How long one fetch of the JWKS may take before it counts as a failure.",
    )
    jwks_refresh_seconds: float = Field(
        300.0,
        gt=0,
        description="How old the fetched key set may grow before it is re-read in the "
        "background; requests keep verifying with the keys they know meanwhile, and a key the "
        "provider removed stops verifying after at most this long.",
    )
    jwks_breaker_seconds: float = Field(
        30.0,
        gt=0,
        description="After 3 failed JWKS fetches in a row, how long the API leaves the endpoint "
        "alone: known keys keep verifying, a token with an unknown key gets 503 with "
        "Retry-After at once.",
    )
    # limits and headers
    rate_limit: str = Field("120/minute", description="Per client (JWT subject).")
    max_body_bytes: int = Field(
        512 * 1024,
        ge=1024,
        description="Largest request body: room for max_batch_rows realistic rows (~280 B each).",
    )
    max_batch_rows: int = Field(1000, ge=1, le=10_000)
    cors_origins: list[str] = Field(default_factory=list)
    # operations
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP traces endpoint, if any.")
    prediction_log_flush_seconds: float = Field(2.0, gt=0)
    log_level: str = "INFO"
    registry_breaker_seconds: float = Field(
        60.0,
        gt=0,
        description="After 3 failed MLflow calls in a row, how long the model refresher skips "
        "the registry (the current model keeps serving, /readyz says `registry` false) before "
        "trying it again.",
    )

    @model_validator(mode="after")
    def _safe_outside_development(self) -> Self:
        weak = self.auth_mode == "hs256" and self.jwt_secret.lower() in PLACEHOLDERS
        if weak and self.environment != "local":
            raise ValueError(
                "DEX_API_JWT_SECRET is missing or a placeholder; set a real "
                "secret or use DEX_API_AUTH_MODE=jwks"
            )
        if self.auth_mode == "hs256" and self.environment == "prod":
            raise ValueError("prod requires DEX_API_AUTH_MODE=jwks (RS256 via the OIDC provider)")
        if self.auth_mode == "jwks" and not self.jwks_url:
            raise ValueError("DEX_API_AUTH_MODE=jwks needs DEX_API_JWKS_URL")
        if "*" in self.cors_origins and self.environment != "local":
            raise ValueError("DEX_API_CORS_ORIGINS must list origins outside local use, not '*'")
        if self.rollout == "canary" and self.canary_share <= 0:
            raise ValueError("DEX_API_ROLLOUT=canary needs DEX_API_CANARY_SHARE above 0 (e.g. 0.2)")
        if self.challenger_alias == self.model_alias:
            raise ValueError("DEX_API_CHALLENGER_ALIAS must differ from DEX_API_MODEL_ALIAS")
        if self.environment != "local" and not self.jwt_issuer:
            raise ValueError(
                "DEX_API_JWT_ISSUER is required outside local development: tokens must name "
                "who issued them"
            )
        return self
