"""cmk.atlas.verify: the enable plan's read and judge phases, one module run per project, never a write."""

import json

import pytest

pytestmark = pytest.mark.integration

VERIFY = "cmk.atlas.verify"
ENABLE = "cmk.atlas.enable"
TASK = "cmk.atlas.verify : Read and judge the project as enable would"
REPORT_TASK = "cmk.atlas.verify : Report the project"
FAST = {"cmk_atlas_connection": {"retries": 1, "timeout": 10}, "cmk_atlas_authorize_timeout": 5, "cmk_atlas_valid_timeout": 5}
ROLE = "atlas-kms-plain"


def inventory_for(bed, write_inventory, **variables):
    return write_inventory(
        {
            "plain": {
                "cmk_atlas_project_id": bed.projects["plain"],
                "cmk_atlas_iam_role_name": ROLE,
                "cmk_atlas_kms_key": bed.keys["main"]["arn"],
                **FAST,
                **variables,
            }
        }
    )


def module_runs(run):
    return [result["task"] for result in run.results if result["task"] == TASK]


@pytest.mark.scenario("demo")
def test_a_converged_project_is_in_sync_in_one_module_run_that_reads_each_resource_once(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    inventory = inventory_for(bed, write_inventory)
    run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    bed.clear_logs()
    run = run_playbook(VERIFY, env=testbed_env, inventory=inventory).assert_ok()
    report = run.task(REPORT_TASK)["msg"]
    assert report["in_sync"] is True, report
    assert report["checks"] == dict.fromkeys(("role", "trust_policy", "kms_permissions", "key_state", "key_policy", "valid", "source_ips"), True)
    assert (report["changes"], report["problems"], report["permissions_beyond_kms"]) == ([], [], [])
    assert module_runs(run) == [TASK]
    assert bed.write_calls() == []
    reads = sorted(entry["operation_id"] for entry in bed.atlas.request_log() if entry["status"] != 401)
    assert reads == ["getGroupEncryptionAtRest", "listGroupCloudProviderAccess", "listGroupClusters"]
    aws_reads = sorted(entry["operation"] for entry in bed.proxy.request_log())
    assert aws_reads == sorted(set(aws_reads)), aws_reads


@pytest.mark.scenario("demo")
def test_drift_is_reported_with_what_enable_would_do_and_nothing_is_written(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    inventory = inventory_for(bed, write_inventory)
    run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    iam = bed.aws_client("iam")
    # Someone widens the role: another inline policy, and a trust that also admits an EC2 instance.
    s3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=ROLE, PolicyName="extra", PolicyDocument=json.dumps(s3))
    trust = iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]
    trust["Statement"].append({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"})
    iam.update_assume_role_policy(RoleName=ROLE, PolicyDocument=json.dumps(trust))

    bed.clear_logs()
    run = run_playbook(VERIFY, env=testbed_env, inventory=inventory)
    assert run.rc != 0
    report = run.task(REPORT_TASK)["msg"]
    assert report["drifted"] == ["trust_policy", "kms_permissions"], report
    assert any("extra" in text and "s3:*" in text for text in report["permissions_beyond_kms"]), report
    assert any("trust policy" in change for change in report["changes"]), report
    assert "trust_policy, kms_permissions" in run.task("cmk.atlas.verify : Fail on drift")["msg"]
    assert bed.write_calls() == []

    # Without failing, the report is the same.
    run = run_playbook(VERIFY, env=testbed_env, inventory=inventory, extra_vars={"cmk_atlas_verify_fail_on_drift": False}).assert_ok()
    assert run.task(REPORT_TASK)["msg"]["drifted"] == ["trust_policy", "kms_permissions"]


@pytest.mark.scenario("demo")
def test_a_project_without_encryption_and_a_disabled_key_are_drift_not_errors(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    inventory = inventory_for(bed, write_inventory)
    bed.clear_logs()
    run = run_playbook(VERIFY, env=testbed_env, inventory=inventory, extra_vars={"cmk_atlas_verify_fail_on_drift": False}).assert_ok()
    report = run.task(REPORT_TASK)["msg"]
    assert report["in_sync"] is False
    assert {"role", "trust_policy", "valid"} <= set(report["drifted"]), report
    assert report["access_method"] == "none"
    assert bed.write_calls() == []

    run_playbook(ENABLE, env=testbed_env, inventory=inventory).assert_ok()
    bed.aws_client("kms").disable_key(KeyId=bed.keys["main"]["arn"].rsplit("/", 1)[1])
    run = run_playbook(VERIFY, env=testbed_env, inventory=inventory, extra_vars={"cmk_atlas_verify_fail_on_drift": False}).assert_ok()
    report = run.task(REPORT_TASK)["msg"]
    assert "key_state" in report["drifted"]
    assert any("Disabled" in problem or "disabled" in problem for problem in report["problems"]), report
