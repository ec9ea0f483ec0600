"""cmk.atlas.disable against the test bed: clusters, private endpoints, the project, then (remove_access) what the
collection made, in that order; refused before any write without confirmation or under a backup compliance policy."""

import json

import pytest

from .conftest import assert_refused, cross_account_project, successful_writes

pytestmark = [pytest.mark.integration, pytest.mark.scenario("demo")]

ENABLE, DISABLE = "cmk.atlas.enable", "cmk.atlas.disable"
TASK = "cmk.atlas.disable : Plan and apply the disable for the project"
SUMMARY = "cmk.atlas.disable : Summarize the project"
ROLE_NAME = "atlas-kms-plain"
FAST = {"cmk_atlas_connection": {"retries": 1, "timeout": 10}, "cmk_atlas_authorize_timeout": 5, "cmk_atlas_valid_timeout": 5, "cmk_atlas_cluster_timeout": 60}
# The writes of a whole disable with remove_access, in order (operation names of the Atlas spec and of AWS).
ORDER = [
    ("atlas", "updateGroupCluster"),
    ("atlas", "requestGroupEncryptionAtRestPrivateEndpointDeletion"),
    ("atlas", "updateGroupEncryptionAtRest"),
    ("aws", "PutKeyPolicy"),
    ("aws", "DeleteRolePolicy"),
    ("aws", "DeleteRole"),
    ("atlas", "deauthorizeGroupCloudProviderAccessRole"),
]


def variables(bed, **more):
    return {
        "cmk_atlas_project_id": bed.projects["plain"],
        "cmk_atlas_iam_role_name": ROLE_NAME,
        "cmk_atlas_kms_key": bed.keys["main"]["arn"],
        "cmk_atlas_clusters": ["Cluster0"],
        **FAST,
        **more,
    }


def sid_of(role_arn):
    from ansible_collections.cmk.atlas.plugins.module_utils.aws.kms import key_access_sid

    return key_access_sid(role_arn)


def enabled_project(bed, run_playbook, testbed_env, write_inventory, endpoint=True, statement=True):
    """Project plain enabled by cmk.atlas.enable with Cluster0; then, as Atlas and the collection would have them, an
    encryption-at-rest private endpoint and the collection's key-policy statement for the role."""
    run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({"plain": variables(bed)})).assert_ok()
    group = bed.projects["plain"]
    role_arn = bed.aws_client("iam").get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
    if statement:
        kms = bed.aws_client("kms")
        key = bed.keys["main"]["arn"]
        policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
        policy["Statement"].append(
            {
                "Sid": sid_of(role_arn),
                "Effect": "Allow",
                "Principal": {"AWS": role_arn},
                "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt"],
                "Resource": "*",
            }
        )
        kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(policy))
    if endpoint:
        from emulators.atlas.testing import AtlasClient

        api = AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])
        assert api.patch(f"/groups/{group}/encryptionAtRest", {"awsKms": {"requirePrivateNetworking": True}}).status_code == 200
        created = api.post(f"/groups/{group}/encryptionAtRest/AWS/privateEndpoints", {"cloudProvider": "AWS", "regionName": "US_EAST_1"})
        assert created.status_code == 202, created.text
    return role_arn


def ordered_writes(bed):
    """(system, operation) of every successful write since clear_logs(), Atlas and AWS merged by time."""
    calls = [(entry["time"], "atlas", entry["operation_id"]) for entry in bed.atlas.request_log() if entry["write"] and entry["status"] < 400]
    calls += [(entry["time"], "aws", entry["operation"]) for entry in bed.proxy.request_log() if entry["write"] and entry["status"] < 400]
    return [(system, operation) for _time, system, operation in sorted(calls)]


def refused(run, *texts):
    return assert_refused(run, TASK, *texts)


def state(bed):
    return bed.atlas.project_state(bed.projects["plain"])


def test_without_confirmation_nothing_is_written_and_the_refusal_says_why(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    enabled_project(bed, run_playbook, testbed_env, write_inventory)
    bed.clear_logs()
    run = run_playbook(DISABLE, env=testbed_env, inventory=write_inventory({"plain": variables(bed, cmk_atlas_remove_access=True)}))
    refused(run, "cmk_atlas_confirm_disable", "re-sync every cluster", "rebuild the search indexes")
    assert successful_writes(bed) == []


def test_a_compliance_policy_requiring_encryption_at_rest_refuses_before_any_write(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    enabled_project(bed, run_playbook, testbed_env, write_inventory, endpoint=False, statement=False)
    bed.atlas.set_backup_compliance_policy(bed.projects["plain"], encryption_at_rest_enabled=True)
    inventory = write_inventory({"plain": variables(bed, cmk_atlas_confirm_disable=True, cmk_atlas_remove_access=True)})
    for check in (True, False):
        bed.clear_logs()
        refused(run_playbook(DISABLE, env=testbed_env, inventory=inventory, check=check), "backup compliance policy requires encryption at rest")
        assert successful_writes(bed) == []
    # A policy that does not require it is no obstacle.
    bed.atlas.set_backup_compliance_policy(bed.projects["plain"], encryption_at_rest_enabled=False)
    run_playbook(DISABLE, env=testbed_env, inventory=inventory).assert_ok()
    assert state(bed)["encryptionAtRest"]["enabled"] is False


def test_check_mode_predicts_the_real_run_then_it_writes_in_order_and_a_rerun_writes_nothing(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    role_arn = enabled_project(bed, run_playbook, testbed_env, write_inventory)
    inventory = write_inventory({"plain": variables(bed, cmk_atlas_confirm_disable=True, cmk_atlas_remove_access=True)})

    bed.clear_logs()
    check = run_playbook(DISABLE, env=testbed_env, inventory=inventory, check=True, diff=True).assert_ok()
    assert successful_writes(bed) == []
    predicted = check.task(TASK)
    assert predicted["changed"] is True
    assert [change.split(" ", 2)[:2] for change in predicted["changes"]] == [
        ["set", "encryptionAtRestProvider"],
        ["delete", "encryption-at-rest"],
        ["disable", "encryption"],
        ["remove", "key-policy"],
        ["delete", "IAM"],
        ["deauthorize", "Atlas"],
    ], predicted["changes"]
    headers = [diff.get("before_header", "") for diff in predicted["diff"]]
    assert any(header.startswith("clusters'") for header in headers), headers

    bed.clear_logs()
    run = run_playbook(DISABLE, env=testbed_env, inventory=inventory).assert_ok()
    result = run.task(TASK)
    assert result["changes"] == predicted["changes"]
    assert result["removed_access"] == predicted["removed_access"]
    assert result["clusters"] == predicted["clusters"] == {"Cluster0": "NONE"}
    assert ordered_writes(bed) == ORDER
    after = state(bed)
    assert after["encryptionAtRest"]["enabled"] is False
    assert after["privateEndpoints"] == [] and after["roles"] == []
    kms = bed.aws_client("kms")
    policy = kms.get_key_policy(KeyId=bed.keys["main"]["arn"], PolicyName="default")["Policy"]
    assert sid_of(role_arn) not in policy and "Enable IAM User Permissions" in policy
    assert ROLE_NAME not in [role["RoleName"] for role in bed.aws_client("iam").list_roles()["Roles"]]
    assert run.task(SUMMARY)["msg"]["disabled"] is True

    bed.clear_logs()
    again = run_playbook(DISABLE, env=testbed_env, inventory=inventory).assert_ok()
    assert again.task(TASK)["changed"] is False and again.task(TASK)["changes"] == []
    assert successful_writes(bed) == []


def test_without_remove_access_the_access_stays(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    enabled_project(bed, run_playbook, testbed_env, write_inventory, endpoint=False)
    inventory = write_inventory({"plain": variables(bed, cmk_atlas_confirm_disable=True)})
    bed.clear_logs()
    run_playbook(DISABLE, env=testbed_env, inventory=inventory).assert_ok()
    assert ordered_writes(bed) == [("atlas", "updateGroupCluster"), ("atlas", "updateGroupEncryptionAtRest")]
    assert len(state(bed)["roles"]) == 1
    bed.aws_client("iam").get_role(RoleName=ROLE_NAME)


def test_a_failure_part_way_names_the_writes_made_and_a_rerun_continues(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    enabled_project(bed, run_playbook, testbed_env, write_inventory)
    inventory = write_inventory({"plain": variables(bed, cmk_atlas_confirm_disable=True, cmk_atlas_remove_access=True)})
    # More 503s than the one retry allowed: the disable request fails after the clusters and the endpoints.
    bed.atlas.inject_fault("updateGroupEncryptionAtRest", status=503, count=2)
    bed.clear_logs()
    broken = run_playbook(DISABLE, env=testbed_env, inventory=inventory)
    assert broken.rc != 0 and broken.failed_tasks() == [TASK], broken.output[-3000:]
    message = broken.task(TASK)["msg"]
    assert message.startswith("disable encryption at rest of project"), message
    made = message.split("Writes made before it in this run: ", 1)[1]
    assert made.startswith("set encryptionAtRestProvider NONE on Cluster0") and "delete encryption-at-rest private endpoints" in made, message
    assert "Run again to continue from there" in message
    assert ordered_writes(bed) == ORDER[:2]

    bed.clear_logs()
    resumed = run_playbook(DISABLE, env=testbed_env, inventory=inventory).assert_ok()
    assert [change.split(" ", 1)[0] for change in resumed.task(TASK)["changes"]] == ["disable", "remove", "delete", "deauthorize"]
    assert ordered_writes(bed) == ORDER[2:]
    assert state(bed)["encryptionAtRest"]["enabled"] is False


@pytest.mark.scenario("cross_account")
def test_a_cross_account_key_loses_only_the_collections_statement_in_its_own_account(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["cross"]
    key = bed.keys["main"]["arn"]
    cross = cross_account_project(bed, cmk_atlas_kms_key=key, cmk_atlas_clusters=["Cluster0"], **FAST)
    run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({"cross": cross})).assert_ok()
    kms = bed.aws_client("kms", account="K")
    role_arn = bed.aws_client("iam").get_role(RoleName="atlas-kms-cross")["Role"]["Arn"]
    before = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    assert sid_of(role_arn) in [statement.get("Sid") for statement in before["Statement"]]

    inventory = write_inventory({"cross": dict(cross, cmk_atlas_confirm_disable=True, cmk_atlas_remove_access=True)})
    bed.clear_logs()
    check = run_playbook(DISABLE, env=testbed_env, inventory=inventory, check=True).assert_ok().task(TASK)
    assert successful_writes(bed) == []
    run = run_playbook(DISABLE, env=testbed_env, inventory=inventory).assert_ok().task(TASK)
    assert run["changes"] == check["changes"]
    assert run["removed_access"]["key_policy_statement"] == sid_of(role_arn)
    after = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    assert after["Statement"] == [statement for statement in before["Statement"] if statement.get("Sid") != sid_of(role_arn)]
    assert "atlas-kms-cross" not in [role["RoleName"] for role in bed.aws_client("iam").list_roles()["Roles"]]
    assert bed.atlas.project_state(group)["encryptionAtRest"]["enabled"] is False

    bed.clear_logs()
    assert run_playbook(DISABLE, env=testbed_env, inventory=inventory).assert_ok().task(TASK)["changes"] == []
    assert successful_writes(bed) == []
