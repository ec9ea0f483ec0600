"""cmk.atlas.encryption_at_rest_info through real ansible-playbook runs against the test bed."""

import json

import pytest
from emulators.atlas.testing import AtlasClient, kms_statement, policy, trust_policy


def play(*tasks):
    return [{"name": "encryption at rest info", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": list(tasks)}]


def info(name, project_id):
    return {"name": name, "cmk.atlas.encryption_at_rest_info": {"project_id": project_id}}


def enable_with_role(bed, project_id, key):
    """Atlas role, trusted IAM role with a KMS policy, authorized, and encryption at rest enabled with it."""
    api = AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])
    role = api.post(f"/groups/{project_id}/cloudProviderAccess", {"providerName": "AWS"}).json()
    iam = bed.aws_client("iam")
    trust = trust_policy(role["atlasAWSAccountArn"], role["atlasAssumedRoleExternalId"])
    arn = iam.create_role(RoleName="atlas-kms", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="atlas-kms", PolicyName="atlas-kms", PolicyDocument=json.dumps(policy(kms_statement(key["arn"]))))
    response = api.patch(f"/groups/{project_id}/cloudProviderAccess/{role['roleId']}", {"providerName": "AWS", "iamAssumedRoleArn": arn})
    assert response.status_code == 200, response.text
    aws_kms = {"enabled": True, "customerMasterKeyID": key["key_id"], "region": "US_EAST_1", "roleId": role["roleId"]}
    response = api.patch(f"/groups/{project_id}/encryptionAtRest", {"awsKms": aws_kms})
    assert response.status_code == 200, response.text
    return role["roleId"], arn


@pytest.mark.scenario("demo")
def test_credentials_and_none_in_check_mode_too(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    bed.clear_logs()
    for check_mode in (False, True):
        run = run_playbook(play(info("legacy", bed.projects["legacy"]), info("plain", bed.projects["plain"])), env=testbed_env, check=check_mode).assert_ok()
        legacy = run.task("legacy")
        assert legacy["changed"] is False
        config = legacy["encryption_at_rest"]
        assert config["access_method"] == "credentials"
        assert config["access_key_id"] == bed.legacy_access_key_id
        assert config["customer_master_key_id"] == bed.keys["main"]["key_id"]
        assert (config["region"], config["aws_region"]) == ("US_EAST_1", "us-east-1")
        assert config["valid"] is True
        assert legacy["role"] is None
        assert legacy["clusters_using"] == ["Archive", "Orders"]
        assert bed.users["legacy"]["secret_access_key"] not in run.output

        plain = run.task("plain")
        assert plain["encryption_at_rest"]["access_method"] == "none"
        assert plain["encryption_at_rest"]["enabled"] is False
        assert plain["clusters_using"] == []
    assert bed.write_calls() == []
    assert bed.proxy.request_log() == []


def test_role_with_its_iam_role_and_valid_flag(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    project = bed.projects["empty"]
    role_id, arn = enable_with_role(bed, project, bed.keys["main"])
    bed.clear_logs()

    result = run_playbook(play(info("read", project)), env=testbed_env).assert_ok().task("read")
    config = result["encryption_at_rest"]
    assert config["access_method"] == "role"
    assert (config["role_id"], config["iam_role_arn"], config["valid"]) == (role_id, arn, True)
    assert result["role"]["role_id"] == role_id
    assert result["role"]["iam_assumed_role_arn"] == arn
    assert result["role"]["feature_usages"] == [{"feature_type": "ENCRYPTION_AT_REST", "feature_id": None}]

    # Atlas re-evaluates the key on every read: a removed permission shows at once.
    bed.aws_client("iam").delete_role_policy(RoleName="atlas-kms", PolicyName="atlas-kms")
    after = run_playbook(play(info("read", project)), env=testbed_env).assert_ok().task("read")
    assert after["encryption_at_rest"]["valid"] is False
    assert bed.write_calls() == []
