"""Crash and resume: a run of cmk.atlas.enable broken at one step, then a clean re-run, converges with
exactly one Atlas role and one IAM role. Cross-account scenario, so that every step writes."""

import pytest

from .conftest import SUMMARY_TASK, successful_writes

pytestmark = [pytest.mark.integration, pytest.mark.scenario("cross_account")]

PLAYBOOK = "cmk.atlas.enable"
ROLE_NAME = "atlas-kms-cross"
# cmk.atlas.key_management: every resource read once, then the writes in this order, in one task.
TASK = "cmk.atlas.enable : Plan and apply customer key management for the project"
ATLAS_ROLE, IAM_ROLE, KEY_POLICY, AUTHORIZE, ENCRYPTION, CLUSTERS = (
    "create an Atlas cloud provider access role",
    "IAM role",
    "put key-policy statement",
    "authorize Atlas role",
    "set encryption at rest",
    "set encryptionAtRestProvider AWS on Cluster0",
)
STEPS = [ATLAS_ROLE, IAM_ROLE, KEY_POLICY, AUTHORIZE, ENCRYPTION, CLUSTERS]

# (system, operation, the write that fails or None for a read, how the re-run finds the Atlas role). Atlas answers
# 503 more often than the one retry allowed; AWS answers AccessDenied, which is not retried. The key owner's role
# is assumed to read the key before anything is written; a failure after the Atlas role was created leaves that
# role unauthorized: before the IAM role exists the re-run finds it as the unused one ("unused_role"), once the IAM
# role's trust names it as the one that trust names ("external_id"); after the authorization it is authorized for the
# IAM role ("iam_role_arn").
FAULTS = [
    ("atlas", "createGroupCloudProviderAccess", ATLAS_ROLE, "created"),
    ("aws", "AssumeRole", None, "created"),
    ("aws", "CreateRole", IAM_ROLE, "unused_role"),
    ("aws", "PutRolePolicy", IAM_ROLE, "external_id"),
    ("aws", "PutKeyPolicy", KEY_POLICY, "external_id"),
    ("atlas", "authorizeGroupCloudProviderAccessRole", AUTHORIZE, "external_id"),
    ("atlas", "updateGroupEncryptionAtRest", ENCRYPTION, "iam_role_arn"),
    ("atlas", "updateGroupCluster", CLUSTERS, "iam_role_arn"),
]


def kind(change):
    """Which of STEPS a change description is."""
    (found,) = [step for step in STEPS if change.startswith(step) or (step == IAM_ROLE and change.startswith(("create IAM role", "update IAM role")))]
    return found


def writes_made(message):
    """The writes an ApplyError message lists as made before the failure ("; " also separates an IAM role's actions, in parentheses)."""
    made = message.split("Writes made before it in this run: ", 1)[1].split(". Run again to continue from there", 1)[0]
    changes, depth, start = [], 0, 0
    for index, char in enumerate(made):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and made.startswith("; ", index):
            changes.append(made[start:index])
            start = index + 2
    return [*changes, made[start:]]


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
                "cmk_atlas_cluster_timeout": 60,
                **variables,
            }
        }
    )


@pytest.mark.parametrize(("system", "operation", "failing_step", "reused_by"), FAULTS, ids=[operation for _s, operation, _t, _r in FAULTS])
def test_a_run_broken_at_any_step_is_resumed_by_a_clean_rerun(
    run_playbook, clean_testbed, testbed_env, write_inventory, system, operation, failing_step, reused_by
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
    assert broken.failed_tasks() == [TASK], broken.output[-3000:]
    assert SUMMARY_TASK not in [r["task"] for r in broken.results]
    message = broken.task(TASK)["msg"]
    if system == "atlas":
        assert [entry["status"] for entry in bed.atlas.request_log() if entry["operation_id"] == operation] == [503, 503]
    else:
        assert bed.proxy.faults() == []
        assert "AccessDenied" in message
    # The failure names the write that failed and every write made before it, in order; a re-run continues from there.
    done = STEPS[: STEPS.index(failing_step)] if failing_step else []
    if failing_step:
        failed, _sep, rest = message.partition(" failed: ")
        assert kind(failed) == failing_step, message
        if done:
            assert [kind(change) for change in writes_made(rest)] == done, message
        else:
            assert "Writes made before it in this run: none. Nothing was written." in message, message
    # The Atlas role the broken run left behind, if any.
    left = bed.atlas.project_state(group)["roles"]
    assert len(left) == (0 if reused_by == "created" else 1)
    if reused_by == "created":  # nothing was written (the injected answers aside)
        assert [call for call in bed.write_calls() if call["status"] < 400] == []

    bed.clear_logs()
    resumed = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    summary = resumed.task(SUMMARY_TASK)["msg"]
    assert (summary["access_method"], summary["valid"], summary["key"], summary["clusters"]) == ("role", True, key["arn"], {"Cluster0": "AWS"})
    # The re-run reuses the Atlas role the broken run created, found as its position in the run says.
    access = resumed.task(TASK)
    assert access["reused_by"] == reused_by
    assert access["created_atlas_role"] is (reused_by == "created")
    assert [role["roleId"] for role in left] in ([], [access["role_id"]])
    # The re-run makes only the writes the broken run did not make: what is in place is kept (encryption at rest
    # set before the clusters' step broke is not set again).
    assert [kind(change) for change in access["changes"]] == STEPS[len(done) :]
    assert access["encryption_at_rest_before"]["access_method"] == ("role" if failing_step == CLUSTERS else "none")
    # Exactly one Atlas role and one IAM role, paired with each other.
    state = bed.atlas.project_state(group)
    (role,) = state["roles"]
    assert (role["roleId"], role["iamAssumedRoleArn"], role["inUse"]) == (summary["atlas_role_id"], summary["iam_role_arn"], True)
    assert [r["RoleName"] for r in bed.aws_client("iam").list_roles()["Roles"]] == [ROLE_NAME]
    assert state["encryptionAtRest"]["roleId"] == role["roleId"]
    assert (("atlas", "createGroupCloudProviderAccess") in successful_writes(bed)) is (reused_by == "created")
    assert (("atlas", "updateGroupEncryptionAtRest") in successful_writes(bed)) is (failing_step != CLUSTERS)


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
    summary = run.task(SUMMARY_TASK)["msg"]
    assert summary["valid"] is True
    assert [kind(change) for change in summary["changes"]] == [ATLAS_ROLE, IAM_ROLE, AUTHORIZE, ENCRYPTION]
    answers = [
        (entry["status"], entry["error_code"])
        for entry in bed.atlas.request_log()
        if entry["operation_id"] == "authorizeGroupCloudProviderAccessRole" and entry["status"] != 401
    ]
    assert answers[0] == (400, "CANNOT_ASSUME_ROLE") and answers[-1][0] == 200
    (role,) = bed.atlas.project_state(bed.projects["empty"])["roles"]
    assert (role["authorized"], role["roleId"], role["iamAssumedRoleArn"]) == (True, summary["atlas_role_id"], summary["iam_role_arn"])


@pytest.mark.scenario("empty")
def test_authorize_timeout_of_the_playbook_bounds_the_wait(run_playbook, clean_testbed, testbed_env, write_inventory):
    """cmk_atlas_authorize_timeout reaches the module: 0 tries once, so IAM propagation fails the run; a re-run reuses the role."""
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
    assert broken.failed_tasks() == [TASK]
    message = broken.task(TASK)["msg"]
    assert "CANNOT_ASSUME_ROLE" in message
    assert message.startswith("authorize Atlas role") and "Run again to continue" in message, message
    answers = [
        entry["status"] for entry in bed.atlas.request_log() if entry["operation_id"] == "authorizeGroupCloudProviderAccessRole" and entry["status"] != 401
    ]
    assert answers == [400]
    (role,) = bed.atlas.project_state(bed.projects["empty"])["roles"]
    assert not role["authorized"]

    bed.atlas.set_propagation_delay(0)
    bed.clear_logs()
    resumed = run_playbook(PLAYBOOK, env=testbed_env, inventory=write_inventory({"empty": dict(variables, cmk_atlas_authorize_timeout=60)})).assert_ok()
    assert (resumed.task(TASK)["reused_by"], resumed.task(TASK)["role_id"]) == ("external_id", role["roleId"])
    assert [kind(change) for change in resumed.task(TASK)["changes"]] == [AUTHORIZE, ENCRYPTION]
    assert ("atlas", "createGroupCloudProviderAccess") not in successful_writes(bed)
    assert resumed.task(SUMMARY_TASK)["msg"]["valid"] is True
