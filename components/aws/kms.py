"""Customer-managed KMS keys: rotation on, a 30-day deletion window, an alias per key."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True, kw_only=True)
class KeyArgs:
    """A customer-managed key's settings."""

    description: str
    protect: bool
    """Pulumi `protect` on the key (prod)."""
    tags: dict[str, str]
    policy: pulumi.Input[str] | None = None
    """The key policy; None keeps the account's default key policy."""


def customer_key(name: str, args: KeyArgs, parent: pulumi.Resource) -> aws.kms.Key:
    """A symmetric key with yearly rotation, named `alias/<name>`."""
    return customer_key_and_alias(name, args, parent)[0]


def customer_key_and_alias(
    name: str, args: KeyArgs, parent: pulumi.Resource
) -> tuple[aws.kms.Key, aws.kms.Alias]:
    """`customer_key`, and its alias `alias/<name>` (for what refers to the key by alias)."""
    key = aws.kms.Key(
        name,
        description=args.description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=args.policy,
        tags=args.tags,
        opts=pulumi.ResourceOptions(parent=parent, protect=args.protect),
    )
    alias = aws.kms.Alias(
        f"{name}-alias",
        name=f"alias/{name}",
        target_key_id=key.key_id,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return key, alias
