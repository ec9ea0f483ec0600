"""Adopting a role-based setup made elsewhere (by hand, by Terraform, in the Atlas UI), and moving a project to
another IAM role only on the user's word, the replaced role kept for restores."""

import json

import pytest

from .conftest import SUMMARY_TASK, assert_refused, successful_writes

pytestmark = pytest.mark.integration

ENABLE = "cmk.atlas.enable"
ROTATE = "cmk.atlas.rotate"
VERIFY = "cmk.atlas.verify"
TASK = "cmk.atlas.enable : Plan and apply customer key management for the project"
ROTATE_TASK = "cmk.atlas.rotate : Plan and apply customer key management for the project"
VERIFY_REPORT = "cmk.atlas.verify : Report the project"
FAST = {"cmk_atlas_connection": {"retries": 1, "timeout": 10}, "cmk_atlas_authorize_timeout": 5, "cmk_atlas_valid_timeout": 5}
HAND_MADE = "atlas-by-terraform"


def made_elsewhere(bed):
    """Project "plain" encrypted with the main key through IAM role HAND_MADE: trust, inline policy "kms", no tags.

    Returns the Atlas role as Atlas answered its creation."""
    from emulators.atlas.testing import AtlasClient, kms_statement, policy, trust_policy

    api = AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])
    group = bed.projects["plain"]
    atlas_role = api.post(f"/groups/{group}/cloudProviderAccess", {"providerName": "AWS"}).json()
    iam = bed.aws_client("iam")
    trust = trust_policy(atlas_role["atlasAWSAccountArn"], atlas_role["atlasAssumedRoleExternalId"])
    arn = iam.create_role(RoleName=HAND_MADE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=HAND_MADE, PolicyName="kms", PolicyDocument=json.dumps(policy(kms_statement(bed.keys["main"]["arn"]))))
    body = {"providerName": "AWS", "iamAssumedRoleArn": arn}
    assert api.patch(f"/groups/{group}/cloudProviderAccess/{atlas_role['roleId']}", body).status_code == 200
    aws_kms = {"enabled": True, "customerMasterKeyID": bed.keys["main"]["key_id"], "region": "US_EAST_1", "roleId": atlas_role["roleId"]}
    response = api.patch(f"/groups/{group}/encryptionAtRest", {"awsKms": aws_kms})
    assert response.status_code == 200, response.text
    return atlas_role


def variables(bed, **more):
    return {"cmk_atlas_project_id": bed.projects["plain"], "cmk_atlas_kms_key": bed.keys["main"]["arn"], **FAST, **more}


def role_documents(bed, name):
    iam = bed.aws_client("iam")
    role = iam.get_role(RoleName=name)["Role"]
    inline = sorted(iam.list_role_policies(RoleName=name)["PolicyNames"])
    tags = {tag["Key"]: tag["Value"] for tag in iam.list_role_tags(RoleName=name)["Tags"]}
    return role["AssumeRolePolicyDocument"], inline, tags


@pytest.mark.scenario("demo")
def test_a_setup_made_elsewhere_gets_the_pairing_tags_and_nothing_more(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    atlas_role = made_elsewhere(bed)
    trust_before, inline_before, _tags = role_documents(bed, HAND_MADE)
    inventory = write_inventory({"plain": variables(bed)})

    bed.clear_logs()
    check = run_playbook(ENABLE, env=testbed_env, inventory=inventory, check=True, diff=True).assert_ok()
    assert successful_writes(bed) == []
    predicted = check.task(TASK)["changes"]
    assert predicted == [f"update IAM role {HAND_MADE} (tag {HAND_MADE} with cmk-atlas:adopted, cmk-atlas:project-id, cmk-atlas:role-id)"]

    bed.clear_logs()
    run = run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    result = run.task(TASK)
    assert result["changes"] == predicted
    assert (result["adopted_iam_role"], result["iam_role_name"], result["role_id"]) == (True, HAND_MADE, atlas_role["roleId"])
    assert successful_writes(bed) == [("aws", "TagRole")]
    trust_after, inline_after, tags = role_documents(bed, HAND_MADE)
    assert (trust_after, inline_after) == (trust_before, inline_before) == (trust_before, ["kms"])
    assert tags == {"cmk-atlas:project-id": bed.projects["plain"], "cmk-atlas:role-id": atlas_role["roleId"], "cmk-atlas:adopted": "true"}
    assert run.task(SUMMARY_TASK)["msg"]["valid"] is True
    assert not run.task(TASK).get("warnings"), run.task(TASK).get("warnings")

    # Converged: the re-run and verify, both without a role name, write nothing and find nothing to change.
    bed.clear_logs()
    again = run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    assert again.task(TASK)["changes"] == [] and successful_writes(bed) == []
    report = run_playbook(VERIFY, env=testbed_env, inventory=inventory).assert_ok().task(VERIFY_REPORT)["msg"]
    assert report["in_sync"] is True, report

    # Rotate without a role name uses the same role: it grants the new key beside the hand-made policy.
    new = bed.aws_client("kms").create_key(Description="the next Atlas key")["KeyMetadata"]["Arn"]
    rotate = run_playbook(ROTATE, env=testbed_env, inventory=write_inventory({"plain": variables(bed, cmk_atlas_kms_key=new)})).assert_ok()
    assert rotate.task(ROTATE_TASK)["rotated"] is True
    assert role_documents(bed, HAND_MADE)[1] == ["cmk-atlas-kms-access", "kms"]
    assert bed.atlas.project_state(bed.projects["plain"])["encryptionAtRest"]["customerMasterKeyID"] == new

    # Disable with remove_access leaves the adopted role in place: only the policy and tags the collection added go.
    disable = variables(bed, cmk_atlas_confirm_disable=True, cmk_atlas_remove_access=True)
    run_playbook("cmk.atlas.disable", env=testbed_env, inventory=write_inventory({"plain": disable})).assert_ok()
    trust_end, inline_end, tags_end = role_documents(bed, HAND_MADE)
    assert (trust_end, inline_end, tags_end) == (trust_before, ["kms"], {})
    assert bed.atlas.project_state(bed.projects["plain"])["encryptionAtRest"]["enabled"] is False


@pytest.mark.scenario("demo")
def test_without_a_role_name_a_project_without_a_role_is_refused(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    bed.clear_logs()
    run = run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({"plain": variables(bed)}))
    assert_refused(run, TASK, "cmk_atlas_iam_role_name is not set", "has no IAM role to keep (it has no encryption at rest)")
    assert successful_writes(bed) == []
    assert bed.proxy.request_log() == []


@pytest.mark.scenario("demo")
def test_retiring_outside_rotate_is_refused(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    inventory = write_inventory({"plain": variables(bed, cmk_atlas_iam_role_name="atlas-kms-plain", cmk_atlas_retire_keys=[bed.keys["main"]["arn"]])})
    bed.clear_logs()
    assert_refused(run_playbook(ENABLE, env=testbed_env, inventory=inventory), TASK, "cmk_atlas_retire_keys is given to cmk.atlas.enable", "cmk.atlas.rotate")
    assert successful_writes(bed) == []


@pytest.mark.scenario("demo")
def test_moving_to_another_role_needs_the_users_word_and_keeps_the_replaced_role(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["plain"]
    old_atlas_role = made_elsewhere(bed)
    old_arn = bed.aws_client("iam").get_role(RoleName=HAND_MADE)["Role"]["Arn"]

    bed.clear_logs()
    moved = variables(bed, cmk_atlas_iam_role_name="atlas-kms-plain")
    refused = run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({"plain": moved}))
    assert_refused(refused, TASK, f"reaches its key through IAM role {old_arn}", "cmk_atlas_replace_iam_role: true", "leave cmk_atlas_iam_role_name unset")
    assert successful_writes(bed) == []

    inventory = write_inventory({"plain": dict(moved, cmk_atlas_replace_iam_role=True)})
    run = run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    result = run.task(TASK)
    assert result["role_id"] != old_atlas_role["roleId"]
    [retained] = result["retained_roles"]
    assert (retained["iam_role_arn"], retained["atlas_role_id"]) == (old_arn, old_atlas_role["roleId"]) and retained["replaced"]
    state = bed.atlas.project_state(group)
    assert state["encryptionAtRest"]["roleId"] == result["role_id"]
    # The replaced role stays authorized, and keeps its grant, for the snapshots taken under it.
    roles = {role["roleId"]: role for role in state["roles"]}
    assert roles[old_atlas_role["roleId"]]["iamAssumedRoleArn"] == old_arn
    assert role_documents(bed, HAND_MADE)[1] == ["kms"]
    tags = role_documents(bed, "atlas-kms-plain")[2]
    assert tags[f"cmk-atlas:retained-role:{old_atlas_role['roleId']}"] == f"{retained['replaced']} {old_arn}"

    # Converged; verify lists the retained role and counts it as no drift.
    bed.clear_logs()
    assert run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok().task(TASK)["changes"] == []
    assert successful_writes(bed) == []
    report = run_playbook(VERIFY, env=testbed_env, inventory=write_inventory({"plain": moved})).assert_ok().task(VERIFY_REPORT)["msg"]
    assert report["in_sync"] is True and [role["iam_role_arn"] for role in report["retained_roles"]] == [old_arn], report

    # Nothing Atlas may restore needs it (no snapshot, no continuous backup): rotate retires it.
    retire = variables(bed, cmk_atlas_iam_role_name="atlas-kms-plain", cmk_atlas_retire_roles=[old_arn])
    bed.clear_logs()
    done = run_playbook(ROTATE, env=testbed_env, inventory=write_inventory({"plain": retire})).assert_ok().task(ROTATE_TASK)
    assert done["retired_roles"] == [old_arn] and done["retained_roles"] == []
    assert sorted(successful_writes(bed)) == [("atlas", "deauthorizeGroupCloudProviderAccessRole"), ("aws", "UntagRole")]
    assert old_atlas_role["roleId"] not in {role["roleId"] for role in bed.atlas.project_state(group)["roles"]}


@pytest.mark.scenario("demo")
def test_a_move_broken_before_its_record_is_recorded_by_the_rerun(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    old_atlas_role = made_elsewhere(bed)
    old_arn = bed.aws_client("iam").get_role(RoleName=HAND_MADE)["Role"]["Arn"]
    inventory = write_inventory({"plain": variables(bed, cmk_atlas_iam_role_name="atlas-kms-plain", cmk_atlas_replace_iam_role=True)})
    tag = f"cmk-atlas:retained-role:{old_atlas_role['roleId']}"
    # The last write, the time of the move, fails: Atlas already uses the new role, the replaced one is marked pending.
    bed.proxy.fail("TagRole", "access_denied", count=1)
    broken = run_playbook(ENABLE, env=testbed_env, inventory=inventory)
    message = failed_part_way(broken)
    assert message.startswith("record on IAM role atlas-kms-plain when the project moved away from " + old_arn), message
    assert "set encryption at rest" in message and "Run again to continue from there" in message
    assert role_documents(bed, "atlas-kms-plain")[2][tag] == f"replacing {old_arn}"

    bed.clear_logs()
    resumed = run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok().task(TASK)
    assert resumed["changes"] == [f"record on IAM role atlas-kms-plain when the project moved away from {old_arn}"]
    assert successful_writes(bed) == [("aws", "TagRole")]
    [retained] = resumed["retained_roles"]
    assert role_documents(bed, "atlas-kms-plain")[2][tag] == f"{retained['replaced']} {old_arn}"


def failed_part_way(run):
    """The procedure's task failed part-way; returns its message."""
    assert run.rc != 0 and run.failed_tasks() == [TASK], run.output[-3000:]
    return run.task(TASK)["msg"]
