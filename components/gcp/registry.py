"""GCP registry: one Artifact Registry Docker repository for the apps, immutable tags,
vulnerability scanning, and cleanup policies keeping the most recent images."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.contracts import RegistryOutputs, contract_outputs


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


class Registry(pulumi.ComponentResource):
    """Artifact Registry repository. Type token `dex:gcp:Registry`."""

    contract: RegistryOutputs

    def __init__(
        self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:gcp:Registry", name, None, opts)
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
            labels={"component": "registry"},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        base = pulumi.Output.concat(
            args.region, "-docker.pkg.dev/", args.project, "/", repo.repository_id
        )
        # The deployer's own OAuth token pushes the apps' images (Artifact Registry's
        # documented `oauth2accesstoken` login).
        client = gcp.organizations.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        )
        digests: dict[str, pulumi.Output[str]] = {}
        for app, tag in (args.pushed_tags or {}).items():
            image = gcp.artifactregistry.get_docker_image_output(
                location=args.region,
                repository_id=repo.repository_id,
                project=args.project,
                image_name=f"{app}:{tag}",
                opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[repo]),
            )
            # self_link: `<host>/<project>/<repo>/<app>@sha256:...`
            digests[app] = image.self_link.apply(lambda link: link.rsplit("@", 1)[-1])
        self.contract = RegistryOutputs(
            repository_urls={app: pulumi.Output.concat(base, "/", app) for app in args.apps},
            server=pulumi.Output.concat(args.region, "-docker.pkg.dev"),
            username=pulumi.Output.from_input("oauth2accesstoken"),
            password=pulumi.Output.secret(client.access_token),
            image_digests=digests,
        )
        self.register_outputs(contract_outputs(self.contract))
