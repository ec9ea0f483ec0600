"""Crash and resume: a run of cmk.atlas.enable broken at one step, then a clean re-run, converges with
exactly one Atlas role and one IAM role. Cross-account scenario, so that every step writes."""

import pytest

from .conftest import SUMMARY_TASK, successful_writes

pytestmark = [pytest.mark.integration, pytest.mark.scenario("cross_account")]

PLAYBOOK = "cmk.atlas.enable"
ROLE_NAME = "atlas-kms-cross"
# cmk.atlas.key_access: the Atlas role, the IAM role (trust, tags, inline KMS policy), the key policy and the authorization, in one task.
ACCESS = "Let Atlas reach the key through the IAM role"
EAR = "cmk.atlas.encryption_at_rest : Ensure the project encrypts at rest with the key through the Atlas role"
CLUSTERS = "cmk.atlas.encryption_at_rest : Encrypt the clusters with the key"

# (system, operation, the task that fails, how the re-run's key_access finds the Atlas role). Atlas answers 503
# more often than the one retry allowed; AWS answers AccessDenied, which is not retried. The key owner's role is
# assumed to read the key before anything is written; a failure after the Atlas role was created leaves that
# role unauthorized ("unused_role"), one after the authorization leaves it authorized for the IAM role ("iam_role_arn").
FAULTS = [
    ("atlas", "createGroupCloudProviderAccess", ACCESS, "created"),
    ("aws", "AssumeRole", ACCESS, "created"),
    ("aws", "CreateRole", ACCESS, "unused_role"),
    ("aws", "PutRolePolicy", ACCESS, "unused_role"),
    ("aws", "PutKeyPolicy", ACCESS, "unused_role"),
    ("atlas", "authorizeGroupCloudProviderAccessRole", ACCESS, "unused_role"),
    ("atlas", "updateGroupEncryptionAtRest", EAR, "iam_role_arn"),
    ("atlas", "updateGroupCluster", CLUSTERS, "iam_role_arn"),
]


def inventory_of(bed, write_inventory, **variables):
    return write_inventory(
        {
            "cross": {
                "cmk_atlas_project_id": bed.projects["cross"],
                "cmk_atlas_iam_role_name": ROLE_NAME,
                "cmk_atlas_kms_key": bed.keys["main"]["arn"],
                "cmk_atlas_key_owner_role_arn": bed.roles["key_admin"]["arn"],
                "cmk_atlas_clusters": ["Cluster0"],
                "cmk_atlas_connection": {"retries": 1, "timeout": 10},
                "cmk_atlas_authorize_timeout": 5,
                "cmk_atlas_valid_timeout": 5,
                "encryption_at_rest_cluster_poll_interval": 0.1,
                "encryption_at_rest_cluster_wait_timeout": 60,
                **variables,
            }
        }
    )


@pytest.mark.parametrize(("system", "operation", "failing_task", "reused_by"), FAULTS, ids=[operation for _s, operation, _t, _r in FAULTS])
def test_a_run_broken_at_any_step_is_resumed_by_a_clean_rerun(
    run_playbook, clean_testbed, testbed_env, write_inventory, system, operation, failing_task, reused_by
):
    bed = clean_testbed
    group = bed.projects["cross"]
    key = bed.keys["main"]
    inventory = inventory_of(bed, write_inventory)
    if system == "atlas":
        bed.atlas.inject_fault(operation, status=503, count=2)
    else:
        bed.proxy.fail(operation, "access_denied", count=1)

    bed.clear_logs()
    broken = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    assert broken.rc != 0
    assert broken.failed_tasks() == [failing_task], broken.output[-3000:]
    if system == "atlas":
        assert [entry["status"] for entry in bed.atlas.request_log() if entry["operation_id"] == operation] == [503, 503]
    else:
        assert bed.proxy.faults() == []
        assert "AccessDenied" in broken.task(failing_task)["msg"]
    # The Atlas role the broken run left behind, if any: key_access's failure names the one it created.
    left = bed.atlas.project_state(group)["roles"]
    assert len(left) == (0 if reused_by == "created" else 1)
    if failing_task == ACCESS and left:
        failure = broken.task(ACCESS)
        assert (failure["role_id"], failure["external_id"]) == (left[0]["roleId"], left[0]["atlasAssumedRoleExternalId"])
    if reused_by == "created":  # nothing was written (the injected answers aside)
        assert [call for call in bed.write_calls() if call["status"] < 400] == []

    bed.clear_logs()
    resumed = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    summary = resumed.task(SUMMARY_TASK)["msg"]
    assert (summary["access_method"], summary["valid"], summary["key"], summary["clusters"]) == ("role", True, key["arn"], {"Cluster0": "AWS"})
    # The re-run reuses the Atlas role the broken run created, found as its position in the run says.
    access = resumed.task(ACCESS)
    assert access["reused_by"] == reused_by
    assert [role["roleId"] for role in left] in ([], [access["role_id"]])
    # Encryption at rest already in place (the clusters' step broke) is not made again.
    assert access["encryption_at_rest_in_place"] is (failing_task == CLUSTERS)
    assert [r["status"] for r in resumed.results if r["task"] == EAR] == ["skipped" if failing_task == CLUSTERS else "ok"]
    # Exactly one Atlas role and one IAM role, paired with each other.
    state = bed.atlas.project_state(group)
    (role,) = state["roles"]
    assert (role["roleId"], role["iamAssumedRoleArn"], role["inUse"]) == (summary["atlas_role_id"], summary["iam_role_arn"], True)
    assert [r["RoleName"] for r in bed.aws_client("iam").list_roles()["Roles"]] == [ROLE_NAME]
    assert state["encryptionAtRest"]["roleId"] == role["roleId"]
    assert (("atlas", "createGroupCloudProviderAccess") in successful_writes(bed)) is (reused_by == "created")


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
                "cmk_atlas_authorize_timeout": 60,
            }
        }
    )
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    assert run.task(SUMMARY_TASK)["msg"]["valid"] is True
    assert run.task(ACCESS)["authorized"] is True
    answers = [
        (entry["status"], entry["error_code"])
        for entry in bed.atlas.request_log()
        if entry["operation_id"] == "authorizeGroupCloudProviderAccessRole" and entry["status"] != 401
    ]
    assert answers[0] == (400, "CANNOT_ASSUME_ROLE") and answers[-1][0] == 200
    assert len(bed.atlas.project_state(bed.projects["empty"])["roles"]) == 1


@pytest.mark.scenario("empty")
def test_authorize_timeout_of_the_playbook_bounds_the_wait(run_playbook, clean_testbed, testbed_env, write_inventory):
    """cmk_atlas_authorize_timeout reaches key_access: 0 tries once, so IAM propagation fails the run; a re-run reuses the role."""
    bed = clean_testbed
    bed.atlas.set_propagation_delay(30)
    variables = {
        "cmk_atlas_project_id": bed.projects["empty"],
        "cmk_atlas_iam_role_name": "atlas-kms-empty",
        "cmk_atlas_kms_key": bed.keys["main"]["alias"],
        "cmk_atlas_authorize_timeout": 0,
    }
    broken = run_playbook(PLAYBOOK, env=testbed_env, inventory=write_inventory({"empty": variables}))
    assert broken.rc != 0
    assert broken.failed_tasks() == [ACCESS]
    assert "CANNOT_ASSUME_ROLE" in broken.task(ACCESS)["msg"]
    answers = [
        entry["status"] for entry in bed.atlas.request_log() if entry["operation_id"] == "authorizeGroupCloudProviderAccessRole" and entry["status"] != 401
    ]
    assert answers == [400]
    (role,) = bed.atlas.project_state(bed.projects["empty"])["roles"]
    assert not role["authorized"]

    bed.atlas.set_propagation_delay(0)
    resumed = run_playbook(PLAYBOOK, env=testbed_env, inventory=write_inventory({"empty": dict(variables, cmk_atlas_authorize_timeout=60)})).assert_ok()
    assert (resumed.task(ACCESS)["reused_by"], resumed.task(ACCESS)["role_id"]) == ("unused_role", role["roleId"])
    assert resumed.task(SUMMARY_TASK)["msg"]["valid"] is True
