"""The capability contracts: what each cloud's components hand to the rest of the platform.

Each capability (network, cluster, object store, database, cache, registry, workload
identity) is implemented once per cloud, under `components/aws` and `components/gcp`, and
each implementation exposes the *same* output shape defined here. `components/k8s` and the
apps are wired only through these shapes, so the same Kubernetes code serves both clouds.
Field names are the same wherever the meaning is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

import pulumi

from contracts.lake import LAYERS

LAKE_LAYERS = LAYERS
"""The lake's layers, one bucket each (`contracts.lake`)."""

BUCKET_PURPOSES = (*LAKE_LAYERS, "mlflow", "airflow-logs")
"""Every bucket the object store provides, by purpose."""

APP_IMAGES = ("api", "pipelines", "training")
"""The bundled apps, one image repository each."""

Access = Literal["read", "write"]

NOT_AN_OUTPUT = {"output": False}
"""Field metadata: a contract field that wires the program (resources to wait for) and is not
registered as a component output."""


@dataclass(frozen=True)
class BucketGrant:
    """A workload's access to one bucket, optionally narrowed to key prefixes."""

    purpose: str
    """Which bucket (one of BUCKET_PURPOSES)."""
    access: Access
    """`read` (get/list) or `write` (get/list/put/delete)."""
    prefixes: tuple[str, ...] = ()
    """Key prefixes the grant is limited to; empty means the whole bucket."""


@dataclass(frozen=True)
class WorkloadSpec:
    """One workload: its Kubernetes identity and the buckets it may touch."""

    name: str
    namespace: str
    service_account: str
    grants: tuple[BucketGrant, ...]


WORKLOAD_SPECS: tuple[WorkloadSpec, ...] = (
    WorkloadSpec("mlflow", "mlflow", "mlflow", (BucketGrant("mlflow", "write"),)),
    WorkloadSpec("airflow", "airflow", "airflow", (BucketGrant("airflow-logs", "write"),)),
    WorkloadSpec(
        "pipelines",
        "airflow",
        "pipelines",
        (
            BucketGrant("raw", "write", ("weather/",)),
            BucketGrant("bronze", "write"),
            BucketGrant("silver", "write"),
            BucketGrant("gold", "write"),
            BucketGrant("airflow-logs", "write"),
        ),
    ),
    # training reads gold; the model-ops CronJob (same identity) writes feedback, batch
    # predictions, decisions and metrics to gold and reads and appends to the prediction log
    WorkloadSpec(
        "training",
        "apps",
        "training",
        (BucketGrant("gold", "write"), BucketGrant("raw", "write", ("predictions/",))),
    ),
    WorkloadSpec(
        "api",
        "apps",
        "api",
        (BucketGrant("gold", "read"), BucketGrant("raw", "write", ("predictions/",))),
    ),
)
"""Who may touch what: least privilege, the same on both clouds."""


@dataclass(frozen=True)
class NodePoolArgs:
    """One pool of worker nodes, on either cloud."""

    instance_types: list[str]
    """Machine types, first preferred."""
    min_size: int
    desired_size: int
    max_size: int
    disk_size_gib: int
    """Root volume per node, in GiB (encrypted)."""
    spot: bool
    """Spot / preemptible capacity."""


@dataclass(frozen=True)
class NetworkOutputs:
    network_id: pulumi.Output[str]
    """AWS: the VPC id. GCP: the VPC network's self link."""
    node_subnet_ids: pulumi.Output[list[str]]
    """Where cluster nodes run (AWS: private subnets; GCP: the regional subnet)."""


@dataclass(frozen=True)
class StorageClassSpec:
    """A StorageClass for volume claims that name none."""

    name: str
    provisioner: str
    """The CSI driver (`ebs.csi.aws.com`)."""
    parameters: dict[str, str]
    """Driver parameters (volume type, encryption)."""


@dataclass(frozen=True)
class ClusterOutputs:
    name: pulumi.Output[str]
    """The cluster's name."""
    endpoint: pulumi.Output[str]
    """The API server URL."""
    kubeconfig: pulumi.Output[str]
    """A kubeconfig (JSON) that authenticates through the cloud CLI; a secret."""
    kubernetes_version: str
    """The pinned Kubernetes minor version the cluster runs."""
    default_storage_class: StorageClassSpec | None = None
    """The default StorageClass components/k8s must create because the cluster ships none
    (EKS 1.30+); None when the cloud installs one (GKE's `standard-rwo`)."""
    api_server_cidrs: tuple[str, ...] = ()
    """Where the API server's calls into the cluster (admission webhooks) come from: GKE's
    control-plane range, EKS's VPC range (the control plane's network interfaces sit in the
    cluster's subnets). Empty: unknown, any address outside the cluster. On EKS the range is
    the whole VPC, whose addresses the VPC CNI also gives to pods and nodes: there the webhook
    policies limit the pods and ports, and the source only to the VPC (dedicated control-plane
    subnets would narrow it)."""
    ready: tuple[pulumi.Resource, ...] = field(default=(), metadata=NOT_AN_OUTPUT)
    """What must exist before anything is scheduled: node groups or pools, and the network
    and DNS add-ons. The Kubernetes provider depends on all of them."""


@dataclass(frozen=True)
class ObjectStoreOutputs:
    bucket_names: dict[str, pulumi.Output[str]]
    """Bucket name by purpose (every entry of BUCKET_PURPOSES)."""
    bucket_urls: dict[str, pulumi.Output[str]]
    """`s3://name` or `gs://name` by purpose: how apps address storage."""


@dataclass(frozen=True)
class AppDatabase:
    """One application's database on the shared Postgres instance."""

    name: str
    user: str
    password: pulumi.Output[str]
    """A secret."""


@dataclass(frozen=True)
class DatabaseOutputs:
    host: pulumi.Output[str]
    port: pulumi.Output[int]
    admin_user: str
    admin_password: pulumi.Output[str]
    """A secret."""
    app_databases: dict[str, AppDatabase]
    """Database, user and password per application (`mlflow`, `airflow`)."""
    sslmode: str
    """The libpq sslmode clients must use: `verify-full` or `verify-ca` (they verify the
    server against `ca_certificate`)."""
    ca_certificate: pulumi.Output[str]
    """PEM of the CA(s) that sign the server's certificate: what clients put in `sslrootcert`
    (no stock image carries the RDS or Cloud SQL CA)."""


@dataclass(frozen=True)
class CacheOutputs:
    host: pulumi.Output[str]
    port: pulumi.Output[int]
    auth_token: pulumi.Output[str]
    """A secret."""
    url: pulumi.Output[str]
    """`rediss://:<token>@host:port/0`; a secret."""
    ca_certificate: pulumi.Output[str] | None = None
    """PEM of the CA that signs the server's certificate when it is not publicly trusted
    (Memorystore's instance CA); None when the system trust store verifies it."""


@dataclass(frozen=True)
class RegistryOutputs:
    repository_urls: dict[str, pulumi.Output[str]]
    """Image repository URL per app (every entry of APP_IMAGES)."""
    server: pulumi.Output[str]
    """The registry host images are pushed to."""
    username: pulumi.Output[str]
    """Push credentials for `server`: short-lived, fetched at deploy time."""
    password: pulumi.Output[str]
    """A secret."""
    image_digests: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    """Per app, the digest of the image already pushed under its source tag (`dex images
    push`), looked up when the stack deploys prebuilt images (`""` while the tag is not in
    the registry); empty when the program builds the images."""


@dataclass(frozen=True)
class WorkloadIdentityOutputs:
    service_account_annotations: dict[str, pulumi.Output[dict[str, str]]]
    """Per workload: the annotations its Kubernetes service account needs to assume its
    cloud identity (`eks.amazonaws.com/role-arn` / `iam.gke.io/gcp-service-account`)."""
    identities: dict[str, pulumi.Output[str]]
    """Per workload: the cloud identity (IAM role ARN / Google service account email)."""
    bindings: tuple[pulumi.Resource, ...] = field(default=(), metadata=NOT_AN_OUTPUT)
    """What lets a pod assume its identity (pod identity associations, Workload Identity IAM
    members): pods that use an identity wait for these."""


def contract_outputs(contract: object) -> dict[str, Any]:
    """A contract as a component's registered outputs: the same keys on every cloud, so a
    plan shows (and a test checks) that AWS and GCP expose the same shape."""
    out: dict[str, Any] = {}
    for f in fields(contract):  # type: ignore[arg-type]
        if not f.metadata.get("output", True):
            continue
        value = getattr(contract, f.name)
        if is_dataclass(value):
            value = contract_outputs(value)
        elif isinstance(value, dict):
            value = {k: contract_outputs(v) if is_dataclass(v) else v for k, v in value.items()}
        out[f.name] = value
    return out
