"""The typed stack config: every `dex:*` key, its per-environment profile, and its validation.

`load_config(raw)` is the only way the program reads configuration. It merges, lowest first:
the environment profile (`dev` or `prod`), the cloud x environment profile (each cloud's own
keys, and sizes that differ per cloud), then the keys the user set in `Pulumi.<stack>.yaml`.
The result is a frozen `AwsStackConfig` or `GcpStackConfig` (told apart by `dex:cloud`), or
one `ConfigError` whose lines each name the key, the value given and what is allowed. Nothing
here registers a resource, so a bad value stops the program before any resource exists.
Environments differ only in these values: the program reads no environment name to decide.

- `sections`: the sections, shared and per cloud;
- `stack`: the whole config per cloud and the checks that span sections;
- `cloud_rules`: what the cloud APIs refuse at apply time (names, parameter families, Cloud SQL);
- `profiles`: the defaults per environment and per cloud x environment;
- `load`: `load_config`; `errors`: `ConfigError` and the messages; `reference`: docs/config.md.
"""

from stacks.config.cloud_rules import (
    CLOUD_SQL_MAX_LOG_DAYS,
    NAME_RULES,
    RDS_PARAMETER_FAMILIES,
    VALKEY_PARAMETER_FAMILIES,
    NameRule,
    cloud_api_problems,
    cloud_sql_edition,
    name_problems,
    physical_names,
)
from stacks.config.errors import ConfigError
from stacks.config.load import load_config
from stacks.config.profiles import CLOUD_PROFILES, ENV_PROFILES, deep_merge
from stacks.config.reference import reference_markdown
from stacks.config.sections import (
    AwsCacheConfig,
    AwsClusterConfig,
    AwsDatabaseConfig,
    AwsNetworkConfig,
    AwsStorageConfig,
    CacheConfig,
    ClusterConfig,
    DatabaseConfig,
    GcpCacheConfig,
    GcpClusterConfig,
    GcpDatabaseConfig,
    GcpNetworkConfig,
    GcpRegistryConfig,
    GcpStorageConfig,
    NetworkConfig,
    NodeGroupConfig,
    PlatformConfig,
    RegistryConfig,
    StorageConfig,
)
from stacks.config.stack import (
    RESERVED_TAGS,
    STACK_MODELS,
    AnyStackConfig,
    AwsStackConfig,
    Cloud,
    Environment,
    GcpStackConfig,
    StackConfig,
)

__all__ = [
    "CLOUD_PROFILES",
    "CLOUD_SQL_MAX_LOG_DAYS",
    "ENV_PROFILES",
    "NAME_RULES",
    "RDS_PARAMETER_FAMILIES",
    "RESERVED_TAGS",
    "STACK_MODELS",
    "VALKEY_PARAMETER_FAMILIES",
    "AnyStackConfig",
    "AwsCacheConfig",
    "AwsClusterConfig",
    "AwsDatabaseConfig",
    "AwsNetworkConfig",
    "AwsStackConfig",
    "AwsStorageConfig",
    "CacheConfig",
    "Cloud",
    "ClusterConfig",
    "ConfigError",
    "DatabaseConfig",
    "Environment",
    "GcpCacheConfig",
    "GcpClusterConfig",
    "GcpDatabaseConfig",
    "GcpNetworkConfig",
    "GcpRegistryConfig",
    "GcpStackConfig",
    "GcpStorageConfig",
    "NameRule",
    "NetworkConfig",
    "NodeGroupConfig",
    "PlatformConfig",
    "RegistryConfig",
    "StackConfig",
    "StorageConfig",
    "cloud_api_problems",
    "cloud_sql_edition",
    "deep_merge",
    "load_config",
    "name_problems",
    "physical_names",
    "reference_markdown",
]
