"""Keypair resource policies: aggregate, creator/modifier, actions and service."""

from domain.keypair_resource_policy.actions import (
    CreateKeyPairResourcePolicyAction,
    CreateKeyPairResourcePolicyActionResult,
    DeleteKeyPairResourcePolicyAction,
    DeleteKeyPairResourcePolicyActionResult,
    KeypairResourcePolicyAction,
    ModifyKeyPairResourcePolicyAction,
    ModifyKeyPairResourcePolicyActionResult,
)
from domain.keypair_resource_policy.aggregate import SYSTEM_POLICY, KeyPairResourcePolicy, policy_id
from domain.keypair_resource_policy.service import KeyPairResourcePolicyService
from domain.keypair_resource_policy.types import (
    KeyPairResourcePolicyCreator,
    KeyPairResourcePolicyData,
    KeyPairResourcePolicyModifier,
)

__all__ = [
    "SYSTEM_POLICY",
    "CreateKeyPairResourcePolicyAction",
    "CreateKeyPairResourcePolicyActionResult",
    "DeleteKeyPairResourcePolicyAction",
    "DeleteKeyPairResourcePolicyActionResult",
    "KeyPairResourcePolicy",
    "KeyPairResourcePolicyCreator",
    "KeyPairResourcePolicyData",
    "KeyPairResourcePolicyModifier",
    "KeyPairResourcePolicyService",
    "KeypairResourcePolicyAction",
    "ModifyKeyPairResourcePolicyAction",
    "ModifyKeyPairResourcePolicyActionResult",
    "policy_id",
]
