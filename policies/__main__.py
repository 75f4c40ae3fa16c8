"""The DEX CrossGuard policy pack: `pulumi preview --policy-pack policies`.

Enforcement follows the environment in `DEX_POLICY_ENV` (`dev` or `prod`, default `prod`);
`policies/config/<env>.json` gives the same levels to `--policy-pack-config`, and is where
pack settings (`requiredTags`, `allowedInstanceClasses`, `trustedAccounts`) are set.
"""

import os
import sys
from pathlib import Path

# The pack runs with `policies/` first on sys.path; the package itself lives one level up.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from pulumi_policy import PolicyPack  # noqa: E402

from policies.crossguard import build_policies  # noqa: E402

_env = os.environ.get("DEX_POLICY_ENV", "prod")
if _env not in ("dev", "prod"):
    raise SystemExit(f"DEX_POLICY_ENV must be 'dev' or 'prod', got {_env!r}")

PolicyPack(
    name="dex",
    description="DEX security, resilience and hygiene rules for AWS, GCP and Kubernetes",
    policies=build_policies(_env),  # type: ignore[arg-type]
)
