"""GCP project services: the APIs the platform needs, enabled before anything uses them and
never disabled on destroy (other workloads in the project may rely on them)."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

APIS = (
    "compute.googleapis.com",
    "container.googleapis.com",
    "sqladmin.googleapis.com",
    "redis.googleapis.com",
    "servicenetworking.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudkms.googleapis.com",
    "iam.googleapis.com",
    "storage.googleapis.com",
    "binaryauthorization.googleapis.com",
)
"""`binaryauthorization` before a cluster that enforces it (GKE refuses the setting on a
project without the API)."""


class ProjectServices(pulumi.ComponentResource):
    """Enabled APIs. Type token `dex:gcp:ProjectServices`."""

    services: list[gcp.projects.Service]

    def __init__(self, name: str, project: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dex:gcp:ProjectServices", name, None, opts)
        self.services = [
            gcp.projects.Service(
                f"{name}-{api.split('.')[0]}",
                project=project,
                service=api,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for api in APIS
        ]
        self.register_outputs({"apis": list(APIS)})
