"""`validate_cmek` (components/gcp/kms.py): the two things a customer-managed key cannot do
without, refused before any resource is declared."""

from __future__ import annotations

import pulumi
import pytest

from components.gcp.kms import validate_cmek

pytestmark = pytest.mark.unit

PROVIDER = object.__new__(pulumi.ProviderResource)  # only its presence is checked


def test_cmek_needs_the_numeric_project_number() -> None:
    with pytest.raises(ValueError, match="numeric `project_number`, got 'dex-prod'"):
        validate_cmek(True, "dex-prod", PROVIDER)
    with pytest.raises(ValueError, match="got ''"):
        validate_cmek(True, "", PROVIDER)


def test_cmek_needs_a_command_provider_for_the_propagation_waits() -> None:
    with pytest.raises(ValueError, match="`command_provider`"):
        validate_cmek(True, "123456789012", None)


def test_without_cmek_nothing_is_needed() -> None:
    validate_cmek(False, "", None)
    validate_cmek(True, "123456789012", PROVIDER)
