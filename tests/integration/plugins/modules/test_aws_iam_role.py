"""cmk.atlas.aws_iam_role through real ansible-playbook runs against the test bed.

Every test reads back AWS state straight from moto and the write calls from the fault proxy's log,
so "nothing written" and "a converged run writes nothing" are checked where AWS would see them.
"""

import json

import pytest

from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import normalize_policy

pytestmark = pytest.mark.integration

UNKNOWN = "(known after apply)"
ATLAS_ARN = "arn:aws:iam::536727724300:root"
EXTERNAL_ID = "2b8f0b7e-4a4c-4f0e-9d6c-1b9e1d0a5c3f"
PROJECT_ID = "660000000000000000000001"  # the empty scenario's project
ATLAS_ROLE_ID = "65a1b2c3d4e5f60718293a4b"
ROLE = "atlas-kms"
POLICY = "cmk-atlas-kms-access"
OTHER_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}


def play(*tasks, module_defaults=None):
    body = {"name": "aws_iam_role", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": list(tasks)}
    if module_defaults:
        body["module_defaults"] = module_defaults
    return [body]


def role_task(task="role", register="result", ignore_errors=False, **args):
    """A task of the module; ``task`` is the task's name, ``args`` the module's (name defaults to ROLE)."""
    task = {"name": task, "cmk.atlas.aws_iam_role": {"name": ROLE, **args}, "register": register}
    if ignore_errors:
        task["ignore_errors"] = True
    return task


def present_args(bed, **overrides):
    args = {
        "description": "MongoDB Atlas encryption at rest",
        "atlas_aws_account_arn": ATLAS_ARN,
        "external_id": EXTERNAL_ID,
        "kms_key_arns": [bed.key_arns["main"]],
        "atlas_project_id": PROJECT_ID,
        "atlas_role_id": ATLAS_ROLE_ID,
        "tags": {"team": "data"},
    }
    args.update(overrides)
    return args


def iam(bed):
    return bed.aws_client("iam")


def get_role(bed, name=ROLE):
    try:
        return iam(bed).get_role(RoleName=name)["Role"]
    except iam(bed).exceptions.NoSuchEntityException:
        return None


def inline_policy(bed, policy=POLICY, name=ROLE):
    return iam(bed).get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]


def successful_writes(bed):
    return [call for call in bed.write_calls() if call["status"] < 400]


def operations(bed):
    return [entry["operation"] for entry in bed.proxy.request_log()]


def create_role(run_playbook, env, bed, **overrides):
    run = run_playbook(play(role_task(**present_args(bed, **overrides))), env=env).assert_ok()
    assert run.task("role")["changed"] is True
    return run.task("role")


def expected_trust(external_id=EXTERNAL_ID, principal=ATLAS_ARN):
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "MongoDBAtlasAssumeRole",
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def expected_kms_policy(bed, source_ips=None):
    statement = {
        "Sid": "MongoDBAtlasKmsAccess",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt"],
        "Resource": bed.key_arns["main"],
    }
    if source_ips:
        statement["Condition"] = {"IpAddress": {"aws:SourceIp": source_ips}}
    return {"Version": "2012-10-17", "Statement": [statement]}


# -- check mode, apply, re-run ---------------------------------------------------------------


def test_check_mode_on_an_empty_account_predicts_the_role_and_writes_nothing(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    bed.clear_logs()
    # The Atlas role does not exist yet: its external id, role id and account ARN are placeholders.
    args = present_args(bed, external_id=UNKNOWN, atlas_role_id=UNKNOWN, atlas_aws_account_arn=UNKNOWN)
    run = run_playbook(play(role_task(**args)), env=testbed_env, check=True, diff=True).assert_ok()

    result = run.task("role")
    assert result["changed"] is True
    assert result["arn"] == f"arn:aws:iam::{bed.accounts['R']}:role/{ROLE}"
    assert result["role_id"] == UNKNOWN
    assert result["trust_policy"] == expected_trust(UNKNOWN, UNKNOWN)
    assert result["inline_policy"] == expected_kms_policy(bed)
    assert result["tags"] == {"cmk-atlas:project-id": PROJECT_ID, "cmk-atlas:role-id": UNKNOWN, "team": "data"}
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["trust_policy"]["Statement"][0]["Condition"] == {"StringEquals": {"sts:ExternalId": UNKNOWN}}
    assert result["diff"]["after"]["max_session_duration"] == 3600
    assert bed.write_calls() == []
    assert get_role(bed) is None
    # Only reads: the role lookup and the caller's account for the predicted ARN.
    assert set(operations(bed)) == {"GetRole", "GetCallerIdentity"}


def test_check_mode_prediction_matches_apply_and_a_rerun_writes_nothing(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    args = present_args(bed, max_session_duration=7200, source_ips=["198.51.100.11", "198.51.100.10/32"])
    predicted = run_playbook(play(role_task(**args)), env=testbed_env, check=True, diff=True).assert_ok().task("role")
    assert bed.write_calls() == []

    bed.clear_logs()
    applied = run_playbook(play(role_task(**args)), env=testbed_env, diff=True).assert_ok().task("role")
    assert applied["changed"] is True
    assert [call["operation"] for call in bed.write_calls()] == ["CreateRole", "PutRolePolicy"]
    # The prediction was exact: same diff, same result except the id AWS assigns.
    assert predicted["diff"] == applied["diff"]
    assert predicted["role_id"] == UNKNOWN
    assert applied["role_id"].startswith("AROA")
    for key in ("arn", "trust_policy", "inline_policy", "tags", "description", "max_session_duration", "path", "other_inline_policies"):
        assert predicted[key] == applied[key], key

    role = get_role(bed)
    assert role["Arn"] == applied["arn"]
    assert role["RoleId"] == applied["role_id"]
    assert role["MaxSessionDuration"] == 7200
    assert role["Description"] == "MongoDB Atlas encryption at rest"
    assert role["AssumeRolePolicyDocument"] == expected_trust()
    assert {tag["Key"]: tag["Value"] for tag in role["Tags"]} == {
        "cmk-atlas:project-id": PROJECT_ID,
        "cmk-atlas:role-id": ATLAS_ROLE_ID,
        "team": "data",
    }
    assert inline_policy(bed) == expected_kms_policy(bed, ["198.51.100.10/32", "198.51.100.11/32"])

    bed.clear_logs()
    again = run_playbook(play(role_task(**args)), env=testbed_env, diff=True).assert_ok().task("role")
    assert again["changed"] is False
    assert bed.write_calls() == []
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["arn"] == applied["arn"]

    bed.clear_logs()
    checked = run_playbook(play(role_task(**args)), env=testbed_env, check=True).assert_ok().task("role")
    assert checked["changed"] is False
    assert bed.write_calls() == []


def test_the_role_works_for_atlas(run_playbook, testbed_env, clean_testbed):
    """The role the module writes is one the Atlas emulator can assume and use the key through."""
    from emulators.atlas.testing import AtlasClient

    bed = clean_testbed
    api = AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])
    atlas_role = api.post(f"/groups/{PROJECT_ID}/cloudProviderAccess", {"providerName": "AWS"}).json()
    args = present_args(
        bed,
        atlas_aws_account_arn=atlas_role["atlasAWSAccountArn"],
        external_id=atlas_role["atlasAssumedRoleExternalId"],
        atlas_role_id=atlas_role["roleId"],
    )
    role_arn = create_role(run_playbook, testbed_env, bed, **args)["arn"]
    authorized = api.patch(f"/groups/{PROJECT_ID}/cloudProviderAccess/{atlas_role['roleId']}", {"providerName": "AWS", "iamAssumedRoleArn": role_arn})
    assert authorized.status_code == 200, authorized.text
    body = {"awsKms": {"enabled": True, "customerMasterKeyID": bed.key_arns["main"], "region": "US_EAST_1", "roleId": atlas_role["roleId"]}}
    enabled = api.patch(f"/groups/{PROJECT_ID}/encryptionAtRest", body)
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["awsKms"]["valid"] is True


# -- comparison and updates ------------------------------------------------------------------


def test_aws_reformatting_is_not_a_change(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    client = iam(bed)
    # The same documents as the module would write, spelled differently.
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Condition": {"stringequals": {"STS:ExternalId": [EXTERNAL_ID]}},
                "Action": ["sts:assumerole"],
                "Principal": {"AWS": [ATLAS_ARN]},
                "Effect": "Allow",
                "Sid": "MongoDBAtlasAssumeRole",
            }
        ],
    }
    client.create_role(
        RoleName=ROLE,
        AssumeRolePolicyDocument=json.dumps(trust, indent=4),
        Description="MongoDB Atlas encryption at rest",
        Tags=[{"Key": "team", "Value": "data"}, {"Key": "cmk-atlas:project-id", "Value": PROJECT_ID}, {"Key": "cmk-atlas:role-id", "Value": ATLAS_ROLE_ID}],
    )
    kms = {
        "Version": "2012-10-17",
        "Statement": {
            "Sid": "MongoDBAtlasKmsAccess",
            "Effect": "Allow",
            "Action": ["KMS:Encrypt", "kms:DescribeKey", "kms:decrypt", "kms:Encrypt"],
            "Resource": [bed.key_arns["main"]],
        },
    }
    client.put_role_policy(RoleName=ROLE, PolicyName=POLICY, PolicyDocument=json.dumps(kms))
    bed.clear_logs()

    run = run_playbook(play(role_task(**present_args(bed))), env=testbed_env, diff=True).assert_ok()
    assert run.task("role")["changed"] is False
    assert bed.write_calls() == []
    # The result reports the documents as AWS holds them.
    assert run.task("role")["trust_policy"]["Statement"][0]["Action"] == ["sts:assumerole"]


def test_diff_shows_normalised_documents_and_only_what_changed(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    create_role(run_playbook, testbed_env, bed)
    bed.clear_logs()

    run = run_playbook(play(role_task(**present_args(bed, external_id="new-external-id"))), env=testbed_env, diff=True).assert_ok()
    result = run.task("role")
    assert result["changed"] is True
    assert [call["operation"] for call in bed.write_calls()] == ["UpdateAssumeRolePolicy"]
    before, after = result["diff"]["before"], result["diff"]["after"]
    # Normalised: e.g. the Atlas account root as its account id.
    assert before["trust_policy"] == normalize_policy(expected_trust())
    assert before["trust_policy"]["Statement"][0]["Principal"] == {"AWS": "536727724300"}
    assert after["trust_policy"] == normalize_policy(expected_trust("new-external-id"))
    assert {key for key in before if before[key] != after[key]} == {"trust_policy"}
    assert before["inline_policy"] == normalize_policy(expected_kms_policy(bed))
    # The human-readable diff is printed too.
    assert "new-external-id" in run.output
    assert "before: IAM role atlas-kms" in run.output


def test_updates_send_only_the_writes_needed(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    create_role(run_playbook, testbed_env, bed)
    client = iam(bed)
    client.tag_role(RoleName=ROLE, Tags=[{"Key": "owner", "Value": "someone"}])
    client.put_role_policy(RoleName=ROLE, PolicyName="other", PolicyDocument=json.dumps(OTHER_POLICY))
    bed.clear_logs()

    # Without purge: other tags and inline policies are left alone and reported.
    args = present_args(bed, description="changed", max_session_duration=3600, tags={"team": "platform"})
    result = run_playbook(play(role_task(**args)), env=testbed_env, diff=True).assert_ok().task("role")
    assert result["changed"] is True
    assert sorted(call["operation"] for call in bed.write_calls()) == ["TagRole", "UpdateRole"]
    assert result["other_inline_policies"] == ["other"]
    assert result["tags"]["owner"] == "someone"
    assert result["diff"]["after"]["other_inline_policies"] == {"other": normalize_policy(OTHER_POLICY)}
    assert get_role(bed)["Description"] == "changed"

    # With purge: the other tag and policy go, the pairing tags stay even when not given.
    bed.clear_logs()
    args = present_args(bed, description="changed", tags={"team": "platform"}, purge_tags=True, purge_policies=True)
    del args["atlas_role_id"]
    result = run_playbook(play(role_task(**args)), env=testbed_env, diff=True).assert_ok().task("role")
    assert sorted(call["operation"] for call in bed.write_calls()) == ["DeleteRolePolicy", "UntagRole"]
    assert result["tags"] == {"cmk-atlas:project-id": PROJECT_ID, "cmk-atlas:role-id": ATLAS_ROLE_ID, "team": "platform"}
    assert result["other_inline_policies"] == []
    assert "other_inline_policies" not in result["diff"]["after"]
    assert client.list_role_policies(RoleName=ROLE)["PolicyNames"] == [POLICY]

    # A new key replaces the inline policy; no key list leaves it unmanaged.
    bed.clear_logs()
    other_key = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    result = run_playbook(play(role_task(**present_args(bed, description="changed", tags={"team": "platform"}, kms_key_arns=[other_key]))), env=testbed_env)
    assert [call["operation"] for call in bed.write_calls()] == ["PutRolePolicy"]
    assert inline_policy(bed)["Statement"][0]["Resource"] == other_key
    bed.clear_logs()
    args = present_args(bed, description="changed", tags={"team": "platform"})
    del args["kms_key_arns"]
    result = run_playbook(play(role_task(**args)), env=testbed_env).assert_ok().task("role")
    assert result["changed"] is False
    assert result["inline_policy"]["Statement"][0]["Resource"] == other_key
    assert bed.write_calls() == []


def test_a_role_under_another_path_is_not_moved(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    create_role(run_playbook, testbed_env, bed)
    bed.clear_logs()
    run = run_playbook(play(role_task(**present_args(bed, path="/atlas/"))), env=testbed_env, check=True)
    assert run.rc != 0
    assert "exists with path /, not /atlas/; IAM cannot move a role to another path" in run.task("role")["msg"]
    run = run_playbook(play(role_task(**present_args(bed, path="/atlas/"))), env=testbed_env)
    assert run.rc != 0
    assert bed.write_calls() == []


def test_a_role_under_a_path(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    args = present_args(bed, path="/atlas/team/")
    predicted = run_playbook(play(role_task(**args)), env=testbed_env, check=True).assert_ok().task("role")
    applied = create_role(run_playbook, testbed_env, bed, path="/atlas/team/")
    assert predicted["arn"] == applied["arn"] == f"arn:aws:iam::{bed.accounts['R']}:role/atlas/team/{ROLE}"


# -- ownership -------------------------------------------------------------------------------

OTHER_PROJECT_ID = "660000000000000000000002"
EC2_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def seed_role(bed, trust, tags=(), policies=None):
    iam(bed).create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(trust), Tags=[{"Key": key, "Value": value} for key, value in tags])
    for name, document in (policies or {}).items():
        iam(bed).put_role_policy(RoleName=ROLE, PolicyName=name, PolicyDocument=json.dumps(document))
    bed.clear_logs()
    return get_role(bed)


def test_a_role_of_another_project_is_never_changed(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    before = seed_role(bed, expected_trust(), [("cmk-atlas:project-id", OTHER_PROJECT_ID)])
    for check, adopt in ((True, False), (False, False), (False, True)):
        run = run_playbook(play(role_task(**present_args(bed, adopt=adopt))), env=testbed_env, check=check)
        assert run.rc != 0
        message = run.task("role")["msg"]
        assert (
            f"IAM role {before['Arn']} is paired with Atlas project {OTHER_PROJECT_ID} (tag cmk-atlas:project-id), not with Atlas project {PROJECT_ID}"
            in message
        )
        assert "nothing was changed" in message
    assert bed.write_calls() == []
    assert get_role(bed) == before


def test_a_foreign_role_is_changed_only_with_adopt(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    seed_role(bed, EC2_TRUST, [("owner", "web")], {"other": OTHER_POLICY})
    refused = run_playbook(play(role_task(**present_args(bed))), env=testbed_env)
    assert refused.rc != 0
    message = refused.task("role")["msg"]
    assert "is not paired with an Atlas project and its trust policy does not let Atlas assume it (it trusts ec2.amazonaws.com)" in message
    assert "set adopt: true" in message
    assert bed.write_calls() == []

    adopted = run_playbook(play(role_task(**present_args(bed, adopt=True))), env=testbed_env, diff=True).assert_ok().task("role")
    assert adopted["changed"] is True
    assert sorted(call["operation"] for call in bed.write_calls()) == ["PutRolePolicy", "TagRole", "UpdateAssumeRolePolicy", "UpdateRole"]
    # The diff shows what the role loses: its trust of EC2.
    assert adopted["diff"]["before"]["trust_policy"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert adopted["diff"]["after"]["trust_policy"] == normalize_policy(expected_trust())
    assert adopted["permissions_beyond_kms"] == ["inline policy other of IAM role atlas-kms allows s3:ListBucket on *"]
    assert get_role(bed)["AssumeRolePolicyDocument"] == expected_trust()
    assert adopted["tags"]["cmk-atlas:project-id"] == PROJECT_ID

    # Paired now: later runs need no adopt.
    bed.clear_logs()
    again = run_playbook(play(role_task(**present_args(bed))), env=testbed_env).assert_ok().task("role")
    assert again["changed"] is False
    assert again["permissions_beyond_kms"] == ["inline policy other of IAM role atlas-kms allows s3:ListBucket on *"]
    assert bed.write_calls() == []


def test_a_role_trusting_atlas_with_the_projects_external_id_is_taken_without_adopt(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    seed_role(bed, expected_trust())
    result = run_playbook(play(role_task(**present_args(bed))), env=testbed_env).assert_ok().task("role")
    assert result["changed"] is True
    # Its trust was already right: only the pairing tags, the description and the KMS policy are written.
    assert sorted(call["operation"] for call in bed.write_calls()) == ["PutRolePolicy", "TagRole", "UpdateRole"]
    assert result["tags"] == {"cmk-atlas:project-id": PROJECT_ID, "cmk-atlas:role-id": ATLAS_ROLE_ID, "team": "data"}
    assert result["permissions_beyond_kms"] == []


def test_a_role_trusting_atlas_with_another_external_id_is_another_projects(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    before = seed_role(bed, expected_trust("someone-elses-external-id"))
    run = run_playbook(play(role_task(**present_args(bed, adopt=True))), env=testbed_env)
    assert run.rc != 0
    assert "with external ID someone-elses-external-id, which no cloud provider access role of Atlas project" in run.task("role")["msg"]
    assert bed.write_calls() == []
    assert get_role(bed) == before


def test_managed_policies_are_reported_beyond_kms(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    create_role(run_playbook, testbed_env, bed)
    managed = iam(bed).create_policy(PolicyName="extra", PolicyDocument=json.dumps(OTHER_POLICY))["Policy"]["Arn"]
    iam(bed).attach_role_policy(RoleName=ROLE, PolicyArn=managed)
    bed.clear_logs()
    result = run_playbook(play(role_task(**present_args(bed))), env=testbed_env).assert_ok().task("role")
    assert result["changed"] is False
    (found,) = result["permissions_beyond_kms"]
    assert f"managed policy {managed} is attached to IAM role atlas-kms" in found
    # One read of the attached policies per run.
    assert operations(bed).count("ListAttachedRolePolicies") == 1


# -- absent ----------------------------------------------------------------------------------


def test_absent_deletes_the_role_with_its_inline_policies(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    created = create_role(run_playbook, testbed_env, bed)
    iam(bed).put_role_policy(RoleName=ROLE, PolicyName="other", PolicyDocument=json.dumps(OTHER_POLICY))
    bed.clear_logs()

    checked = run_playbook(play(role_task(state="absent")), env=testbed_env, check=True, diff=True).assert_ok().task("role")
    assert checked["changed"] is True
    assert checked["arn"] == created["arn"]
    assert checked["diff"]["after"] == {}
    assert checked["diff"]["before"]["trust_policy"]["Statement"][0]["Condition"] == {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
    assert bed.write_calls() == []

    # The project in the pairing tag is checked: not in use, so the role goes.
    deleted = run_playbook(play(role_task(state="absent")), env=testbed_env, diff=True).assert_ok().task("role")
    assert deleted["changed"] is True
    assert deleted["role_id"] == created["role_id"]
    assert [call["operation"] for call in bed.write_calls()] == ["DeleteRolePolicy", "DeleteRolePolicy", "DeleteRole"]
    assert get_role(bed) is None
    assert deleted.get("warnings") is None

    bed.clear_logs()
    again = run_playbook(play(role_task(state="absent")), env=testbed_env).assert_ok().task("role")
    assert again["changed"] is False
    assert again["arn"] is None
    assert bed.write_calls() == []


def test_absent_with_managed_policies_fails_unless_purged(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    create_role(run_playbook, testbed_env, bed)
    client = iam(bed)
    managed = client.create_policy(PolicyName="extra", PolicyDocument=json.dumps(OTHER_POLICY))
    client.attach_role_policy(RoleName=ROLE, PolicyArn=managed["Policy"]["Arn"])
    bed.clear_logs()

    run = run_playbook(play(role_task(state="absent")), env=testbed_env)
    assert run.rc != 0
    message = run.task("role")["msg"]
    assert managed["Policy"]["Arn"] in message
    assert "purge_policies: true" in message
    assert bed.write_calls() == []
    assert get_role(bed) is not None

    run = run_playbook(play(role_task(state="absent", purge_policies=True)), env=testbed_env).assert_ok()
    assert [call["operation"] for call in bed.write_calls()] == ["DetachRolePolicy", "DeleteRolePolicy", "DeleteRole"]
    assert get_role(bed) is None


def _role_in_use_by_atlas(run_playbook, env, bed):
    """An IAM role made by the module, authorized in Atlas and used by the project's encryption at rest."""
    from emulators.atlas.testing import AtlasClient

    api = AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])
    atlas_role = api.post(f"/groups/{PROJECT_ID}/cloudProviderAccess", {"providerName": "AWS"}).json()
    args = present_args(
        bed,
        atlas_aws_account_arn=atlas_role["atlasAWSAccountArn"],
        external_id=atlas_role["atlasAssumedRoleExternalId"],
        atlas_role_id=atlas_role["roleId"],
    )
    role_arn = create_role(run_playbook, env, bed, **args)["arn"]
    response = api.patch(f"/groups/{PROJECT_ID}/cloudProviderAccess/{atlas_role['roleId']}", {"providerName": "AWS", "iamAssumedRoleArn": role_arn})
    assert response.status_code == 200, response.text
    body = {"awsKms": {"enabled": True, "customerMasterKeyID": bed.key_arns["main"], "region": "US_EAST_1", "roleId": atlas_role["roleId"]}}
    response = api.patch(f"/groups/{PROJECT_ID}/encryptionAtRest", body)
    assert response.status_code == 200, response.text
    return role_arn, atlas_role["roleId"]


def test_absent_refuses_while_atlas_encryption_at_rest_uses_the_role(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    role_arn, atlas_role_id = _role_in_use_by_atlas(run_playbook, testbed_env, bed)
    bed.clear_logs()

    for check in (True, False):
        run = run_playbook(play(role_task(state="absent", atlas_project_id=PROJECT_ID)), env=testbed_env, check=check)
        assert run.rc != 0
        message = run.task("role")["msg"]
        assert f"IAM role {role_arn} is in use: encryption at rest of Atlas project {PROJECT_ID} uses cloud provider access role {atlas_role_id}" in message
        assert "nothing was deleted" in message
    # Also when the project comes only from the pairing tag.
    run = run_playbook(play(role_task(state="absent")), env=testbed_env)
    assert run.rc != 0
    assert "is in use" in run.task("role")["msg"]
    assert bed.write_calls() == []
    assert get_role(bed) is not None


def test_absent_without_atlas_credentials_warns_that_it_could_not_check(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    _role_in_use_by_atlas(run_playbook, testbed_env, bed)
    env = {key: value for key, value in testbed_env.items() if not key.startswith("MONGODB_ATLAS_")}
    run = run_playbook(play(role_task(state="absent", atlas_project_id=PROJECT_ID)), env=env).assert_ok()
    (warning,) = run.task("role")["warnings"]
    assert f"Could not check whether Atlas project {PROJECT_ID} uses IAM role" in warning
    assert "no Atlas credentials" in warning
    assert get_role(bed) is None


def test_absent_warns_about_atlas_roles_still_authorized(run_playbook, testbed_env, clean_testbed):
    from emulators.atlas.testing import AtlasClient

    bed = clean_testbed
    api = AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])
    atlas_role = api.post(f"/groups/{PROJECT_ID}/cloudProviderAccess", {"providerName": "AWS"}).json()
    args = present_args(bed, external_id=atlas_role["atlasAssumedRoleExternalId"], atlas_role_id=atlas_role["roleId"])
    role_arn = create_role(run_playbook, testbed_env, bed, **args)["arn"]
    api.patch(f"/groups/{PROJECT_ID}/cloudProviderAccess/{atlas_role['roleId']}", {"providerName": "AWS", "iamAssumedRoleArn": role_arn})

    run = run_playbook(play(role_task(state="absent", atlas_project_id=PROJECT_ID)), env=testbed_env).assert_ok()
    (warning,) = run.task("role")["warnings"]
    assert f"still has cloud provider access role {atlas_role['roleId']} authorized with IAM role {role_arn}" in warning
    assert get_role(bed) is None


# -- bad input -------------------------------------------------------------------------------

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
BAD_INPUTS = [
    ("bare key id", {"kms_key_arns": [KEY_ID]}, f"kms_key_arns entry '{KEY_ID}' is a bare key id; an IAM policy names keys by their full key ARN"),
    ("alias", {"kms_key_arns": ["alias/atlas-cmk"]}, "kms_key_arns entry 'alias/atlas-cmk' is an alias; an IAM policy names keys by their full key ARN"),
    ("not a key", {"kms_key_arns": ["arn:aws:s3:::bucket"]}, "kms_key_arns entry 'arn:aws:s3:::bucket' is not a KMS key ARN"),
    ("empty external id", {"external_id": ""}, "external_id is empty"),
    ("missing external id", {"external_id": None}, "state is present but all of the following are missing: external_id"),
    ("bad external id", {"external_id": "has spaces"}, "external_id 'has spaces' is not a valid sts:ExternalId"),
    ("placeholder without check mode", {"external_id": UNKNOWN}, "external_id is '(known after apply)'"),
    ("bare Atlas account", {"atlas_aws_account_arn": "536727724300"}, "atlas_aws_account_arn '536727724300' is not an IAM principal ARN"),
    ("session too long", {"max_session_duration": 50000}, "max_session_duration 50000 is out of range; expected seconds from 3600 (1 hour) to 43200"),
    ("bad role name", {"name": "atlas kms!"}, "name 'atlas kms!' is not a valid IAM role name"),
    ("bad path", {"path": "atlas"}, "path 'atlas' is not a valid IAM path"),
    ("bad policy name", {"policy_name": "kms access"}, "policy_name 'kms access' is not a valid IAM policy name"),
    (
        "host bits set",
        {"source_ips": ["10.1.2.3/8"]},
        "source_ips entry '10.1.2.3/8' is not an IP address or CIDR block such as 203.0.113.5 or 203.0.113.0/24; did you mean 10.0.0.0/8?",
    ),
    (
        "source ips without keys",
        {"kms_key_arns": [], "source_ips": ["198.51.100.10"]},
        "source_ips limits the inline KMS policy, which is only managed with kms_key_arns",
    ),
    ("reserved tag", {"tags": {"cmk-atlas:project-id": "x"}}, "tags key 'cmk-atlas:project-id' is reserved"),
    ("aws tag", {"tags": {"aws:owner": "x"}}, "tags key 'aws:owner' is reserved"),
    ("tag keys differing in case", {"tags": {"Team": "a", "team": "b"}}, "are the same IAM tag key"),
    ("bad project id", {"atlas_project_id": "my-project"}, "atlas_project_id 'my-project' is not an Atlas id; expected 24 hexadecimal digits"),
    ("bad role id", {"atlas_role_id": "42"}, "atlas_role_id '42' is not an Atlas id"),
    ("bad region", {"region": "moon-1"}, "region (aws_region) 'moon-1' is not an AWS region name"),
]


def test_bad_inputs_fail_clearly_and_write_nothing(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    tasks = []
    for label, overrides, _message in BAD_INPUTS:
        args = present_args(bed, **overrides)
        args = {key: value for key, value in args.items() if value is not None}
        tasks.append(role_task(task=label, register=label.replace(" ", "_"), ignore_errors=True, **args))
    bed.clear_logs()
    run = run_playbook(play(*tasks), env=testbed_env)
    assert run.rc == 0, run.output[-3000:]
    for label, _overrides, message in BAD_INPUTS:
        assert message in run.task(label)["msg"], (label, run.task(label)["msg"])
    assert sorted(run.failed_tasks()) == sorted(label for label, _o, _m in BAD_INPUTS)
    # Refused before any AWS call, not only before any write.
    assert bed.proxy.request_log() == []
    assert get_role(bed) is None


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "error", "status"),
    [
        ("CreateRole", "throttling", None),
        ("CreateRole", "ThrottlingException", None),
        ("PutRolePolicy", "TooManyRequestsException", 429),
        ("PutRolePolicy", 503, None),
        ("GetRole", "internal", None),
        ("CreateRole", "unavailable", None),
    ],
)
def test_transient_aws_faults_are_retried(run_playbook, testbed_env, clean_testbed, operation, error, status):
    bed = clean_testbed
    bed.proxy.fail(operation, error, count=2, status=status)
    bed.clear_logs()
    run = run_playbook(play(role_task(**present_args(bed))), env=testbed_env).assert_ok()
    assert run.task("role")["changed"] is True
    calls = [entry for entry in bed.proxy.request_log() if entry["operation"] == operation]
    assert [entry["fault"] is not None for entry in calls] == [True, True, False]
    assert get_role(bed) is not None
    assert inline_policy(bed) == expected_kms_policy(bed)


def test_access_denied_is_not_retried_and_writes_nothing(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    bed.proxy.fail("CreateRole", "access_denied", count=5)
    bed.clear_logs()
    run = run_playbook(play(role_task(**present_args(bed))), env=testbed_env)
    assert run.rc != 0
    result = run.task("role")
    assert result["msg"] == "AWS iam:CreateRole failed: AccessDenied: User is not authorized to perform: iam:CreateRole"
    assert result["aws_error"] == {"code": "AccessDenied", "service": "iam", "operation": "CreateRole", "status_code": 403}
    assert [entry["operation"] for entry in bed.proxy.request_log() if entry["operation"] == "CreateRole"] == ["CreateRole"]
    assert successful_writes(bed) == []
    assert get_role(bed) is None


def test_access_denied_on_update_names_the_operation(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    create_role(run_playbook, testbed_env, bed)
    bed.proxy.fail("UpdateAssumeRolePolicy", "access_denied")
    bed.clear_logs()
    run = run_playbook(play(role_task(**present_args(bed, external_id="another-one"))), env=testbed_env)
    assert run.rc != 0
    assert run.task("role")["aws_error"]["code"] == "AccessDenied"
    assert "iam:UpdateAssumeRolePolicy" in run.task("role")["msg"]
    assert successful_writes(bed) == []


# -- secrets ---------------------------------------------------------------------------------


def test_secrets_never_appear_in_output(run_playbook, testbed_env, clean_testbed):
    bed = clean_testbed
    secret_key = testbed_env["AWS_SECRET_ACCESS_KEY"]
    private_key = testbed_env["MONGODB_ATLAS_PRIVATE_KEY"]
    env = {key: value for key, value in testbed_env.items() if key not in ("AWS_SECRET_ACCESS_KEY", "MONGODB_ATLAS_PRIVATE_KEY")}
    defaults = {"cmk.atlas.aws_iam_role": {"secret_key": secret_key, "access_key": testbed_env["AWS_ACCESS_KEY_ID"], "private_key": private_key}}
    tasks = [
        role_task(task="create", **present_args(bed)),
        role_task(task="fail", ignore_errors=True, **present_args(bed, kms_key_arns=[KEY_ID])),
        role_task(task="delete", state="absent", atlas_project_id=PROJECT_ID),
    ]
    run = run_playbook(play(*tasks, module_defaults=defaults), env=env, diff=True, verbosity=3)
    assert run.rc == 0, run.output[-3000:]
    assert run.task("create")["changed"] is True
    assert run.task("delete")["changed"] is True
    assert secret_key not in run.output
    assert private_key not in run.output
    assert secret_key not in json.dumps(run.results)
    assert private_key not in json.dumps(run.results)


# -- with the Atlas side ---------------------------------------------------------------------


def test_chained_with_cloud_provider_access_from_check_mode_to_converged(run_playbook, testbed_env, clean_testbed):
    """The values the Atlas step predicts in check mode flow through this module and on to the authorization."""
    bed = clean_testbed
    tasks = [
        {
            "name": "atlas role",
            "cmk.atlas.cloud_provider_access": {"project_id": PROJECT_ID, "role_id": "{{ known_role_id | default(omit) }}"},
            "register": "atlas_role",
        },
        role_task(
            **present_args(
                bed,
                atlas_aws_account_arn="{{ atlas_role.atlas_aws_account_arn }}",
                external_id="{{ atlas_role.external_id }}",
                atlas_role_id="{{ atlas_role.role_id }}",
            )
        ),
        {
            "name": "authorize",
            "cmk.atlas.cloud_provider_access": {"project_id": PROJECT_ID, "role_id": "{{ atlas_role.role_id }}", "iam_role_arn": "{{ result.arn }}"},
        },
    ]
    bed.clear_logs()
    checked = run_playbook(play(*tasks), env=testbed_env, check=True).assert_ok()
    assert checked.changed_tasks() == ["atlas role", "role", "authorize"]
    assert checked.task("role")["trust_policy"] == expected_trust(UNKNOWN, UNKNOWN)
    assert bed.write_calls() == []

    applied = run_playbook(play(*tasks), env=testbed_env).assert_ok()
    assert applied.changed_tasks() == ["atlas role", "role", "authorize"]
    assert applied.task("role")["arn"] == checked.task("role")["arn"]
    assert applied.task("role")["tags"]["cmk-atlas:role-id"] == applied.task("atlas role")["role_id"]

    # A later run names the Atlas role it paired with (as the role-id tag records it).
    bed.clear_logs()
    again = run_playbook(play(*tasks), env=testbed_env, extra_vars={"known_role_id": applied.task("atlas role")["role_id"]}).assert_ok()
    assert again.changed_tasks() == []
    assert bed.write_calls() == []
