"""Customer-managed KMS keys: rotation on, a 30-day deletion window, an alias per key."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def customer_key(
    name: str,
    description: str,
    parent: pulumi.Resource,
    protect: bool,
    tags: dict[str, str],
    policy: pulumi.Input[str] | None = None,
) -> aws.kms.Key:
    """A symmetric key with yearly rotation, named `alias/<name>`."""
    return customer_key_and_alias(name, description, parent, protect, tags, policy)[0]


def customer_key_and_alias(
    name: str,
    description: str,
    parent: pulumi.Resource,
    protect: bool,
    tags: dict[str, str],
    policy: pulumi.Input[str] | None = None,
) -> tuple[aws.kms.Key, aws.kms.Alias]:
    """`customer_key`, and its alias `alias/<name>` (for what refers to the key by alias)."""
    key = aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=policy,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
    alias = aws.kms.Alias(
        f"{name}-alias",
        name=f"alias/{name}",
        target_key_id=key.key_id,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return key, alias
