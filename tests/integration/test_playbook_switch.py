"""cmk.atlas.switch end to end: from an access key to an IAM role, against the Atlas emulator and moto."""

import pytest

from .conftest import SUMMARY_TASK, UNKNOWN, matches_prediction, successful_writes

pytestmark = [pytest.mark.integration, pytest.mark.scenario("demo")]

PLAYBOOK = "cmk.atlas.switch"
ROLE_NAME = "atlas-kms-legacy-role"
EAR_TASK = "cmk.atlas.encryption_at_rest : Ensure the project encrypts at rest with the key through the Atlas role"
ACCESS_TASK = "Let Atlas reach the key through the IAM role"
CONFIRM_TASK = "Stop unless the switch is confirmed"
# cmk.atlas.key_access sets up the Atlas role, the IAM role with its KMS grant and the authorization in one task;
# then the switch itself.
SWITCH_CHANGES = [ACCESS_TASK, EAR_TASK]
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
        access = check.task(ACCESS_TASK)
        # Nothing exists yet: a new Atlas role (whose id Atlas has not chosen) for a new IAM role, the key Atlas has.
        assert (access["reused_by"], access["role_id"], access["external_id"]) == ("created", UNKNOWN, UNKNOWN)
        assert access["iam_role_arn"] == f"arn:aws:iam::{bed.accounts['R']}:role/{ROLE_NAME}"
        assert (access["key_arn"], access["key_region"]) == (bed.keys["main"]["arn"], "us-east-1")
        assert access["encryption_at_rest"]["access_method"] == "credentials"
        assert access["encryption_at_rest_in_place"] is False
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
    writes = successful_writes(bed)
    assert [call for call in writes if call[0] == "atlas"] == ATLAS_SWITCH_WRITES
    assert [call for call in writes if call[0] == "aws"] == AWS_SWITCH_WRITES
    # Without cmk_atlas_deactivate_previous_access_key the old access key stays as it is.
    assert legacy_key_status(bed) == (bed.legacy_access_key_id, "Active")

    bed.clear_logs()
    rerun = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory, verbosity=3).assert_ok()
    assert rerun.changed_tasks() == []
    assert bed.write_calls() == []
    assert rerun.task(ACCESS_TASK)["reused_by"] == "iam_role_arn"
    # key_access read the switched project as in place, so the switch step has nothing to do and is not run.
    assert rerun.task(ACCESS_TASK)["encryption_at_rest_in_place"] is True
    (ear_result,) = [r for r in rerun.results if r["task"] == EAR_TASK]
    assert ear_result["status"] == "skipped"
    # Without the module run, the summary's clusters are only those cmk_atlas_clusters selects (none here);
    # Orders and Archive still encrypt with AWS.
    assert rerun.task(SUMMARY_TASK)["msg"] == dict(applied, switched=False, clusters={})
    assert {name: cluster["encryptionAtRestProvider"] for name, cluster in bed.atlas.project_state(group)["clusters"].items()} == applied["clusters"]
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
    assert run.rc != 0
    # cmk.atlas.key_access (procedure switch) refuses the project before it writes anything.
    assert run.failed_tasks() == [ACCESS_TASK]
    message = run.task(ACCESS_TASK)["msg"]
    assert "no encryption at rest with AWS KMS, so there is nothing to switch" in message
    assert "cmk.atlas.enable" in message and "Nothing was written" in message
    assert EAR_TASK not in [r["task"] for r in run.results]
    assert bed.write_calls() == []
    assert bed.atlas.project_state(bed.projects["plain"])["roles"] == []
    assert bed.aws_client("iam").list_roles()["Roles"] == []


def test_a_switch_broken_before_the_last_step_is_resumed_with_one_role(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["legacy"]
    inventory = write_inventory(legacy(bed, cmk_atlas_confirm_switch=True))
    bed.atlas.inject_fault("updateGroupEncryptionAtRest", status=500)
    broken = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory)
    assert broken.failed_tasks() == [EAR_TASK]
    assert broken.changed_tasks() == [ACCESS_TASK]
    assert bed.atlas.project_state(group)["encryptionAtRest"]["credentialsStored"]

    bed.clear_logs()
    resumed = run_playbook(PLAYBOOK, env=testbed_env, inventory=inventory).assert_ok()
    access = resumed.task(ACCESS_TASK)
    assert access["reused_by"] == "iam_role_arn"
    assert access["encryption_at_rest_in_place"] is False
    assert resumed.changed_tasks() == [EAR_TASK]
    # Only the step that broke is made again.
    assert successful_writes(bed) == [("atlas", "updateGroupEncryptionAtRest")]
    state = bed.atlas.project_state(group)
    (role,) = state["roles"]
    assert state["encryptionAtRest"]["roleId"] == role["roleId"]
    assert [r["RoleName"] for r in bed.aws_client("iam").list_roles()["Roles"]] == [ROLE_NAME]
