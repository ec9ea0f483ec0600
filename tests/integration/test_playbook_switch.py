"""cmk.atlas.switch end to end: from an access key to an IAM role, against the Atlas emulator and moto."""

import pytest

from .conftest import SUMMARY_TASK, UNKNOWN, matches_prediction, successful_writes

pytestmark = [pytest.mark.integration, pytest.mark.scenario("demo")]

PLAYBOOK = "cmk.atlas.switch"
ROLE_NAME = "atlas-kms-legacy-role"
EAR_TASK = "cmk.atlas.encryption_at_rest : Ensure the project encrypts at rest with the key through the Atlas role"
CONFIRM_TASK = "Stop unless the switch is confirmed"
SWITCH_CHANGES = [
    "cmk.atlas.iam_access : Ensure the project's Atlas cloud provider access role",
    "cmk.atlas.iam_access : Ensure the IAM role trusts Atlas with the role's external ID",
    "cmk.atlas.iam_access : Authorize the Atlas role for the IAM role",
    "cmk.atlas.kms_access : Ensure the IAM role's inline policy grants the key",
    EAR_TASK,
]
FAST = {"cmk_atlas_connection": {"retries": 1}, "iam_access_authorize_timeout": 5, "encryption_at_rest_valid_timeout": 5}


def legacy(bed, **variables):
    """The project that reaches its key with the access key of IAM user atlas-kms-legacy: only the project and the IAM role are given."""
    return {"legacy": {"cmk_atlas_project_id": bed.projects["legacy"], "cmk_atlas_iam_role_name": ROLE_NAME, **FAST, **variables}}


def legacy_key_status(bed):
    (key,) = bed.aws_client("iam").list_access_keys(UserName="atlas-kms-legacy")["AccessKeyMetadata"]
    return key["AccessKeyId"], key["Status"]


def test_switch_shows_itself_in_check_mode_refuses_without_confirmation_then_switches_once(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["legacy"]
    before = bed.atlas.project_state(group)
    assert before["encryptionAtRest"]["credentialsStored"]
    key_id = before["encryptionAtRest"]["customerMasterKeyID"]

    # Check mode shows the whole switch, confirmed or not, and writes nothing.
    for confirm in (False, True):
        bed.clear_logs()
        inventory = write_inventory(legacy(bed, cmk_atlas_confirm_switch=confirm))
        check = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, check=True, diff=True).assert_ok()
        assert check.changed_tasks() == SWITCH_CHANGES
        ear = check.task(EAR_TASK)
        assert ear["switched_to_role"] is True
        assert ear["previous_access_key_id"] == bed.legacy_access_key_id
        assert (ear["encryption_at_rest"]["access_method"], ear["encryption_at_rest"]["role_id"]) == ("role", UNKNOWN)
        (notice,) = [r for r in check.results if r["task"] == "Say that the real run needs the confirmation"]
        assert notice["status"] == ("skipped" if confirm else "ok")
        assert '-    "access_method": "credentials",' in check.output and '+    "access_method": "role",' in check.output
        assert successful_writes(bed) == []
    predicted = check.task(SUMMARY_TASK)["msg"]
    # The key as Atlas has it (its id): the same key, so it is not sent again.
    assert (predicted["switched"], predicted["key"], predicted["region"]) == (True, bed.keys["main"]["key_id"], "us-east-1")

    # Without the confirmation the real run stops before any write, and says why.
    bed.clear_logs()
    inventory = write_inventory(legacy(bed))
    refused = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    assert refused.rc != 0
    assert refused.failed_tasks() == [CONFIRM_TASK]
    message = refused.task(CONFIRM_TASK)["msg"]
    assert "cannot be undone" in message and "cmk_atlas_confirm_switch: true" in message and "Nothing was written" in message
    assert bed.write_calls() == []
    assert bed.atlas.project_state(group) == before

    # Confirmed (as -e gives it, a string): the switch, as predicted, keeping the key and region Atlas had.
    bed.clear_logs()
    inventory = write_inventory(legacy(bed, cmk_atlas_confirm_switch="true"))
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, diff=True).assert_ok()
    assert run.changed_tasks() == check.changed_tasks()
    applied = run.task(SUMMARY_TASK)["msg"]
    assert matches_prediction(dict(predicted, check_mode=False, valid=True), applied)
    after = bed.atlas.project_state(group)
    (role,) = after["roles"]
    ear = after["encryptionAtRest"]
    assert (ear["enabled"], ear["roleId"], ear["customerMasterKeyID"], ear["region"]) == (True, role["roleId"], key_id, "US_EAST_1")
    assert not ear["credentialsStored"] and ear["roleBasedOnly"]
    assert role["iamAssumedRoleArn"] == applied["iam_role_arn"] == f"arn:aws:iam::{bed.accounts['R']}:role/{ROLE_NAME}"
    assert after["clusters"] == before["clusters"]
    assert applied["clusters"] == {"Orders": "AWS", "Archive": "AWS"}
    assert [op for system, op in successful_writes(bed) if system == "atlas"] == [
        "createGroupCloudProviderAccess",
        "authorizeGroupCloudProviderAccessRole",
        "updateGroupEncryptionAtRest",
    ]
    # Without cmk_atlas_deactivate_previous_access_key the old access key stays as it is.
    assert legacy_key_status(bed) == (bed.legacy_access_key_id, "Active")

    bed.clear_logs()
    rerun = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, verbosity=3).assert_ok()
    assert rerun.changed_tasks() == []
    assert bed.write_calls() == []
    assert rerun.task(SUMMARY_TASK)["msg"] == dict(applied, switched=False)
    assert bed.api_key["private_key"] not in rerun.output


def test_switch_deactivates_the_previous_access_key_when_asked(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    inventory = write_inventory(legacy(bed, cmk_atlas_confirm_switch=True, cmk_atlas_deactivate_previous_access_key=True))
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    ear = run.task(EAR_TASK)
    assert (ear["switched_to_role"], ear["previous_access_key_id"], ear["previous_access_key_deactivated"]) == (True, bed.legacy_access_key_id, True)
    assert legacy_key_status(bed) == (bed.legacy_access_key_id, "Inactive")
    assert run.task(SUMMARY_TASK)["msg"]["valid"] is True


def test_switch_on_a_project_without_encryption_at_rest_points_to_enable(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    plain = {"cmk_atlas_project_id": bed.projects["plain"], "cmk_atlas_iam_role_name": ROLE_NAME, "cmk_atlas_confirm_switch": True}
    inventory = write_inventory({"plain": plain})
    bed.clear_logs()
    run = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    assert run.failed_tasks() == ["Stop when the project has no encryption at rest to switch"]
    assert "cmk.atlas.enable" in run.task("Stop when the project has no encryption at rest to switch")["msg"]
    assert bed.write_calls() == []


def test_a_switch_broken_before_the_last_step_is_resumed_with_one_role(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["legacy"]
    inventory = write_inventory(legacy(bed, cmk_atlas_confirm_switch=True))
    bed.atlas.inject_fault("updateGroupEncryptionAtRest", status=500)
    broken = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    assert broken.failed_tasks() == [EAR_TASK]
    assert bed.atlas.project_state(group)["encryptionAtRest"]["credentialsStored"]

    resumed = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    assert resumed.task("cmk.atlas.iam_access : Ensure the project's Atlas cloud provider access role")["reused_by"] == "iam_role_arn"
    assert resumed.changed_tasks() == [EAR_TASK]
    state = bed.atlas.project_state(group)
    (role,) = state["roles"]
    assert state["encryptionAtRest"]["roleId"] == role["roleId"]
    assert [r["RoleName"] for r in bed.aws_client("iam").list_roles()["Roles"]] == [ROLE_NAME]
