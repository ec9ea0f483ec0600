"""cmk.atlas.switch end to end: from an access key to an IAM role, against the Atlas emulator and moto.

One module run per project (cmk.atlas.key_management, procedure switch) reads every resource once, judges
the planned state and refuses an unconfirmed switch before the first write."""

import pytest

from .conftest import UNKNOWN, matches_prediction, successful_writes

pytestmark = [pytest.mark.integration, pytest.mark.scenario("demo")]

PLAYBOOK = "cmk.atlas.switch"
ROLE_NAME = "atlas-kms-legacy-role"
TASK = "cmk.atlas.switch : Plan and apply customer key management for the project"
SUMMARY_TASK = "cmk.atlas.switch : Summarize the project"
# What a switch writes, in this order within each system: the Atlas role, its authorization and encryption at
# rest through it; the IAM role (trusting the Atlas role's external ID) and its inline KMS policy. The key policy
# of a key in the IAM role's own account already delegates to IAM, so it is not written.
ATLAS_SWITCH_WRITES = [
    ("atlas", "createGroupCloudProviderAccess"),
    ("atlas", "authorizeGroupCloudProviderAccessRole"),
    ("atlas", "updateGroupEncryptionAtRest"),
]
AWS_SWITCH_WRITES = [("aws", "CreateRole"), ("aws", "PutRolePolicy")]
FAST = {"cmk_atlas_connection": {"retries": 1}, "cmk_atlas_authorize_timeout": 5, "cmk_atlas_valid_timeout": 5}
CONFIRM_WARNING = "The real run stops before any write unless cmk_atlas_confirm_switch is true."


def legacy(bed, **variables):
    """The project that reaches its key with the access key of IAM user atlas-kms-legacy: only the project and the IAM role are given."""
    return {"legacy": {"cmk_atlas_project_id": bed.projects["legacy"], "cmk_atlas_iam_role_name": ROLE_NAME, **FAST, **variables}}


def legacy_key_status(bed):
    (key,) = bed.aws_client("iam").list_access_keys(UserName="atlas-kms-legacy")["AccessKeyMetadata"]
    return key["AccessKeyId"], key["Status"]


def planned_switch(group, access_key_id, deactivate=False):
    """The writes a switch of ``group`` makes, in order (the Atlas role's id is not known before it exists)."""
    changes = [
        f"create an Atlas cloud provider access role in project {group}",
        f"create IAM role {ROLE_NAME} (",
        "authorize Atlas role ",
        f"switch encryption at rest of project {group} (",
    ]
    if deactivate:
        changes.append(f"deactivate the previous access key {access_key_id}")
    return changes


def assert_changes(changes, expected_prefixes):
    assert len(changes) == len(expected_prefixes), changes
    for change, prefix in zip(changes, expected_prefixes):
        assert change.startswith(prefix), (change, prefix)


def test_switch_shows_itself_in_check_mode_refuses_without_confirmation_then_switches_once(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["legacy"]
    before = bed.atlas.project_state(group)
    assert before["encryptionAtRest"]["credentialsStored"]
    key_id = before["encryptionAtRest"]["customerMasterKeyID"]
    role_arn = f"arn:aws:iam::{bed.accounts['R']}:role/{ROLE_NAME}"

    # Check mode shows the whole switch, confirmed or not, and writes nothing; unconfirmed, it warns that the real run stops.
    for confirm in (False, True):
        bed.clear_logs()
        inventory = write_inventory(legacy(bed, cmk_atlas_confirm_switch=confirm))
        check = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, check=True, diff=True).assert_ok()
        assert check.changed_tasks() == [TASK]
        result = check.task(TASK)
        assert_changes(result["changes"], planned_switch(group, bed.legacy_access_key_id))
        # Nothing exists yet: a new Atlas role (whose id Atlas has not chosen) for a new IAM role, the key Atlas has.
        assert (result["reused_by"], result["role_id"], result["external_id"], result["created_atlas_role"]) == ("created", UNKNOWN, UNKNOWN, True)
        assert result["iam_role_arn"] == role_arn
        assert (result["key_arn"], result["key_region"]) == (bed.keys["main"]["arn"], "us-east-1")
        assert result["encryption_at_rest_before"]["access_method"] == "credentials"
        assert result["encryption_at_rest_before"]["access_key_id"] == bed.legacy_access_key_id
        assert (result["encryption_at_rest"]["access_method"], result["encryption_at_rest"]["role_id"]) == ("role", UNKNOWN)
        assert (result["switched"], result["deactivated_access_key"]) == (True, None)
        warned = any(CONFIRM_WARNING in warning for warning in result.get("warnings", []))
        assert warned is not confirm, result.get("warnings")
        assert '-    "access_method": "credentials",' in check.output and '+    "access_method": "role",' in check.output
        assert successful_writes(bed) == []
        assert legacy_key_status(bed) == (bed.legacy_access_key_id, "Active")
    predicted = check.task(SUMMARY_TASK)["msg"]
    planned = check.task(TASK)["changes"]
    assert (predicted["switched"], predicted["key"], predicted["region"], predicted["access_method"]) == (True, bed.keys["main"]["arn"], "us-east-1", "role")
    # Check mode cannot know whether Atlas will find the key valid through a role that does not exist yet.
    assert predicted["valid"] is None
    assert bed.atlas.project_state(group) == before

    # Without the confirmation the real run stops before any write, and says why.
    bed.clear_logs()
    inventory = write_inventory(legacy(bed))
    refused = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    assert refused.rc != 0
    assert refused.failed_tasks() == [TASK]
    message = refused.task(TASK)["msg"]
    assert f"cmk.atlas.switch of project {group}: 1 problem found before any write, so nothing was written." in message
    assert "(1) cmk_atlas_confirm_switch:" in message and "cannot undo this switch" in message
    assert "cmk_atlas_confirm_switch: true" in message and "--check --diff" in message
    assert SUMMARY_TASK not in [r["task"] for r in refused.results]
    assert bed.write_calls() == []
    assert bed.atlas.project_state(group) == before
    assert bed.aws_client("iam").list_roles()["Roles"] == []

    # Confirmed (as -e gives it, a string): the switch, as predicted, keeping the key and region Atlas had.
    bed.clear_logs()
    inventory = write_inventory(legacy(bed, cmk_atlas_confirm_switch="true"))
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, diff=True).assert_ok()
    assert run.changed_tasks() == [TASK]
    result = run.task(TASK)
    assert matches_prediction(planned, result["changes"]), (planned, result["changes"])
    assert not any(CONFIRM_WARNING in warning for warning in result.get("warnings", []))
    applied = run.task(SUMMARY_TASK)["msg"]
    assert matches_prediction(dict(predicted, check_mode=False, valid=True), applied), (predicted, applied)
    after = bed.atlas.project_state(group)
    (role,) = after["roles"]
    ear = after["encryptionAtRest"]
    # Atlas keeps the key reference it had (the key id), and the region.
    assert (ear["enabled"], ear["roleId"], ear["customerMasterKeyID"], ear["region"]) == (True, role["roleId"], key_id, "US_EAST_1")
    assert not ear["credentialsStored"] and ear["roleBasedOnly"]
    assert role["iamAssumedRoleArn"] == applied["iam_role_arn"] == role_arn
    assert applied["atlas_role_id"] == role["roleId"] and result["role_id"] == role["roleId"]
    assert result["encryption_at_rest"]["access_method"] == "role" and result["encryption_at_rest"]["valid"] is True
    assert result["encryption_at_rest_before"]["access_method"] == "credentials"
    assert after["clusters"] == before["clusters"]
    assert applied["clusters"] == {"Orders": "AWS", "Archive": "AWS"}
    writes = successful_writes(bed)
    assert [call for call in writes if call[0] == "atlas"] == ATLAS_SWITCH_WRITES
    assert [call for call in writes if call[0] == "aws"] == AWS_SWITCH_WRITES
    # Without cmk_atlas_deactivate_previous_access_key the old access key stays as it is.
    assert (applied["deactivated_access_key"], legacy_key_status(bed)) == (None, (bed.legacy_access_key_id, "Active"))

    # Converged: the re-run finds everything in place, reads each Atlas resource once and writes nothing.
    bed.clear_logs()
    rerun = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, verbosity=3).assert_ok()
    assert rerun.changed_tasks() == []
    assert bed.write_calls() == []
    result = rerun.task(TASK)
    assert (result["changes"], result["reused_by"], result["switched"], result["created_atlas_role"]) == ([], "iam_role_arn", False, False)
    assert result["encryption_at_rest_before"]["access_method"] == "role"
    reads = [entry["operation_id"] for entry in bed.atlas.request_log() if entry["status"] != 401]
    for operation in ("listGroupCloudProviderAccess", "getGroupEncryptionAtRest"):
        assert reads.count(operation) == 1, reads
    # The summary is the applied one, but nothing switched this time; the clusters still encrypt with AWS.
    assert rerun.task(SUMMARY_TASK)["msg"] == dict(applied, switched=False, changes=[])
    assert {name: cluster["encryptionAtRestProvider"] for name, cluster in bed.atlas.project_state(group)["clusters"].items()} == applied["clusters"]
    assert bed.api_key["private_key"] not in rerun.output


def test_switch_deactivates_the_previous_access_key_when_asked(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["legacy"]
    inventory = write_inventory(legacy(bed, cmk_atlas_confirm_switch=True, cmk_atlas_deactivate_previous_access_key=True))

    # Check mode names the access key it would deactivate, last, and leaves it active.
    bed.clear_logs()
    check = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, check=True).assert_ok()
    result = check.task(TASK)
    assert_changes(result["changes"], planned_switch(group, bed.legacy_access_key_id, deactivate=True))
    assert (result["switched"], result["deactivated_access_key"]) == (True, bed.legacy_access_key_id)
    assert successful_writes(bed) == []
    assert legacy_key_status(bed) == (bed.legacy_access_key_id, "Active")

    bed.clear_logs()
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    result = run.task(TASK)
    assert (result["switched"], result["deactivated_access_key"]) == (True, bed.legacy_access_key_id)
    assert result["changes"][-1] == f"deactivate the previous access key {bed.legacy_access_key_id}"
    assert legacy_key_status(bed) == (bed.legacy_access_key_id, "Inactive")
    # The access key is deactivated after Atlas reports the key valid through the role, and only deactivated (not deleted).
    aws_writes = [call for call in successful_writes(bed) if call[0] == "aws"]
    assert aws_writes == [*AWS_SWITCH_WRITES, ("aws", "UpdateAccessKey")], aws_writes
    summary = run.task(SUMMARY_TASK)["msg"]
    assert (summary["valid"], summary["deactivated_access_key"]) == (True, bed.legacy_access_key_id)

    # Converged: the key is already inactive and the project switched, so nothing is written.
    bed.clear_logs()
    rerun = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    assert rerun.changed_tasks() == []
    assert (rerun.task(TASK)["changes"], rerun.task(TASK)["deactivated_access_key"]) == ([], None)
    assert bed.write_calls() == []


def test_switch_on_a_project_without_encryption_at_rest_points_to_enable(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    plain = {"cmk_atlas_project_id": bed.projects["plain"], "cmk_atlas_iam_role_name": ROLE_NAME, "cmk_atlas_confirm_switch": True}
    inventory = write_inventory({"plain": plain})
    for check in (True, False):
        bed.clear_logs()
        run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, check=check)
        assert run.rc != 0
        # The module refuses the project before it writes anything, in check mode too.
        assert run.failed_tasks() == [TASK]
        message = run.task(TASK)["msg"]
        assert "no encryption at rest with AWS KMS, so there is nothing to switch" in message
        assert "cmk.atlas.enable" in message and "nothing was written" in message
        assert SUMMARY_TASK not in [r["task"] for r in run.results]
        assert bed.write_calls() == []
    assert bed.atlas.project_state(bed.projects["plain"])["roles"] == []
    assert bed.aws_client("iam").list_roles()["Roles"] == []


def test_a_switch_broken_before_the_last_step_is_resumed_with_one_role(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["legacy"]
    inventory = write_inventory(legacy(bed, cmk_atlas_confirm_switch=True))
    # The PATCH is idempotent, so the client repeats it once after a 500 (retries: 1): both attempts fail.
    bed.atlas.inject_fault("updateGroupEncryptionAtRest", status=500, count=2)
    broken = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    assert broken.rc != 0
    assert broken.failed_tasks() == [TASK]
    message = broken.task(TASK)["msg"]
    assert f"switch encryption at rest of project {group}" in message
    assert "Writes made before it in this run: create an Atlas cloud provider access role" in message
    assert f"create IAM role {ROLE_NAME}" in message and "authorize Atlas role" in message
    assert "Run again to continue" in message
    assert bed.atlas.project_state(group)["encryptionAtRest"]["credentialsStored"]

    bed.clear_logs()
    resumed = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    result = resumed.task(TASK)
    assert (result["reused_by"], result["created_atlas_role"], result["switched"]) == ("iam_role_arn", False, True)
    assert result["encryption_at_rest_before"]["access_method"] == "credentials"
    assert_changes(result["changes"], [f"switch encryption at rest of project {group} ("])
    # Only the step that broke is made again.
    assert successful_writes(bed) == [("atlas", "updateGroupEncryptionAtRest")]
    state = bed.atlas.project_state(group)
    (role,) = state["roles"]
    assert state["encryptionAtRest"]["roleId"] == role["roleId"] and not state["encryptionAtRest"]["credentialsStored"]
    assert [r["RoleName"] for r in bed.aws_client("iam").list_roles()["Roles"]] == [ROLE_NAME]
    assert resumed.task(SUMMARY_TASK)["msg"]["valid"] is True
