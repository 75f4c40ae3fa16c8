"""Where each cloud can run DEX: the region lists the stack config validates against.

AWS regions come from the installed provider SDK's own `Region` enum, so they move with the
pinned pulumi-aws; GCP has no such enum, so its list is kept here (GKE + Cloud SQL +
Memorystore regions as of 2026).
"""

from __future__ import annotations

import pulumi_aws

AWS_REGIONS: frozenset[str] = frozenset(r.value for r in pulumi_aws.Region)

GCP_REGIONS: frozenset[str] = frozenset(
    {
        "africa-south1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast2",
        "asia-northeast3",
        "asia-south1",
        "asia-south2",
        "asia-southeast1",
        "asia-southeast2",
        "australia-southeast1",
        "australia-southeast2",
        "europe-central2",
        "europe-north1",
        "europe-north2",
        "europe-southwest1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-west10",
        "europe-west12",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "northamerica-northeast2",
        "northamerica-south1",
        "southamerica-east1",
        "southamerica-west1",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west2",
        "us-west3",
        "us-west4",
    }
)

# Regions where a new account gets fewer than three usable availability zones.
AWS_TWO_AZ_REGIONS: frozenset[str] = frozenset({"us-west-1"})


def aws_partition(region: str) -> str:
    """The ARN partition of an AWS region (`aws`, `aws-cn`, `aws-us-gov`, ...)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("us-isob-"):
        return "aws-iso-b"
    if region.startswith("us-isof-"):
        return "aws-iso-f"
    if region.startswith("us-iso-"):
        return "aws-iso"
    if region.startswith("eu-isoe-"):
        return "aws-iso-e"
    if region.startswith("eusc-"):
        return "aws-eusc"
    return "aws"
