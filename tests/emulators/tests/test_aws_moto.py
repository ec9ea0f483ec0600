"""moto server lifecycle, per-account isolation, cross-account STS, seeding helpers."""

import itertools
import json
import random

import botocore.exceptions
import pytest
import requests

from emulators.aws import Accounts, MotoServer, client, default_key_policy

# Accounts of their own, so these tests never meet the test bed's scenarios in the shared moto state.
_BASE = random.randrange(10**9)
_SERIAL = itertools.count()


def fresh_account():
    return f"9{_BASE:09d}{next(_SERIAL) % 100:02d}"


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture
def accounts(moto):
    return Accounts(moto.url)


def test_start_binds_a_free_loopback_port_and_stop_closes_it():
    server = MotoServer()
    url = server.start()
    assert url.startswith("http://127.0.0.1:")
    assert int(url.rsplit(":", 1)[1]) > 0
    assert server.start() == url  # starting twice keeps the running server
    assert client(url, "kms", fresh_account()).list_keys()["Keys"] == []
    server.stop()
    assert server.url is None
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/moto-api/", timeout=2)
    server.stop()  # stopping twice is harmless


def test_a_key_made_in_one_account_is_invisible_in_another(accounts):
    account_k, account_r = fresh_account(), fresh_account()
    key = accounts.create_key(account_k, alias="alias/only-in-k")
    assert key["arn"] == f"arn:aws:kms:us-east-1:{account_k}:key/{key['key_id']}"
    assert accounts.key_ids(account_k) == [key["key_id"]]
    assert accounts.key_ids(account_r) == []
    kms_r = accounts.client("kms", account_r)
    with pytest.raises(kms_r.exceptions.NotFoundException):
        kms_r.describe_key(KeyId=key["arn"])
    aliases = [alias["AliasName"] for alias in kms_r.list_aliases()["Aliases"]]
    assert "alias/only-in-k" not in aliases


def test_keys_are_regional(accounts):
    account = fresh_account()
    key = accounts.create_key(account, region="eu-west-1")
    assert key["arn"].startswith(f"arn:aws:kms:eu-west-1:{account}:key/")
    assert accounts.key_ids(account, "us-east-1") == []
    assert accounts.key_ids(account, "eu-west-1") == [key["key_id"]]


@pytest.mark.parametrize("state", ["Enabled", "Disabled", "PendingDeletion"])
def test_create_key_in_each_state(accounts, state):
    account = fresh_account()
    key = accounts.create_key(account, state=state)
    metadata = accounts.client("kms", account).describe_key(KeyId=key["key_id"])["KeyMetadata"]
    assert metadata["KeyState"] == state
    assert metadata["Enabled"] is (state == "Enabled")
    assert metadata["KeySpec"] == "SYMMETRIC_DEFAULT"


def test_create_key_rejects_unknown_state(accounts):
    with pytest.raises(ValueError, match="key state"):
        accounts.create_key(fresh_account(), state="Gone")


def test_default_and_given_key_policies(accounts):
    account = fresh_account()
    plain = accounts.create_key(account, alias="atlas")  # alias/ is added
    assert plain["alias"] == "alias/atlas"
    assert plain["alias_arn"] == f"arn:aws:kms:us-east-1:{account}:alias/atlas"
    assert accounts.key_policy(account, plain["key_id"]) == default_key_policy(account)
    policy = {"Version": "2012-10-17", "Statement": [{"Sid": "Only", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]}
    custom = accounts.create_key(account, policy=policy)
    assert accounts.key_policy(account, custom["key_id"]) == policy
    kms = accounts.client("kms", account)
    assert kms.describe_key(KeyId="alias/atlas")["KeyMetadata"]["KeyId"] == plain["key_id"]


def test_role_with_trust_policy_inline_policy_and_tags(accounts):
    account, trusted = fresh_account(), fresh_account()
    role = accounts.create_role(
        account,
        "cmk-test-role",
        trusted_principals=[trusted],
        inline_policies={"kms": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}},
        tags={"owner": "tests"},
    )
    assert role["arn"] == f"arn:aws:iam::{account}:role/cmk-test-role"
    iam = accounts.client("iam", account)
    stored = iam.get_role(RoleName="cmk-test-role")["Role"]
    assert stored["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": [f"arn:aws:iam::{trusted}:root"]}
    assert iam.list_role_policies(RoleName="cmk-test-role")["PolicyNames"] == ["kms"]
    assert iam.list_role_tags(RoleName="cmk-test-role")["Tags"] == [{"Key": "owner", "Value": "tests"}]


def test_user_access_key_acts_in_the_users_account(moto, accounts):
    account = fresh_account()
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
    user = accounts.create_user_with_access_key(account, "legacy", document, policy_name="kms")
    assert user["arn"] == f"arn:aws:iam::{account}:user/legacy"
    assert user["access_key_id"].startswith("AKIA")
    assert moto.account_for_access_key(user["access_key_id"]) == account
    stored = accounts.client("iam", account).get_user_policy(UserName="legacy", PolicyName="kms")["PolicyDocument"]
    assert stored == document
    sts = client(moto.url, "sts", credentials=user)
    assert sts.get_caller_identity()["Account"] == account
    # Credentials moto does not know act in its default account, not in the user's.
    assert client(moto.url, "sts", credentials={"access_key_id": "AKIAUNKNOWN", "secret_access_key": "x"}).get_caller_identity()["Account"] != account


def test_assume_role_into_another_account_acts_there(moto, accounts):
    account_r, account_k = fresh_account(), fresh_account()
    operator = accounts.create_user_with_access_key(account_r, "operator")
    key = accounts.create_key(account_k, alias="alias/shared")
    role = accounts.create_role(account_k, "cmk-atlas-key-admin", trusted_principals=[account_r])
    sts_r = client(moto.url, "sts", credentials=operator)
    assert sts_r.get_caller_identity()["Arn"] == operator["arn"]
    assumed = sts_r.assume_role(RoleArn=role["arn"], RoleSessionName="cmk-atlas")["Credentials"]
    credentials = {"access_key_id": assumed["AccessKeyId"], "secret_access_key": assumed["SecretAccessKey"], "session_token": assumed["SessionToken"]}
    identity = client(moto.url, "sts", credentials=credentials).get_caller_identity()
    assert identity["Account"] == account_k
    assert identity["Arn"] == f"arn:aws:sts::{account_k}:assumed-role/cmk-atlas-key-admin/cmk-atlas"
    kms_k = client(moto.url, "kms", credentials=credentials)
    assert [k["KeyId"] for k in kms_k.list_keys()["Keys"]] == [key["key_id"]]
    policy = default_key_policy(account_k)
    statement = {"Sid": "AtlasRole", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account_r}:root"}, "Action": "kms:Decrypt", "Resource": "*"}
    policy["Statement"].append(statement)
    kms_k.put_key_policy(KeyId=key["arn"], PolicyName="default", Policy=json.dumps(policy))
    assert accounts.key_policy(account_k, key["key_id"]) == policy
    # The operator's own credentials still act in R, where the key does not exist.
    kms_r = client(moto.url, "kms", credentials=operator)
    with pytest.raises(botocore.exceptions.ClientError) as error:
        kms_r.describe_key(KeyId=key["arn"])
    assert error.value.response["Error"]["Code"] == "NotFoundException"


def test_an_isolated_server_keeps_state_of_its_own(moto, accounts):
    account = fresh_account()
    accounts.create_key(account)
    with MotoServer(isolated=True) as isolated:
        assert isolated.url != moto.url
        elsewhere = Accounts(isolated.url)
        assert elsewhere.key_ids(account) == []
        key = elsewhere.create_key(account)
        assert elsewhere.key_ids(account) == [key["key_id"]]
        isolated.reset()
        assert elsewhere.key_ids(account) == []
        assert len(accounts.key_ids(account)) == 1  # the reset did not reach this process's moto
        url = isolated.url
    assert isolated.url is None
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/moto-api/", timeout=2)
