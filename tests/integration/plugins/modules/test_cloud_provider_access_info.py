"""cmk.atlas.cloud_provider_access_info through real ansible-playbook runs against the test bed."""

import json

import pytest
from emulators.atlas.testing import AtlasClient

from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import build_atlas_trust_policy

pytestmark = pytest.mark.integration

GROUP = "660000000000000000000001"  # project "empty" of the empty scenario
ATLAS_ACCOUNT_ARN = "arn:aws:iam::536727724300:root"
UNKNOWN = "(known after apply)"
MODULE = "cmk.atlas.cloud_provider_access_info"


def play(*tasks):
    return [{"name": "cloud provider access info", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": list(tasks)}]


def task(name, ignore_errors=False, **args):
    entry = {"name": name, MODULE: {"project_id": GROUP, **args}}
    if ignore_errors:
        entry["ignore_errors"] = True
    return entry


def atlas_api(bed):
    return AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])


def linked_and_spare_roles(bed):
    """Two Atlas roles: one authorized for an IAM role made in moto, one not authorized."""
    api = atlas_api(bed)
    linked = api.post(f"/groups/{GROUP}/cloudProviderAccess", {"providerName": "AWS"}).json()
    spare = api.post(f"/groups/{GROUP}/cloudProviderAccess", {"providerName": "AWS"}).json()
    trust = build_atlas_trust_policy(ATLAS_ACCOUNT_ARN, linked["atlasAssumedRoleExternalId"])
    arn = bed.aws_client("iam").create_role(RoleName="atlas-kms", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    response = api.patch(f"/groups/{GROUP}/cloudProviderAccess/{linked['roleId']}", {"providerName": "AWS", "iamAssumedRoleArn": arn})
    assert response.status_code == 200, response.text
    return response.json(), spare, arn


def test_check_mode_on_an_empty_project(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    plays = play(task("all"), task("a role not made yet", role_id=UNKNOWN), task("an IAM role not made yet", iam_role_arn=UNKNOWN))
    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env, check=True, diff=True).assert_ok()
    for name in ("all", "a role not made yet", "an IAM role not made yet"):
        result = run.task(name)
        assert result["changed"] is False
        assert result["roles"] == []
        assert result["project_id"] == GROUP
        assert "diff" not in result
    assert bed.write_calls() == []


def test_lists_all_or_filtered_roles_read_only(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    linked, spare, arn = linked_and_spare_roles(bed)
    plays = play(
        task("all"),
        task("by id", role_id=spare["roleId"]),
        task("by arn", iam_role_arn=arn),
        task("by id and arn", role_id=spare["roleId"], iam_role_arn=arn),
        task("no such role", role_id="0123456789abcdef01234567"),
    )
    for check in (False, True):
        bed.clear_logs()
        run = run_playbook(plays, env=testbed_env, check=check).assert_ok()
        assert run.changed_tasks() == []
        assert bed.write_calls() == []
        assert {role["role_id"] for role in run.task("all")["roles"]} == {linked["roleId"], spare["roleId"]}
        assert [role["role_id"] for role in run.task("by id")["roles"]] == [spare["roleId"]]
        assert run.task("by id and arn")["roles"] == []
        assert run.task("no such role")["roles"] == []
        (found,) = run.task("by arn")["roles"]
        assert found == {
            "role_id": linked["roleId"],
            "atlas_aws_account_arn": ATLAS_ACCOUNT_ARN,
            "external_id": linked["atlasAssumedRoleExternalId"],
            "iam_assumed_role_arn": arn,
            "authorized_date": linked["authorizedDate"],
            "created_date": linked["createdDate"],
            "feature_usages": [],
            "authorized": True,
        }


def test_feature_usages_are_returned(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    linked, _spare, arn = linked_and_spare_roles(bed)
    bed.atlas.set_encryption_at_rest(
        GROUP, {"enabled": True, "customerMasterKeyID": bed.keys["main"]["key_id"], "region": "US_EAST_1", "roleId": linked["roleId"]}
    )
    run = run_playbook(play(task("by arn", iam_role_arn=arn)), env=testbed_env).assert_ok()
    assert run.task("by arn")["roles"][0]["feature_usages"] == [{"feature_type": "ENCRYPTION_AT_REST", "feature_id": None}]


BAD_INPUTS = [
    ("project id not hex", {"project_id": "my-project"}, "project_id 'my-project' is not an Atlas project id"),
    ("role id is an arn", {"role_id": "arn:aws:iam::111111111111:role/atlas-kms"}, "is not an Atlas cloud provider access role id"),
    ("arn of a user", {"iam_role_arn": "arn:aws:iam::111111111111:user/atlas"}, "iam_role_arn 'arn:aws:iam::111111111111:user/atlas' is not an IAM role ARN"),
    (
        "placeholder outside check mode",
        {"iam_role_arn": UNKNOWN},
        "iam_role_arn is '(known after apply)': it comes from an earlier task that ran in check mode",
    ),
    ("unknown project", {"project_id": "0123456789abcdef01234567"}, "HTTP 404 GROUP_NOT_FOUND"),
    ("unsupported option", {"state": "present"}, "Unsupported parameters"),
]


def test_bad_inputs_fail_clearly(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    tasks = [task(name, ignore_errors=True, **args) for name, args, _message in BAD_INPUTS]
    bed.clear_logs()
    run = run_playbook(play(*tasks), env=testbed_env)
    assert run.failed_tasks() == [name for name, _args, _message in BAD_INPUTS]
    for name, _args, message in BAD_INPUTS:
        assert message in run.task(name)["msg"], name
    assert bed.write_calls() == []


def test_rate_limit_and_unavailability_are_retried(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    linked_and_spare_roles(bed)
    bed.clear_logs()
    bed.atlas.inject_fault("listGroupCloudProviderAccess", status=429, count=1, retry_after=1)
    bed.atlas.inject_fault("listGroupCloudProviderAccess", status=503, count=1)
    run = run_playbook(play(task("all")), env=testbed_env).assert_ok()
    assert len(run.task("all")["roles"]) == 2
    statuses = [entry["status"] for entry in bed.atlas.request_log() if entry["status"] != 401]
    assert statuses == [429, 503, 200]
