"""AWS registry: one ECR repository per app, scanned on push, immutable tags, KMS, and a
lifecycle policy keeping the most recent images."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.contracts import RegistryOutputs, contract_outputs


def lifecycle_policy(keep_images: int) -> str:
    """Expire untagged images after a day; keep only the newest `keep_images` tagged ones."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "drop untagged images after a day",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": 1,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"keep the newest {keep_images} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": keep_images,
                    },
                    "action": {"type": "expire"},
                },
            ]
        },
        sort_keys=True,
    )


@dataclass(frozen=True)
class RegistryArgs:
    name_prefix: str
    apps: tuple[str, ...]
    keep_images: int
    protect: bool
    pushed_tags: dict[str, str] | None = None
    """Per app, the tag of an image pushed before the deploy (`dex images push`), whose
    digest the contract then carries; None: the program builds the images."""


def _digest_of(ids: Sequence[aws.ecr.outputs.GetImagesImageIdResult], tag: str) -> str:
    """The digest ECR lists under `tag`, or "" when it holds no such tag."""
    return next((i.image_digest for i in ids if i.image_tag == tag), "")


class Registry(pulumi.ComponentResource):
    """ECR repositories. Type token `dex:aws:Registry`."""

    contract: RegistryOutputs

    def __init__(
        self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dex:aws:Registry", name, None, opts)
        tags = {"component": "registry"}
        urls = {}
        digests: dict[str, pulumi.Output[str]] = {}
        registry_ids: list[pulumi.Output[str]] = []
        for app in args.apps:
            repo = aws.ecr.Repository(
                f"{name}-{app}",
                name=f"{args.name_prefix}/{app}",
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                encryption_configurations=[
                    aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")
                ],
                force_delete=False,
                tags={**tags, "app": app},
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{app}-lifecycle",
                repository=repo.name,
                policy=lifecycle_policy(args.keep_images),
                opts=pulumi.ResourceOptions(parent=self),
            )
            urls[app] = repo.repository_url
            registry_ids.append(repo.registry_id)
            if args.pushed_tags is not None:
                # listed, not fetched by tag: a tag not pushed yet (a PR that changes an
                # app) is "" here, which a preview shows and an update refuses
                tag = args.pushed_tags[app]
                listed = aws.ecr.get_images_output(
                    repository_name=repo.name,
                    opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[repo]),
                )
                digests[app] = listed.image_ids.apply(functools.partial(_digest_of, tag=tag))
        # A 12-hour token fetched at deploy time for pushing the apps' images.
        token = aws.ecr.get_authorization_token_output(
            registry_id=registry_ids[0], opts=pulumi.InvokeOutputOptions(parent=self)
        )
        self.contract = RegistryOutputs(
            repository_urls=urls,
            server=token.proxy_endpoint.apply(lambda e: e.removeprefix("https://")),
            username=token.user_name,
            password=pulumi.Output.secret(token.password),
            image_digests=digests,
        )
        self.register_outputs(contract_outputs(self.contract))
