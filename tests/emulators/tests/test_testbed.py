"""TestBed: scenarios as seeded in moto and in the Atlas emulator, env(), reset/load, write_calls()."""

import json

import boto3
import botocore.exceptions
import pytest
import requests
from requests.auth import HTTPDigestAuth

from emulators.testbed import ScenarioError, TestBed, atlas_region, load_scenario, scenario_names

R, K = "111111111111", "222222222222"


def atlas_get(bed, path, version="2023-01-01"):
    response = requests.get(
        bed.atlas_url + "/api/atlas/v2" + path,
        auth=HTTPDigestAuth(bed.api_key["public_key"], bed.api_key["private_key"]),
        headers={"Accept": f"application/vnd.atlas.{version}+json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def cluster(bed, group_id, name):
    return atlas_get(bed, f"/groups/{group_id}/clusters/{name}", "2024-08-05")


def env_session(bed, monkeypatch, auth="api_key"):
    """A boto3 session configured only by the environment that env() gives, as ansible-playbook would be."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in bed.env(auth).items():
        monkeypatch.setenv(name, value)
    return boto3.session.Session()


def role_names(bed, account):
    return [role["RoleName"] for role in bed.aws_client("iam", account).list_roles()["Roles"]]


def user_names(bed, account):
    return [user["UserName"] for user in bed.aws_client("iam", account).list_users()["Users"]]


def test_named_scenarios_exist():
    assert {"empty", "demo", "cross_account"} <= set(scenario_names())


def test_empty_scenario(clean_testbed):
    bed = clean_testbed
    assert bed.scenario_name == "empty"
    assert bed.accounts == {"R": R}
    assert bed.projects == {"empty": "660000000000000000000001"}
    assert bed.clusters == {"empty": []}
    key = bed.keys["main"]
    assert key["account"] == R
    assert key["alias"] == "alias/atlas-cmk"
    kms = bed.aws_client("kms")
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [key["key_id"]]
    assert kms.describe_key(KeyId="alias/atlas-cmk")["KeyMetadata"]["KeyState"] == "Enabled"
    policy = json.loads(kms.get_key_policy(KeyId=key["key_id"], PolicyName="default")["Policy"])
    assert policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{R}:root"}
    assert role_names(bed, "R") == []
    assert user_names(bed, "R") == ["cmk-atlas-operator"]
    assert bed.legacy_access_key_id is None
    group_id = bed.projects["empty"]
    assert atlas_get(bed, f"/groups/{group_id}/encryptionAtRest").get("awsKms", {}).get("enabled") in (None, False)
    assert atlas_get(bed, f"/groups/{group_id}/cloudProviderAccess").get("awsIamRoles", []) == []
    state = bed.atlas.project_state(group_id)
    assert (state["name"], state["roles"], state["clusters"]) == ("cmk-empty", [], {})
    assert state["encryptionAtRest"]["enabled"] is False


@pytest.mark.scenario("demo")
def test_demo_scenario(clean_testbed):
    bed = clean_testbed
    assert bed.projects == {"plain": "660000000000000000000011", "legacy": "660000000000000000000012"}
    assert bed.clusters == {"plain": ["Cluster0"], "legacy": ["Orders", "Archive"]}
    key = bed.keys["main"]
    assert key["arn"].startswith(f"arn:aws:kms:us-east-1:{R}:key/")
    assert bed.key_aliases == {"main": "alias/atlas-cmk"}
    legacy = bed.users["legacy"]
    assert legacy["arn"] == f"arn:aws:iam::{R}:user/atlas-kms-legacy"
    assert bed.legacy_access_key_id == legacy["access_key_id"]
    iam = bed.aws_client("iam")
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName="atlas-kms-legacy")["AccessKeyMetadata"]] == [legacy["access_key_id"]]
    document = iam.get_user_policy(UserName="atlas-kms-legacy", PolicyName="atlas-kms")["PolicyDocument"]
    assert document["Statement"][0]["Resource"] == key["arn"]
    assert set(document["Statement"][0]["Action"]) == {"kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"}
    assert bed.moto.account_for_access_key(legacy["access_key_id"]) == R

    plain = atlas_get(bed, "/groups/660000000000000000000011/encryptionAtRest")
    assert plain.get("awsKms", {}).get("enabled") in (None, False)
    settings = atlas_get(bed, "/groups/660000000000000000000012/encryptionAtRest")["awsKms"]
    assert settings["enabled"] is True
    assert settings["customerMasterKeyID"] == key["key_id"]
    assert settings["region"] == "US_EAST_1"
    assert settings["accessKeyID"] == legacy["access_key_id"]
    assert settings["valid"] is True  # the emulator found the key and the user's grant in moto
    assert "roleId" not in settings or not settings["roleId"]
    assert "secretAccessKey" not in settings  # Atlas never returns the secret
    assert cluster(bed, "660000000000000000000011", "Cluster0")["encryptionAtRestProvider"] == "NONE"
    orders = cluster(bed, "660000000000000000000012", "Orders")
    archive = cluster(bed, "660000000000000000000012", "Archive")
    assert (orders["encryptionAtRestProvider"], orders["paused"]) == ("AWS", False)
    assert (archive["encryptionAtRestProvider"], archive["paused"]) == ("AWS", True)


@pytest.mark.scenario("cross_account")
def test_cross_account_scenario(clean_testbed, monkeypatch):
    bed = clean_testbed
    assert bed.accounts == {"R": R, "K": K}
    key = bed.keys["main"]
    assert key["account"] == K
    assert bed.aws_client("kms", "K").list_keys()["Keys"][0]["KeyId"] == key["key_id"]
    assert bed.aws_client("kms", "R").list_keys()["Keys"] == []
    assert role_names(bed, "R") == []  # the role for Atlas is the collection's to make
    admin = bed.roles["key_admin"]
    assert admin["arn"] == f"arn:aws:iam::{K}:role/cmk-atlas-key-admin"
    trust = bed.aws_client("iam", "K").get_role(RoleName="cmk-atlas-key-admin")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"AWS": [f"arn:aws:iam::{R}:root"]}
    assert bed.projects == {"cross": "660000000000000000000021"}

    # What the collection does with assume_role_arn: STS AssumeRole with the operator's keys, then act in K.
    session = env_session(bed, monkeypatch)
    assumed = session.client("sts").assume_role(RoleArn=admin["arn"], RoleSessionName="cmk-atlas")["Credentials"]
    kms_k = boto3.session.Session(
        aws_access_key_id=assumed["AccessKeyId"],
        aws_secret_access_key=assumed["SecretAccessKey"],
        aws_session_token=assumed["SessionToken"],
    ).client("kms")
    policy = json.loads(kms_k.get_key_policy(KeyId=key["arn"], PolicyName="default")["Policy"])
    policy["Statement"].append({"Sid": "AtlasKey", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{R}:root"}, "Action": "kms:Decrypt", "Resource": "*"})
    kms_k.put_key_policy(KeyId=key["arn"], PolicyName="default", Policy=json.dumps(policy))
    stored = json.loads(bed.aws_client("kms", "K").get_key_policy(KeyId=key["key_id"], PolicyName="default")["Policy"])
    assert stored == policy
    calls = [(e["service"], e["operation"], e["account"]) for e in bed.proxy.request_log()]
    assert calls == [("sts", "AssumeRole", R), ("kms", "GetKeyPolicy", K), ("kms", "PutKeyPolicy", K)]


def test_env_credentials_act_in_account_r_through_the_proxy(clean_testbed, monkeypatch):
    bed = clean_testbed
    env = bed.env()
    assert env["AWS_ENDPOINT_URL"] == bed.aws_endpoint_url != bed.moto_url
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["MONGODB_ATLAS_BASE_URL"] == bed.atlas_url
    assert (env["MONGODB_ATLAS_PUBLIC_KEY"], env["MONGODB_ATLAS_PRIVATE_KEY"]) == (bed.api_key["public_key"], bed.api_key["private_key"])
    identity = env_session(bed, monkeypatch).client("sts").get_caller_identity()
    assert identity["Account"] == R
    assert identity["Arn"] == f"arn:aws:iam::{R}:user/cmk-atlas-operator"
    [entry] = bed.proxy.request_log()
    assert (entry["service"], entry["operation"], entry["account"], entry["write"]) == ("sts", "GetCallerIdentity", R, False)
    service = bed.env("service_account")
    assert service["MONGODB_ATLAS_CLIENT_ID"] == bed.service_account["client_id"]
    assert "MONGODB_ATLAS_PUBLIC_KEY" not in service
    with pytest.raises(ValueError, match="auth"):
        bed.env("password")


def test_service_account_reaches_atlas(clean_testbed):
    bed = clean_testbed
    token = requests.post(
        bed.atlas_url + "/api/oauth/token",
        auth=(bed.service_account["client_id"], bed.service_account["client_secret"]),
        data={"grant_type": "client_credentials"},
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert token.status_code == 200, token.text
    response = requests.get(
        f"{bed.atlas_url}/api/atlas/v2/groups/{bed.projects['empty']}/encryptionAtRest",
        headers={"Authorization": f"Bearer {token.json()['access_token']}", "Accept": "application/vnd.atlas.2023-01-01+json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_aws_client_goes_straight_to_moto(clean_testbed):
    clean_testbed.aws_client("iam").create_role(RoleName="unlogged", AssumeRolePolicyDocument="{}")
    assert clean_testbed.proxy.request_log() == []
    assert role_names(clean_testbed, "R") == ["unlogged"]
    assert clean_testbed.aws_client("iam", R) is not None
    with pytest.raises(KeyError):
        clean_testbed.aws_client("iam", "Z")


@pytest.mark.scenario("demo")
def test_reset_restores_the_scenario(clean_testbed, monkeypatch):
    bed = clean_testbed
    env, arn, legacy_key = bed.env(), bed.keys["main"]["arn"], bed.legacy_access_key_id
    kms = bed.aws_client("kms")
    kms.delete_alias(AliasName="alias/atlas-cmk")
    kms.disable_key(KeyId=bed.keys["main"]["key_id"])
    bed.aws_client("iam").create_role(RoleName="stray", AssumeRolePolicyDocument="{}")
    bed.aws_client("iam", "K" if "K" in bed.accounts else "333333333333").create_role(RoleName="stray", AssumeRolePolicyDocument="{}")
    env_session(bed, monkeypatch).client("iam").list_roles()
    bed.proxy.fail("ListRoles", "throttling", count=10)
    bed.atlas.add_project("6600000000000000000000ff", "stray")
    bed.reset()
    assert bed.proxy.faults() == []
    assert bed.proxy.request_log() == []
    # moto's random source is seeded before seeding, so ids and keys come back the same.
    assert bed.env() == env
    assert bed.keys["main"]["arn"] == arn
    assert bed.legacy_access_key_id == legacy_key
    assert bed.aws_client("kms").describe_key(KeyId="alias/atlas-cmk")["KeyMetadata"]["KeyState"] == "Enabled"
    assert role_names(bed, "R") == []
    assert role_names(bed, "333333333333") == []
    assert atlas_get(bed, "/groups/660000000000000000000012/encryptionAtRest")["awsKms"]["accessKeyID"] == legacy_key
    status = requests.get(
        bed.atlas_url + "/api/atlas/v2/groups/6600000000000000000000ff/encryptionAtRest",
        auth=HTTPDigestAuth(bed.api_key["public_key"], bed.api_key["private_key"]),
        headers={"Accept": "application/vnd.atlas.2023-01-01+json"},
        timeout=10,
    ).status_code
    assert status == 404


def test_load_switches_scenarios(clean_testbed):
    bed = clean_testbed
    bed.load("cross_account")
    assert bed.scenario_name == "cross_account"
    assert set(bed.accounts) == {"R", "K"}
    assert bed.aws_client("kms", "R").list_keys()["Keys"] == []
    bed.load("demo")
    assert bed.roles == {}
    assert role_names(bed, "K" if "K" in bed.accounts else K) == []
    assert sorted(bed.projects) == ["legacy", "plain"]


def test_write_calls_cover_atlas_and_aws(clean_testbed, monkeypatch):
    bed = clean_testbed
    session = env_session(bed, monkeypatch)
    session.client("kms").describe_key(KeyId="alias/atlas-cmk")
    atlas_get(bed, f"/groups/{bed.projects['empty']}/encryptionAtRest")
    assert bed.write_calls() == []
    session.client("kms").tag_resource(KeyId=bed.keys["main"]["arn"], Tags=[{"TagKey": "a", "TagValue": "b"}])
    response = requests.post(
        f"{bed.atlas_url}/api/atlas/v2/groups/{bed.projects['empty']}/cloudProviderAccess",
        auth=HTTPDigestAuth(bed.api_key["public_key"], bed.api_key["private_key"]),
        headers={"Accept": "application/vnd.atlas.2023-01-01+json", "Content-Type": "application/vnd.atlas.2023-01-01+json"},
        json={"providerName": "AWS"},
        timeout=10,
    )
    assert response.ok, response.text
    calls = bed.write_calls()
    # HTTP digest: the first attempt is answered 401 with the challenge; it is a write call all the same.
    atlas_calls = [call for call in calls if call["system"] == "atlas"]
    assert [(call["method"], call["status"], call["operation"]) for call in atlas_calls] == [
        ("POST", 401, "createGroupCloudProviderAccess"),
        ("POST", response.status_code, "createGroupCloudProviderAccess"),
    ]
    assert atlas_calls[0]["path"].endswith("/cloudProviderAccess")
    assert calls[-1] == {"system": "aws", "service": "kms", "operation": "TagResource", "account": R, "status": 200}
    bed.clear_logs()
    assert bed.write_calls() == []


def policy(resource, **extra):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": resource, **extra}]}


def test_scenario_from_a_file_with_references(clean_testbed, tmp_path):
    scenario = {
        "description": "file scenario",
        "aws": {
            "region": "eu-west-1",
            "accounts": {"R": R, "K": K},
            "roles": {"reader": {"account": "R", "name": "key-reader", "trust": ["K"], "policies": {"use": policy("${keys.k1.arn}")}}},
            "users": {"legacy": {"name": "old", "policies": {"p": policy("${keys.k2.arn}", Sid="in${region}")}}},
            "keys": {
                "k1": {"account": "K", "alias": "first", "state": "Disabled", "policy": {"Statement": [{"Principal": {"AWS": "${roles.reader.arn}"}}]}},
                "k2": {"state": "PendingDeletion", "region": "eu-central-1"},
            },
        },
        "atlas": {
            "api_keys": [{"public_key": "filekeyx", "private_key": "0b8f7c55-3e4a-4f5b-8c1d-9a2e6f7d1c00"}],
            "projects": {"p": {"id": "6600000000000000000000aa", "name": "file", "clusters": [{"name": "Generated"}]}},
        },
    }
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(scenario))
    bed = clean_testbed.load(str(path))
    assert bed.scenario_name == "mine"
    assert bed.region == "eu-west-1"
    assert bed.env()["AWS_REGION"] == "eu-west-1"
    assert bed.keys["k1"]["arn"].startswith(f"arn:aws:kms:eu-west-1:{K}:key/")
    assert bed.keys["k1"]["alias"] == "alias/first"
    assert bed.keys["k2"]["arn"].startswith(f"arn:aws:kms:eu-central-1:{R}:key/")
    k1_policy = json.loads(bed.aws_client("kms", "K").get_key_policy(KeyId=bed.keys["k1"]["key_id"], PolicyName="default")["Policy"])
    assert k1_policy == {"Statement": [{"Principal": {"AWS": f"arn:aws:iam::{R}:role/key-reader"}}]}
    role_policy = bed.aws_client("iam").get_role_policy(RoleName="key-reader", PolicyName="use")["PolicyDocument"]
    assert role_policy["Statement"][0]["Resource"] == bed.keys["k1"]["arn"]
    user_policy = bed.aws_client("iam").get_user_policy(UserName="old", PolicyName="p")["PolicyDocument"]
    assert user_policy == policy(bed.keys["k2"]["arn"], Sid="ineu-west-1")
    kms_k = bed.aws_client("kms", "K", "eu-west-1")
    assert kms_k.describe_key(KeyId=bed.keys["k1"]["key_id"])["KeyMetadata"]["KeyState"] == "Disabled"
    kms_r = bed.aws_client("kms", "R", "eu-central-1")
    assert kms_r.describe_key(KeyId=bed.keys["k2"]["key_id"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert bed.api_key["public_key"] == "filekeyx"
    assert bed.clusters == {"p": ["Generated"]}
    assert cluster(bed, "6600000000000000000000aa", "Generated")["encryptionAtRestProvider"] == "NONE"


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ({"aws": {"keyz": {}}}, "aws: unknown keys"),
        ({"atlass": {}}, "scenario: unknown keys"),
        ({"aws": {"accounts": {"K": K}}}, "account R"),
        ({"aws": {"accounts": {"R": "12"}}}, "12-digit"),
        ({"aws": {"keys": {"k": {"account": "Q"}}}}, "aws.keys.k: unknown account 'Q'"),
        ({"aws": {"users": {"u": {"policies": {"p": {"Resource": "${keys.none.arn}"}}}}}}, r"aws.users.u: unknown reference \$\{keys.none.arn\}"),
        ({"atlas": {"projects": {"p": {"id": "123"}}}}, "24-digit"),
        ({"atlas": {"projects": {"p": {"id": "6600000000000000000000ab", "encryption_at_rest": {"aws_kms": {"key": "x"}}}}}}, "not a key"),
    ],
)
def test_bad_scenarios_name_the_place(clean_testbed, scenario, message):
    with pytest.raises(ScenarioError, match=message):
        clean_testbed.load(scenario)


def test_unknown_scenario_name():
    with pytest.raises(ScenarioError, match=r"unknown scenario 'nope'.*cross_account, demo, empty"):
        load_scenario("nope")


def test_a_stopped_test_bed_only_chooses_a_scenario():
    bed = TestBed("empty")
    assert bed.load("demo") is bed
    assert bed.scenario_name == "demo"
    assert not bed.running
    with pytest.raises(RuntimeError, match="not running"):
        bed.reset()
    bed.stop()  # harmless when not started


def test_atlas_region_names():
    assert atlas_region("us-east-1") == "US_EAST_1"
    assert atlas_region("ap-southeast-2") == "AP_SOUTHEAST_2"


@pytest.mark.scenario("demo")
def test_write_hosts_file_gives_node_host_names_their_current_addresses(clean_testbed, tmp_path):
    bed = clean_testbed
    processes = atlas_get(bed, "/groups/660000000000000000000012/processes")["results"]
    path = bed.write_hosts_file(str(tmp_path / "nodes.hosts"))
    entries = {}
    for line in (tmp_path / "nodes.hosts").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            entries[fields[1]] = fields[0]
    # Every node of every project, the process host names Atlas reports among them.
    assert entries == bed.node_addresses()
    assert len(entries) == 9
    assert {p["hostname"] for p in processes} <= set(entries)
    orders = bed.atlas.project_state("660000000000000000000012")["clusters"]["Orders"]["nodes"][0]
    assert entries[orders["hostname"]] == orders["public_ip"]

    bed.atlas.set_node_public_ip("660000000000000000000012", "Orders", orders["hostname"], "203.0.113.250")
    bed.write_hosts_file(path)
    assert f"203.0.113.250 {orders['hostname']}" in (tmp_path / "nodes.hosts").read_text()


def test_describe_names_urls_and_credentials(clean_testbed):
    text = clean_testbed.describe()
    for value in (clean_testbed.atlas_url, clean_testbed.aws_endpoint_url, clean_testbed.moto_url, clean_testbed.operator["access_key_id"]):
        assert value in text


@pytest.fixture
def foreign_aws_profile(monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("MONGODB_ATLAS_CLIENT_ID", "someone-else")


def test_testbed_env_leaves_out_foreign_settings(foreign_aws_profile, testbed_env, clean_testbed):
    assert "AWS_PROFILE" not in testbed_env
    assert "MONGODB_ATLAS_CLIENT_ID" not in testbed_env
    assert testbed_env["AWS_ENDPOINT_URL"] == clean_testbed.aws_endpoint_url
    assert "PATH" in testbed_env


def test_faults_through_the_test_bed(clean_testbed, monkeypatch):
    bed = clean_testbed
    bed.proxy.fail("DescribeKey", "access_denied", count=1)
    kms = env_session(bed, monkeypatch).client("kms")
    with pytest.raises(botocore.exceptions.ClientError) as error:
        kms.describe_key(KeyId="alias/atlas-cmk")
    assert error.value.response["Error"]["Code"] == "AccessDeniedException"
    assert kms.describe_key(KeyId="alias/atlas-cmk")["KeyMetadata"]["KeyId"] == bed.keys["main"]["key_id"]
