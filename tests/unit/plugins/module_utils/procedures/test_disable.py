"""Disable planned offline: the attributes ``read()`` sets are given, ``plan_all()`` is driven, nothing is written."""

import pytest
from unit.fakes import NoAtlas, PlanningAws

from ansible_collections.cmk.atlas.plugins.module_utils.atlas.cloud_provider_access import normalize_role
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.clusters import normalize_cluster
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import normalize
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.private_endpoints import normalize_endpoint, plan_removal
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import build_inline_policy, build_trust_policy
from ansible_collections.cmk.atlas.plugins.module_utils.aws.kms import key_access_sid, key_metadata
from ansible_collections.cmk.atlas.plugins.module_utils.procedures import disable as dis
from ansible_collections.cmk.atlas.plugins.modules.key_management import ARGUMENT_SPEC

PROJECT = "5f1a2b3c4d5e6f7a8b9c0d1e"
ROLE_ID = "32b6e34b3d91647abb20e7b8"
ACCOUNT = "111111111111"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ATLAS_ARN = "arn:aws:iam::536727724300:root"
EXTERNAL_ID = "24a1c5f2-8d3e-4b6a-9f70-1e2d3c4b5a69"
ROLE_NAME = "atlas-kms"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
SID = key_access_sid(ROLE_ARN)


def atlas_role(features=("ENCRYPTION_AT_REST",)):
    return normalize_role(
        {
            "providerName": "AWS",
            "roleId": ROLE_ID,
            "atlasAWSAccountArn": ATLAS_ARN,
            "atlasAssumedRoleExternalId": EXTERNAL_ID,
            "iamAssumedRoleArn": ROLE_ARN,
            "featureUsages": [{"featureType": feature, "featureId": None} for feature in features],
        }
    )


def iam_role(project=PROJECT):
    return {
        "name": ROLE_NAME,
        "path": "/",
        "arn": ROLE_ARN,
        "role_id": "AROAEXAMPLE",
        "description": None,
        "max_session_duration": 3600,
        "tags": {"cmk-atlas:project-id": project, "cmk-atlas:role-id": ROLE_ID},
        "trust_policy": build_trust_policy(ATLAS_ARN, EXTERNAL_ID),
        "inline_policies": {"cmk-atlas-kms-access": build_inline_policy([KEY_ARN])},
        "managed_policies": [],
    }


def key_policy(with_statement=True):
    statements = [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}
    ]
    if with_statement:
        statements.append(
            {"Sid": SID, "Effect": "Allow", "Principal": {"AWS": ROLE_ARN}, "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt"], "Resource": "*"}
        )
    return {"Version": "2012-10-17", "Statement": statements}


def kms_key(state="Enabled"):
    raw = {"KeyId": KEY_ARN.rsplit("/", 1)[1], "Arn": KEY_ARN, "KeyState": state, "Enabled": state == "Enabled", "KeyManager": "CUSTOMER"}
    return key_metadata(dict(raw, KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT"))


_DEFAULT = object()


def planned(
    check_mode=False,
    enabled=True,
    valid=True,
    clusters=(("Cluster0", "AWS", False),),
    endpoints=(),
    policy=None,
    roles=_DEFAULT,
    role=_DEFAULT,
    statement=True,
    **params,
):
    values = {name: option.get("default") for name, option in ARGUMENT_SPEC.items()}
    values.update(project_id=PROJECT, procedure="disable", iam_role_name=ROLE_NAME, kms_key=KEY_ARN, confirm_disable=True, remove_access=True)
    values.update(params)
    access = dis.Disable(values, NoAtlas(), PlanningAws, lambda: None, check_mode=check_mode)
    access.roles = [atlas_role()] if roles is _DEFAULT else roles
    aws_kms = {"enabled": True, "customerMasterKeyID": KEY_ARN, "region": "US_EAST_1", "roleId": ROLE_ID, "valid": valid} if enabled else {"enabled": False}
    access.current = normalize(aws_kms, access.roles)
    access.search_nodes = None
    access.compliance_policy = policy
    access.clusters = [
        normalize_cluster({"name": name, "encryptionAtRestProvider": provider, "stateName": "IDLE", "paused": paused}) for name, provider, paused in clusters
    ]
    access.endpoints = [normalize_endpoint(raw) for raw in endpoints]
    access.iam_role = iam_role() if role is _DEFAULT else role
    access.iam_role_arn = ROLE_ARN
    access.attachments = {"managed_policies": [], "instance_profiles": []}
    access.key, access.key_policy, access.key_connection, access.foreign_key = kms_key(), key_policy(statement), PlanningAws(), None
    return access, access.plan_all()


def kinds(plan):
    return [change.split(" ", 1)[0] for change in plan.changes]


def test_the_writes_come_in_the_order_atlas_needs():
    _access, plan = planned(endpoints=[{"id": "e1", "regionName": "US_EAST_1", "status": "ACTIVE"}])
    assert plan.problems == []
    assert kinds(plan) == ["set", "delete", "disable", "remove", "delete", "deauthorize"]
    assert plan.changes[0] == "set encryptionAtRestProvider NONE on Cluster0 and wait for IDLE"
    assert SID in plan.changes[3] and plan.changes[4].startswith(f"delete IAM role {ROLE_NAME}")


def test_without_remove_access_only_the_clusters_endpoints_and_project_change():
    _access, plan = planned(remove_access=False)
    assert kinds(plan) == ["set", "disable"]


def test_without_confirmation_it_is_refused_and_check_mode_only_warns():
    _access, plan = planned(confirm_disable=False)
    (problem,) = plan.problems
    assert "re-sync every cluster" in problem.message and "rebuild the search indexes" in problem.message
    assert problem.fix.endswith("confirm_disable: true")
    _access, plan = planned(confirm_disable=False, check_mode=True)
    assert plan.problems == [] and any("confirm_disable" in warning for warning in plan.warnings)


@pytest.mark.parametrize(
    ("policy", "refused"), [(None, False), ({}, False), ({"encryptionAtRestEnabled": False}, False), ({"encryptionAtRestEnabled": True}, True)]
)
def test_a_compliance_policy_refuses_only_when_it_requires_encryption_at_rest(policy, refused):
    _access, plan = planned(policy=policy)
    assert bool(plan.problems) is refused
    if refused:
        assert "backup compliance policy requires encryption at rest" in plan.problems[0].message


def test_a_key_atlas_cannot_use_or_a_paused_cluster_is_refused():
    _access, plan = planned(valid=False)
    assert any("not valid" in problem.message for problem in plan.problems)
    _access, plan = planned(clusters=(("Cluster0", "AWS", True),))
    assert any("paused" in problem.message for problem in plan.problems)


def test_a_role_paired_with_another_project_and_its_statement_stay():
    _access, plan = planned(role=iam_role(project="6f1a2b3c4d5e6f7a8b9c0d1f"))
    assert "remove" not in kinds(plan) and not any(change.startswith("delete IAM role") for change in plan.changes)
    assert any("stay" in warning for warning in plan.warnings)


def test_an_atlas_role_another_feature_uses_keeps_the_iam_role_too():
    _access, plan = planned(roles=[atlas_role(("ENCRYPTION_AT_REST", "EXPORT_SNAPSHOT"))])
    assert kinds(plan) == ["set", "disable"]
    assert any("EXPORT_SNAPSHOT" in warning for warning in plan.warnings)


def test_a_converged_project_plans_nothing_and_needs_no_confirmation():
    _access, plan = planned(enabled=False, clusters=(("Cluster0", "NONE", False),), roles=[], role=None, statement=False, confirm_disable=False)
    assert plan.steps == [] and plan.problems == []


def test_a_rerun_after_the_disable_finds_the_key_in_the_inline_policy():
    assert dis.inline_key_arns(iam_role(), "cmk-atlas-kms-access") == [KEY_ARN]
    assert dis.inline_key_arns(None, "cmk-atlas-kms-access") == []


def test_endpoints_being_deleted_are_waited_for_not_deleted_again():
    removal = plan_removal([normalize_endpoint({"id": "e1", "status": "DELETING"}), normalize_endpoint({"id": "e2", "status": "ACTIVE"})])
    assert [e["id"] for e in removal.to_delete] == ["e2"] and [e["id"] for e in removal.to_wait] == ["e1", "e2"]
