"""Crash and resume: a run of cmk.atlas.enable broken at one step, then a clean re-run, converges with
exactly one Atlas role and one IAM role. Cross-account scenario, so that every step writes."""

import pytest

from .conftest import SUMMARY_TASK, successful_writes

pytestmark = [pytest.mark.integration, pytest.mark.scenario("cross_account")]

PLAYBOOK = "cmk.atlas.enable"
ROLE_NAME = "atlas-kms-cross"
CPA = "cmk.atlas.iam_access : Ensure the project's Atlas cloud provider access role"
TRUST = "cmk.atlas.iam_access : Ensure the IAM role trusts Atlas with the role's external ID"
AUTHORIZE = "cmk.atlas.iam_access : Authorize the Atlas role for the IAM role"
KEY_POLICY = "cmk.atlas.kms_access : Ensure the key policy lets the IAM role use the key, where it does not already"
INLINE = "cmk.atlas.kms_access : Ensure the IAM role's inline policy grants the key"
EAR = "cmk.atlas.encryption_at_rest : Ensure the project encrypts at rest with the key through the Atlas role"
CLUSTERS = "cmk.atlas.encryption_at_rest : Encrypt the clusters with the key"

# (system, operation, the task that fails). Atlas answers 503 more often than the one retry allowed;
# AWS answers AccessDenied, which is not retried.
FAULTS = [
    ("atlas", "createGroupCloudProviderAccess", CPA),
    ("aws", "CreateRole", TRUST),
    ("atlas", "authorizeGroupCloudProviderAccessRole", AUTHORIZE),
    ("aws", "AssumeRole", KEY_POLICY),
    ("aws", "PutKeyPolicy", KEY_POLICY),
    ("aws", "PutRolePolicy", INLINE),
    ("atlas", "updateGroupEncryptionAtRest", EAR),
    ("atlas", "updateGroupCluster", CLUSTERS),
]


@pytest.mark.parametrize(("system", "operation", "failing_task"), FAULTS, ids=[operation for _s, operation, _t in FAULTS])
def test_a_run_broken_at_any_step_is_resumed_by_a_clean_rerun(run_playbook, clean_testbed, testbed_env, write_inventory, system, operation, failing_task):
    bed = clean_testbed
    group = bed.projects["cross"]
    key = bed.keys["main"]
    inventory = write_inventory(
        {
            "cross": {
                "cmk_atlas_project_id": group,
                "cmk_atlas_iam_role_name": ROLE_NAME,
                "cmk_atlas_kms_key": key["arn"],
                "cmk_atlas_key_owner_role_arn": bed.roles["key_admin"]["arn"],
                "cmk_atlas_clusters": ["Cluster0"],
                "cmk_atlas_connection": {"retries": 1, "timeout": 10},
                "iam_access_authorize_timeout": 5,
                "encryption_at_rest_valid_timeout": 5,
                "encryption_at_rest_cluster_poll_interval": 0.1,
                "encryption_at_rest_cluster_wait_timeout": 60,
            }
        }
    )
    if system == "atlas":
        bed.atlas.inject_fault(operation, status=503, count=2)
    else:
        bed.proxy.fail(operation, "access_denied", count=1)

    broken = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    assert broken.rc != 0
    assert broken.failed_tasks() == [failing_task], broken.output[-3000:]
    if system == "atlas":
        assert [entry["status"] for entry in bed.atlas.request_log() if entry["operation_id"] == operation] == [503, 503]
    else:
        assert bed.proxy.faults() == []
        assert "AccessDenied" in broken.task(failing_task)["msg"]

    bed.clear_logs()
    resumed = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    summary = resumed.task(SUMMARY_TASK)["msg"]
    assert (summary["access_method"], summary["valid"], summary["key"], summary["clusters"]) == ("role", True, key["arn"], {"Cluster0": "AWS"})
    # Exactly one Atlas role and one IAM role, paired with each other.
    state = bed.atlas.project_state(group)
    (role,) = state["roles"]
    assert (role["roleId"], role["iamAssumedRoleArn"], role["inUse"]) == (summary["atlas_role_id"], summary["iam_role_arn"], True)
    assert [r["RoleName"] for r in bed.aws_client("iam").list_roles()["Roles"]] == [ROLE_NAME]
    assert state["encryptionAtRest"]["roleId"] == role["roleId"]
    assert ("atlas", "createGroupCloudProviderAccess") not in successful_writes(bed) or operation == "createGroupCloudProviderAccess"


@pytest.mark.scenario("empty")
def test_iam_propagation_is_waited_out_within_one_run(run_playbook, clean_testbed, testbed_env, write_inventory):
    """Right after the IAM role is created Atlas cannot assume it yet: the run waits, then goes on, in one run."""
    bed = clean_testbed
    bed.atlas.set_propagation_delay(4)
    inventory = write_inventory(
        {
            "empty": {
                "cmk_atlas_project_id": bed.projects["empty"],
                "cmk_atlas_iam_role_name": "atlas-kms-empty",
                "cmk_atlas_kms_key": bed.keys["main"]["alias"],
                "iam_access_authorize_timeout": 60,
            }
        }
    )
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    assert run.task(SUMMARY_TASK)["msg"]["valid"] is True
    answers = [
        (entry["status"], entry["error_code"])
        for entry in bed.atlas.request_log()
        if entry["operation_id"] == "authorizeGroupCloudProviderAccessRole" and entry["status"] != 401
    ]
    assert answers[0] == (400, "CANNOT_ASSUME_ROLE") and answers[-1][0] == 200
    assert len(bed.atlas.project_state(bed.projects["empty"])["roles"]) == 1
