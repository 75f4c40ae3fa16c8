"""GCP registry: one Artifact Registry Docker repository for the apps, immutable tags,
vulnerability scanning, cleanup policies keeping the most recent images, and (prod) a
customer-managed key of its own."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.contracts import RegistryOutputs, contract_outputs
from components.gcp.kms import ServiceKeyArgs, optional_key, validate_cmek


@dataclass(frozen=True)
class RegistryArgs:
    project: str
    region: str
    repository_id: str
    apps: tuple[str, ...]
    keep_images: int
    protect: bool
    pushed_tags: dict[str, str] | None = None
    """Per app, the tag of an image pushed before the deploy (`dex images push`), whose
    digest the contract then carries; None: the program builds the images."""
    cmek: bool = False
    """Encrypt with a customer-managed Cloud KMS key of the repository's own (prod); off keeps
    Google-managed encryption. Only at creation: changing it replaces the repository."""
    project_number: str = ""
    """The project's number, for the Artifact Registry service agent's key grant (with
    `cmek`)."""
    command_provider: pulumi.ProviderResource | None = None
    """The explicit `command` provider for the key's IAM propagation waits (with `cmek`)."""


def _digest_of(
    images: Sequence[gcp.artifactregistry.outputs.GetDockerImagesDockerImageResult],
    app: str,
    tag: str,
) -> str:
    """The digest of `app:tag` in the repository's listing, or "" when it is not there."""
    return next(
        (
            i.self_link.rsplit("@", 1)[-1]
            for i in images
            if i.image_name == app and tag in (i.tags or [])
        ),
        "",
    )


class Registry(pulumi.ComponentResource):
    """Artifact Registry repository. Type token `dex:gcp:Registry`."""

    contract: RegistryOutputs

    def __init__(
        self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        validate_cmek(args.cmek, args.project_number, args.command_provider)
        super().__init__("dex:gcp:Registry", name, None, opts)
        key_id, depends_on = optional_key(
            args.cmek,
            name,
            ServiceKeyArgs(
                project=args.project,
                project_number=args.project_number,
                region=args.region,
                service="artifactregistry.googleapis.com",
                ring_name=f"{args.repository_id}-registry-keyring",
                key_name=f"{args.repository_id}-registry",
                labels={"component": "registry"},
                protect=args.protect,
                command_provider=args.command_provider,
            ),
            self,
        )
        repo = gcp.artifactregistry.Repository(
            f"{name}-docker",
            project=args.project,
            location=args.region,
            repository_id=args.repository_id,
            format="DOCKER",
            description="DEX application images",
            docker_config=gcp.artifactregistry.RepositoryDockerConfigArgs(immutable_tags=True),
            vulnerability_scanning_config=gcp.artifactregistry.RepositoryVulnerabilityScanningConfigArgs(
                enablement_config="INHERITED"
            ),
            cleanup_policy_dry_run=False,
            cleanup_policies=[
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="keep-recent",
                    action="KEEP",
                    most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                        keep_count=args.keep_images
                    ),
                ),
                gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                    id="drop-untagged",
                    action="DELETE",
                    condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                        tag_state="UNTAGGED", older_than="86400s"
                    ),
                ),
            ],
            kms_key_name=key_id,
            labels={"component": "registry"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on, protect=args.protect),
        )
        base = pulumi.Output.concat(
            args.region, "-docker.pkg.dev/", args.project, "/", repo.repository_id
        )
        client, digests = self._access(args, repo)
        self.contract = RegistryOutputs(
            repository_urls={app: pulumi.Output.concat(base, "/", app) for app in args.apps},
            server=pulumi.Output.concat(args.region, "-docker.pkg.dev"),
            username=pulumi.Output.from_input("oauth2accesstoken"),
            password=pulumi.Output.secret(client.access_token),
            image_digests=digests,
        )
        self.register_outputs(contract_outputs(self.contract))

    def _access(
        self, args: RegistryArgs, repo: gcp.artifactregistry.Repository
    ) -> tuple[
        pulumi.Output[gcp.organizations.GetClientConfigResult], dict[str, pulumi.Output[str]]
    ]:
        """The deployer's credentials and, with `pushed_tags`, the pushed images' digests."""
        # The deployer's own OAuth token pushes the apps' images (Artifact Registry's
        # documented `oauth2accesstoken` login).
        client = gcp.organizations.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        )
        digests: dict[str, pulumi.Output[str]] = {}
        if args.pushed_tags:
            # listed, not fetched by tag: a tag not pushed yet (a PR that changes an app) is
            # "" here, which a preview shows and an update refuses
            listed = gcp.artifactregistry.get_docker_images_output(
                location=args.region,
                repository_id=repo.repository_id,
                project=args.project,
                opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[repo]),
            )
            for app, tag in args.pushed_tags.items():
                # self_link: `<host>/<project>/<repo>/<app>@sha256:...`
                digests[app] = listed.docker_images.apply(
                    functools.partial(_digest_of, app=app, tag=tag)
                )
        return client, digests
