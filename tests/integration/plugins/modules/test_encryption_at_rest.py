"""cmk.atlas.encryption_at_rest through real ansible-playbook runs against the test bed.

Each test prepares the Atlas and AWS side with direct API calls (not with other modules of the
collection), clears the request logs, and then looks at what the module wrote and returned.
"""

import json
import uuid

import pytest
from emulators.atlas.testing import AtlasClient, kms_statement, policy, root_key_policy, trust_policy

UNKNOWN = "(known after apply)"
ROLE_NAME = "atlas-kms"
ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]
ATLAS_WRITE = "updateGroupEncryptionAtRest"


def play(*tasks):
    return [{"name": "encryption at rest", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": list(tasks)}]


def task(name, ignore_errors=False, **args):
    result = {"name": name, "cmk.atlas.encryption_at_rest": args, "register": "out"}
    if ignore_errors:
        result["ignore_errors"] = True
    return result


def failure(run, name):
    """The result of task ``name``, which must have failed."""
    assert name in run.failed_tasks(), run.output[-3000:]
    return run.task(name)


def atlas_api(bed):
    return AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])


def ready_role(bed, project_id, key_arn=None, account="R", name=ROLE_NAME, identity=True, authorize=True, trust=None):
    """An Atlas role, an IAM role in ``account`` that trusts it, an inline KMS policy on ``key_arn``, authorized."""
    api = atlas_api(bed)
    response = api.post(f"/groups/{project_id}/cloudProviderAccess", {"providerName": "AWS"})
    assert response.status_code == 200, response.text
    role = response.json()
    iam = bed.aws_client("iam", account=account)
    document = trust or trust_policy(role["atlasAWSAccountArn"], role["atlasAssumedRoleExternalId"])
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(document))["Role"]["Arn"]
    if identity and key_arn:
        iam.put_role_policy(RoleName=name, PolicyName="atlas-kms", PolicyDocument=json.dumps(policy(kms_statement(key_arn))))
    if authorize:
        response = api.patch(f"/groups/{project_id}/cloudProviderAccess/{role['roleId']}", {"providerName": "AWS", "iamAssumedRoleArn": arn})
        assert response.status_code == 200, response.text
    return {"role_id": role["roleId"], "arn": arn, "external_id": role["atlasAssumedRoleExternalId"]}


def ear(bed, project_id):
    return bed.atlas.project_state(project_id)["encryptionAtRest"]


def atlas_writes(bed):
    return [call for call in bed.write_calls() if call["system"] == "atlas"]


def all_writes(bed):
    return bed.write_calls()


def checks_by_name(result):
    return {item["name"]: item for item in result["preflight"]}


# -- enable ----------------------------------------------------------------------------------------


def test_enable_from_scratch_check_mode_predicts_then_apply_then_converged(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["empty"]
    key = bed.keys["main"]
    role = ready_role(bed, project, key["arn"])
    bed.clear_logs()
    enable = task("enable", project_id=project, customer_master_key_id=key["key_id"], region="us-east-1", role_id=role["role_id"])

    check = run_playbook(play(enable), env=testbed_env, check=True, diff=True).assert_ok()
    predicted = check.task("enable")
    assert predicted["changed"] is True
    assert all_writes(bed) == []
    assert ear(bed, project)["enabled"] is False
    assert predicted["diff"]["before"]["enabled"] is False
    assert predicted["diff"]["after"] == {
        "enabled": True,
        "customer_master_key_id": key["key_id"],
        "region": "US_EAST_1",
        "access_method": "role",
        "role_id": role["role_id"],
        "iam_role_arn": role["arn"],
        "require_private_networking": False,
    }
    assert all(item["ok"] is True for item in predicted["preflight"]), predicted["preflight"]
    assert predicted["encryption_at_rest"]["valid"] is None

    applied = run_playbook(play(enable), env=testbed_env, diff=True).assert_ok()
    result = applied.task("enable")
    assert result["changed"] is True
    assert [call["operation"] for call in all_writes(bed)] == [ATLAS_WRITE]
    assert result["diff"]["after"] == predicted["diff"]["after"]
    config = result["encryption_at_rest"]
    assert config["valid"] is True
    assert config["access_method"] == "role"
    assert config["aws_region"] == "us-east-1"
    state = ear(bed, project)
    assert state["enabled"] is True and state["roleId"] == role["role_id"] and state["customerMasterKeyID"] == key["key_id"]

    bed.clear_logs()
    again = run_playbook(play(enable), env=testbed_env, check=False).assert_ok()
    assert again.task("enable")["changed"] is False
    assert again.task("enable")["preflight"] == []
    assert all_writes(bed) == []
    # A converged run reads Atlas only: no AWS call at all.
    assert bed.proxy.request_log() == []


def test_enable_with_alias_and_iam_role_arn_converged_run_only_describes_the_alias(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["empty"]
    key = bed.keys["main"]
    role = ready_role(bed, project, key["arn"])
    bed.clear_logs()
    enable = task("enable", project_id=project, customer_master_key_id=key["alias"], role_id=role["arn"], require_private_networking=False)

    result = run_playbook(play(enable), env=testbed_env).assert_ok().task("enable")
    assert result["changed"] is True
    # Atlas gets the key id the alias names, and the Atlas role authorized for the IAM role ARN.
    state = ear(bed, project)
    assert state["customerMasterKeyID"] == key["key_id"]
    assert state["roleId"] == role["role_id"]
    assert state["region"] == "US_EAST_1"
    assert result["encryption_at_rest"]["iam_role_arn"] == role["arn"]

    bed.clear_logs()
    again = run_playbook(play(enable), env=testbed_env).assert_ok().task("enable")
    assert again["changed"] is False
    assert all_writes(bed) == []
    assert [entry["operation"] for entry in bed.proxy.request_log()] == ["DescribeKey"]


def test_check_mode_on_an_empty_project_accepts_the_placeholder_role(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["empty"]
    key = bed.keys["main"]
    enable = task("enable", project_id=project, customer_master_key_id=key["alias"], region="us-east-1", role_id=UNKNOWN)

    check = run_playbook(play(enable), env=testbed_env, check=True, diff=True).assert_ok()
    result = check.task("enable")
    assert result["changed"] is True
    assert all_writes(bed) == []
    assert result["diff"]["after"]["role_id"] == UNKNOWN
    assert result["diff"]["after"]["customer_master_key_id"] == key["key_id"]
    checks = checks_by_name(result)
    assert checks["key_exists"]["ok"] is True and checks["key_state"]["ok"] is True
    assert checks["role_authorized"]["ok"] is None and checks["role_policy"]["ok"] is None
    assert any("role_authorized not checked" in warning for warning in result["warnings"])

    real = run_playbook(play(task("enable", ignore_errors=True, **enable["cmk.atlas.encryption_at_rest"])), env=testbed_env)
    failed = failure(real, "enable")
    assert "earlier task that ran in check mode" in failed["msg"]
    assert all_writes(bed) == []


def test_transient_answers_during_propagation_are_retried(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["empty"]
    key = bed.keys["main"]
    role = ready_role(bed, project, key["arn"])
    bed.atlas.inject_fault("updateGroupEncryptionAtRest", status=400, count=1, error_code="CANNOT_ASSUME_ROLE")
    bed.clear_logs()
    result = run_playbook(
        play(task("enable", project_id=project, customer_master_key_id=key["arn"], role_id=role["role_id"], valid_timeout=60)), env=testbed_env
    ).assert_ok()
    assert result.task("enable")["encryption_at_rest"]["valid"] is True
    assert [(call["operation"], call["status"]) for call in atlas_writes(bed)] == [(ATLAS_WRITE, 400), (ATLAS_WRITE, 200)]


def test_preflight_false_skips_aws_reads_with_a_warning(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["empty"]
    key = bed.keys["main"]
    role = ready_role(bed, project, key["arn"])
    bed.clear_logs()
    result = (
        run_playbook(play(task("enable", project_id=project, customer_master_key_id=key["arn"], role_id=role["role_id"], preflight=False)), env=testbed_env)
        .assert_ok()
        .task("enable")
    )
    assert result["changed"] is True and result["preflight"] == []
    assert any("preflight is false" in warning for warning in result["warnings"])
    assert bed.proxy.request_log() == []
    assert ear(bed, project)["customerMasterKeyID"] == key["arn"]


# -- preflight failures ------------------------------------------------------------------------------


def _missing_key(bed, project, key):
    role = ready_role(bed, project, key["arn"])
    return {"customer_master_key_id": str(uuid.uuid4()), "role_id": role["role_id"], "region": "us-east-1"}, "key_exists", "no such KMS key"


def _disabled_key(bed, project, key):
    role = ready_role(bed, project, key["arn"])
    bed.aws_client("kms").disable_key(KeyId=key["key_id"])
    return {"customer_master_key_id": key["key_id"], "role_id": role["role_id"]}, "key_state", "is disabled"


def _pending_deletion(bed, project, key):
    role = ready_role(bed, project, key["arn"])
    bed.aws_client("kms").schedule_key_deletion(KeyId=key["key_id"], PendingWindowInDays=7)
    return {"customer_master_key_id": key["key_id"], "role_id": role["role_id"]}, "key_state", "PendingDeletion"


def _wrong_region(bed, project, key):
    role = ready_role(bed, project, key["arn"])
    return (
        {"customer_master_key_id": key["arn"], "role_id": role["role_id"], "region": "EU_WEST_2"},
        "key_region",
        "is in region us-east-1, but region is eu-west-2",
    )


def _bare_id_in_wrong_region(bed, project, key):
    role = ready_role(bed, project, key["arn"])
    return {"customer_master_key_id": key["key_id"], "role_id": role["role_id"], "region": "eu-west-2"}, "key_exists", "region eu-west-2"


def _missing_iam_permission(bed, project, key):
    role = ready_role(bed, project, key["arn"], identity=False)
    return {"customer_master_key_id": key["key_id"], "role_id": role["role_id"]}, "role_policy", "no identity policy of"


def _missing_key_policy_grant(bed, project, key):
    role = ready_role(bed, project, key["arn"])
    admin = {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": bed.operator["arn"]}, "Action": "kms:*", "Resource": "*"}
    bed.aws_client("kms").put_key_policy(KeyId=key["key_id"], PolicyName="default", Policy=json.dumps(policy(admin)))
    return {"customer_master_key_id": key["key_id"], "role_id": role["role_id"]}, "key_policy", "names neither"


def _source_ip_excludes_atlas(bed, project, key):
    role = ready_role(bed, project, key["arn"], identity=False)
    statement = kms_statement(key["arn"], condition={"IpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}, sid="OfficeOnly")
    bed.aws_client("iam").put_role_policy(RoleName=ROLE_NAME, PolicyName="atlas-kms", PolicyDocument=json.dumps(policy(statement)))
    return {"customer_master_key_id": key["key_id"], "role_id": role["role_id"]}, "source_ip", "exclude Atlas's control-plane addresses: 198.51.100.10/32"


def _role_not_authorized(bed, project, key):
    role = ready_role(bed, project, key["arn"], authorize=False)
    return {"customer_master_key_id": key["key_id"], "role_id": role["role_id"]}, "role_authorized", "is not authorized"


def _trust_without_external_id(bed, project, key):
    role = ready_role(bed, project, key["arn"])
    bed.aws_client("iam").update_assume_role_policy(RoleName=ROLE_NAME, PolicyDocument=json.dumps(trust_policy("arn:aws:iam::536727724300:root", "other-id")))
    return {"customer_master_key_id": key["key_id"], "role_id": role["role_id"]}, "role_trust", "does not let Atlas"


@pytest.mark.parametrize(
    "prepare",
    [
        _missing_key,
        _disabled_key,
        _pending_deletion,
        _wrong_region,
        _bare_id_in_wrong_region,
        _missing_iam_permission,
        _missing_key_policy_grant,
        _source_ip_excludes_atlas,
        _role_not_authorized,
        _trust_without_external_id,
    ],
)
def test_each_preflight_failure_is_diagnosed_and_nothing_is_written(clean_testbed, testbed_env, run_playbook, prepare):
    bed = clean_testbed
    project = bed.projects["empty"]
    args, name, words = prepare(bed, project, bed.keys["main"])
    bed.clear_logs()
    for check_mode in (True, False):
        run = run_playbook(play(task("enable", ignore_errors=True, project_id=project, **args)), env=testbed_env, check=check_mode)
        result = failure(run, "enable")
        assert result["changed"] is False
        assert "nothing was changed" in result["msg"]
        assert f"{name}:" in result["msg"] and words in result["msg"], result["msg"]
        failing = checks_by_name(result)[name]
        assert failing["ok"] is False and failing["fix"]
        assert all_writes(bed) == []
        assert ear(bed, project)["enabled"] is False


def test_all_problems_are_reported_together(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["empty"]
    key = bed.keys["main"]
    role = ready_role(bed, project, key["arn"], identity=False)
    bed.aws_client("kms").disable_key(KeyId=key["key_id"])
    bed.clear_logs()
    enable = task("enable", ignore_errors=True, project_id=project, customer_master_key_id=key["key_id"], role_id=role["role_id"])
    failed = failure(run_playbook(play(enable), env=testbed_env), "enable")
    assert "Preflight found 2 problem(s)" in failed["msg"]
    assert "(1) key_state:" in failed["msg"] and "(2) role_policy:" in failed["msg"]
    assert "Fix: enable the key" in failed["msg"] and "Fix: give arn:aws:iam::111111111111:role/atlas-kms an identity policy" in failed["msg"]
    assert all_writes(bed) == []


def test_valid_false_after_a_permission_is_removed_is_reported(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["empty"]
    key = bed.keys["main"]
    role = ready_role(bed, project, key["arn"])
    enable = task("enable", project_id=project, customer_master_key_id=key["key_id"], role_id=role["role_id"])
    run_playbook(play(enable), env=testbed_env).assert_ok()
    bed.aws_client("iam").delete_role_policy(RoleName=ROLE_NAME, PolicyName="atlas-kms")
    bed.clear_logs()

    run = run_playbook(play(task("enable", ignore_errors=True, **enable["cmk.atlas.encryption_at_rest"])), env=testbed_env)
    result = failure(run, "enable")
    assert "valid: false" in result["msg"]
    assert "role_policy:" in result["msg"] and "no identity policy of" in result["msg"]
    assert result["encryption_at_rest"]["valid"] is False
    assert all_writes(bed) == []


@pytest.mark.scenario("demo")
def test_valid_staying_false_after_the_write_fails_with_the_diagnosis(clean_testbed, testbed_env, run_playbook):
    """The control plane may use the key while the running cluster's nodes may not: Atlas accepts, then reports valid: false."""
    bed = clean_testbed
    project = bed.projects["legacy"]
    key = bed.keys["main"]
    role = ready_role(bed, project, key["arn"], identity=False)
    statement = kms_statement(key["arn"], condition={"IpAddress": {"aws:SourceIp": ["198.51.100.0/24"]}})
    bed.aws_client("iam").put_role_policy(RoleName=ROLE_NAME, PolicyName="atlas-kms", PolicyDocument=json.dumps(policy(statement)))
    bed.clear_logs()
    switch = task("switch", ignore_errors=True, project_id=project, role_id=role["role_id"], confirm_switch_to_role=True, valid_timeout=1)

    result = failure(run_playbook(play(switch), env=testbed_env), "switch")
    assert result["changed"] is True
    assert "does not report the key valid after 1 s" in result["msg"]
    assert "cluster nodes' public addresses" in result["msg"]
    assert result["encryption_at_rest"]["valid"] is False
    assert checks_by_name(result)["source_ip"]["ok"] is True
    assert [call["operation"] for call in atlas_writes(bed)] == [ATLAS_WRITE]


# -- switch from credentials ----------------------------------------------------------------------


def _secrets(bed):
    return [bed.users["legacy"]["secret_access_key"], bed.operator["secret_access_key"], bed.api_key["private_key"]]


@pytest.mark.scenario("demo")
def test_switch_needs_confirmation_check_mode_warns(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["legacy"]
    key = bed.keys["main"]
    role = ready_role(bed, project, key["arn"])
    bed.clear_logs()
    switch = task("switch", ignore_errors=True, project_id=project, role_id=role["role_id"])

    refused = failure(run_playbook(play(switch), env=testbed_env), "switch")
    assert "cannot undo" in refused["msg"] and "confirm_switch_to_role: true" in refused["msg"]
    assert bed.legacy_access_key_id in refused["msg"]
    assert all_writes(bed) == []

    check = run_playbook(play(switch), env=testbed_env, check=True, diff=True)
    assert check.failed_tasks() == []
    predicted = check.task("switch")
    assert predicted["changed"] is True and predicted["switched_to_role"] is True
    assert any("cannot undo" in warning and "refuses it unless confirm_switch_to_role" in warning for warning in predicted["warnings"])
    assert predicted["diff"]["before"]["access_method"] == "credentials"
    assert predicted["diff"]["before"]["access_key_id"] == bed.legacy_access_key_id
    assert predicted["diff"]["before"]["secret_access_key"] == "(hidden)"
    assert predicted["diff"]["after"]["access_method"] == "role" and "secret_access_key" not in predicted["diff"]["after"]
    assert all_writes(bed) == []
    assert ear(bed, project)["accessKeyID"] == bed.legacy_access_key_id


@pytest.mark.scenario("demo")
def test_confirmed_switch_keeps_key_deactivates_old_key_leaks_no_secret_and_never_goes_back(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["legacy"]
    key = bed.keys["main"]
    legacy = bed.users["legacy"]
    role = ready_role(bed, project, key["arn"])
    before = ear(bed, project)
    bed.clear_logs()
    switch = task("switch", project_id=project, role_id=role["role_id"], confirm_switch_to_role=True, deactivate_previous_access_key=True)

    check = run_playbook(play(switch), env=testbed_env, check=True, diff=True).assert_ok().task("switch")
    assert checks_by_name(check)["previous_access_key"]["ok"] is True
    assert all_writes(bed) == []

    run = run_playbook(play(switch), env=testbed_env, diff=True, verbosity=3).assert_ok()
    result = run.task("switch")
    assert result["changed"] is True
    assert result["switched_to_role"] is True
    assert result["previous_access_key_id"] == legacy["access_key_id"]
    assert result["previous_access_key_deactivated"] is True
    assert result["encryption_at_rest"]["valid"] is True
    assert result["diff"]["after"] == check["diff"]["after"]
    state = ear(bed, project)
    assert state["roleId"] == role["role_id"] and not state["credentialsStored"]
    assert (state["customerMasterKeyID"], state["region"]) == (before["customerMasterKeyID"], before["region"])
    writes = [(call["system"], call["operation"]) for call in all_writes(bed)]
    assert writes == [("atlas", ATLAS_WRITE), ("aws", "UpdateAccessKey")]
    keys = bed.aws_client("iam").list_access_keys(UserName=legacy["name"])["AccessKeyMetadata"]
    assert [(item["AccessKeyId"], item["Status"]) for item in keys] == [(legacy["access_key_id"], "Inactive")]
    for secret in _secrets(bed):
        assert secret not in run.output
        assert secret not in json.dumps(run.results)

    bed.clear_logs()
    again = run_playbook(play(switch), env=testbed_env).assert_ok().task("switch")
    assert again["changed"] is False and again["switched_to_role"] is False
    assert all_writes(bed) == []

    back = task(
        "back", ignore_errors=True, project_id=project, legacy_access_key_id=legacy["access_key_id"], legacy_secret_access_key=legacy["secret_access_key"]
    )
    for check_mode in (True, False):
        refused = run_playbook(play(back), env=testbed_env, check=check_mode, verbosity=3)
        assert "can never go back to an access key" in failure(refused, "back")["msg"]
        assert legacy["secret_access_key"] not in refused.output
        assert all_writes(bed) == []
    assert ear(bed, project)["roleId"] == role["role_id"]


@pytest.mark.scenario("demo")
def test_legacy_access_key_rotation_sends_the_secret_once_and_shows_it_nowhere(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["legacy"]
    iam = bed.aws_client("iam")
    created = iam.create_access_key(UserName="atlas-kms-legacy")["AccessKey"]
    bed.clear_logs()
    rotate = task("rotate", project_id=project, legacy_access_key_id=created["AccessKeyId"], legacy_secret_access_key=created["SecretAccessKey"])

    run = run_playbook(play(rotate), env=testbed_env, diff=True, verbosity=3).assert_ok()
    result = run.task("rotate")
    assert result["changed"] is True
    assert result["diff"]["after"]["access_key_id"] == created["AccessKeyId"]
    assert result["diff"]["after"]["secret_access_key"] == "(hidden)"
    assert ear(bed, project)["accessKeyID"] == created["AccessKeyId"]
    assert created["SecretAccessKey"] not in run.output and created["SecretAccessKey"] not in json.dumps(run.results)
    assert [call["operation"] for call in all_writes(bed)] == [ATLAS_WRITE]

    bed.clear_logs()
    assert run_playbook(play(rotate), env=testbed_env).assert_ok().task("rotate")["changed"] is False
    assert all_writes(bed) == []


# -- cross-account key ------------------------------------------------------------------------------


def _cross_account_setup(bed):
    project = bed.projects["cross"]
    key = bed.keys["main"]
    role = ready_role(bed, project, key["arn"], account="R")
    kms = bed.aws_client("kms", account="K", region=key["region"])
    grant = {"Sid": "AtlasRole", "Effect": "Allow", "Principal": {"AWS": role["arn"]}, "Action": ACTIONS, "Resource": "*"}
    kms.put_key_policy(KeyId=key["key_id"], PolicyName="default", Policy=json.dumps(root_key_policy(bed.accounts["K"], grant)))
    return project, key, role


@pytest.mark.scenario("cross_account")
def test_cross_account_bare_id_is_refused_or_converted_to_the_arn(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project, key, role = _cross_account_setup(bed)
    bed.clear_logs()
    bare = {"project_id": project, "customer_master_key_id": key["key_id"], "role_id": role["role_id"]}

    refused = failure(run_playbook(play(task("enable", ignore_errors=True, **bare)), env=testbed_env), "enable")
    assert "key_exists:" in refused["msg"] and "full ARN" in refused["msg"]
    assert all_writes(bed) == []

    owner = bed.roles["key_admin"]["arn"]
    converted = run_playbook(play(task("enable", key_owner_assume_role_arn=owner, **bare)), env=testbed_env).assert_ok().task("enable")
    assert converted["changed"] is True
    assert ear(bed, project)["customerMasterKeyID"] == key["arn"]
    checks = checks_by_name(converted)
    assert checks["key_arn"]["ok"] is True and key["arn"] in checks["key_arn"]["message"]
    assert checks["key_policy"]["ok"] is True and checks["role_policy"]["ok"] is True
    assert converted["encryption_at_rest"]["valid"] is True
    assert [call["operation"] for call in all_writes(bed)] == [ATLAS_WRITE]

    bed.clear_logs()
    again = run_playbook(play(task("enable", project_id=project, customer_master_key_id=key["arn"], role_id=role["role_id"])), env=testbed_env)
    assert again.assert_ok().task("enable")["changed"] is False
    assert all_writes(bed) == []


@pytest.mark.scenario("cross_account")
def test_cross_account_arn_is_accepted_and_unread_key_policy_is_unchecked(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project, key, role = _cross_account_setup(bed)
    bed.clear_logs()
    result = (
        run_playbook(play(task("enable", project_id=project, customer_master_key_id=key["arn"], role_id=role["role_id"])), env=testbed_env)
        .assert_ok()
        .task("enable")
    )
    assert result["changed"] is True
    checks = checks_by_name(result)
    assert checks["key_policy"]["ok"] is None
    assert "key_owner_assume_role_arn" in checks["key_policy"]["fix"]
    assert any("key_policy not checked" in warning for warning in result["warnings"])
    assert ear(bed, project)["customerMasterKeyID"] == key["arn"]
    assert [call["operation"] for call in all_writes(bed)] == [ATLAS_WRITE]


# -- state absent ------------------------------------------------------------------------------------


@pytest.mark.scenario("demo")
def test_absent_refuses_while_clusters_use_it(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    bed.clear_logs()
    result = failure(run_playbook(play(task("disable", ignore_errors=True, project_id=bed.projects["legacy"], state="absent")), env=testbed_env), "disable")
    assert "clusters Archive, Orders use it" in result["msg"]
    assert all_writes(bed) == []


def test_absent_disables_then_converges(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["empty"]
    key = bed.keys["main"]
    role = ready_role(bed, project, key["arn"])
    response = atlas_api(bed).patch(
        f"/groups/{project}/encryptionAtRest",
        {"awsKms": {"enabled": True, "customerMasterKeyID": key["key_id"], "region": "US_EAST_1", "roleId": role["role_id"]}},
    )
    assert response.status_code == 200, response.text
    bed.clear_logs()
    disable = task("disable", project_id=project, state="absent")

    check = run_playbook(play(disable), env=testbed_env, check=True, diff=True).assert_ok().task("disable")
    assert check["changed"] is True
    assert check["diff"]["before"]["enabled"] is True and check["diff"]["after"]["enabled"] is False
    assert all_writes(bed) == []

    result = run_playbook(play(disable), env=testbed_env, diff=True).assert_ok().task("disable")
    assert result["changed"] is True
    assert result["diff"] == check["diff"]
    assert result["encryption_at_rest"]["access_method"] == "none"
    assert [call["operation"] for call in all_writes(bed)] == [ATLAS_WRITE]
    assert ear(bed, project)["enabled"] is False

    bed.clear_logs()
    assert run_playbook(play(disable), env=testbed_env).assert_ok().task("disable")["changed"] is False
    assert all_writes(bed) == []
    assert bed.proxy.request_log() == []
