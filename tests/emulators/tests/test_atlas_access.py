"""Cloud provider access and encryption at rest: each check Atlas makes refuses a wrong setup and accepts a
right one, evaluated by the emulator against moto's state."""

import json
import re
import time
import uuid

import pytest

from emulators.atlas import AtlasEmulator
from emulators.atlas.contract import SpecContract
from emulators.atlas.testing import AtlasClient, Scenario, kms_statement, policy, root_key_policy, start_moto, trust_policy

PUBLIC, PRIVATE = "atlas-public-key", "atlas-private-key"
ROLE_ACCOUNT = "111111111111"
KEY_ACCOUNT = "222222222222"
EGRESS = ("198.51.100.10", "198.51.100.11")


@pytest.fixture(scope="module")
def moto_url():
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture(scope="module")
def emulator(moto_url):
    emu = AtlasEmulator(moto_url, egress_ips=EGRESS, cluster_transition_seconds=0.2, contract=SpecContract())
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def clean(emulator):
    emulator.reset()
    emulator.add_api_key(PUBLIC, PRIVATE)
    yield
    assert emulator.internal_errors() == []
    assert emulator.contract_violations() == []


@pytest.fixture
def api(emulator):
    return AtlasClient(emulator.base_url, PUBLIC, PRIVATE)


@pytest.fixture
def scenario(emulator, moto_url, api):
    return Scenario(emulator, moto_url, api, role_account=ROLE_ACCOUNT)


def error_code(response):
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == response.status_code
    return body["errorCode"]


# -- cloud provider access ---------------------------------------------------------------------------


def test_create_role_returns_atlas_account_and_a_fresh_external_id(scenario, api):
    first = scenario.create_atlas_role()
    second = scenario.create_atlas_role()
    assert re.fullmatch(r"[a-f0-9]{24}", first["roleId"])
    assert first["atlasAWSAccountArn"] == "arn:aws:iam::536727724300:root"
    assert str(uuid.UUID(first["atlasAssumedRoleExternalId"])) == first["atlasAssumedRoleExternalId"]
    assert first["atlasAssumedRoleExternalId"] != second["atlasAssumedRoleExternalId"]
    assert first["featureUsages"] == []
    # Not authorized yet: Atlas sends both as null, it does not leave them out.
    assert (first["authorizedDate"], first["iamAssumedRoleArn"]) == (None, None)
    listed = api.get(f"/groups/{scenario.group_id}/cloudProviderAccess").json()
    assert [r["roleId"] for r in listed["awsIamRoles"]] == [first["roleId"], second["roleId"]]
    assert api.get(f"/groups/{scenario.group_id}/cloudProviderAccess/{first['roleId']}").json() == first


def test_unknown_project_and_role(scenario, api):
    missing = api.get("/groups/0123456789abcdef01234567/cloudProviderAccess")
    assert missing.status_code == 404
    assert error_code(missing) == "GROUP_NOT_FOUND"
    role = api.get(f"/groups/{scenario.group_id}/cloudProviderAccess/0123456789abcdef01234567")
    assert role.status_code == 404
    assert error_code(role) == "CLOUD_PROVIDER_ACCESS_ROLE_NOT_FOUND"


def test_authorize_with_a_right_trust_policy(scenario):
    scenario.create_atlas_role()
    scenario.create_iam_role()
    response = scenario.authorize()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["iamAssumedRoleArn"] == scenario.role_arn
    assert body["authorizedDate"]


@pytest.mark.parametrize(
    "make_trust",
    [
        pytest.param(lambda role: trust_policy("arn:aws:iam::999999999999:root", role["atlasAssumedRoleExternalId"]), id="wrong-account"),
        pytest.param(lambda role: trust_policy(role["atlasAWSAccountArn"], str(uuid.uuid4())), id="wrong-external-id"),
        pytest.param(lambda role: trust_policy(role["atlasAWSAccountArn"], None), id="no-external-id-condition"),
        pytest.param(lambda role: trust_policy(role["atlasAWSAccountArn"], "*", condition_operator="StringLike"), id="any-external-id"),
        pytest.param(
            lambda role: trust_policy(
                role["atlasAWSAccountArn"], role["atlasAssumedRoleExternalId"], extra_conditions={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}
            ),
            id="source-ip-excludes-atlas",
        ),
    ],
)
def test_authorize_refuses_a_wrong_trust_policy(scenario, make_trust):
    role = scenario.create_atlas_role()
    scenario.create_iam_role(trust=make_trust(role))
    response = scenario.authorize()
    assert response.status_code == 400
    assert error_code(response) == "CANNOT_ASSUME_ROLE"
    assert scenario.role_arn in response.json()["detail"]


@pytest.mark.parametrize("principal", ["536727724300", "*"])
def test_authorize_accepts_account_id_or_star_principal(scenario, principal):
    role = scenario.create_atlas_role()
    scenario.create_iam_role(trust=trust_policy(principal, role["atlasAssumedRoleExternalId"]))
    assert scenario.authorize().status_code == 200


def test_authorize_refuses_missing_role_and_malformed_arn(scenario):
    scenario.create_atlas_role()
    missing = scenario.authorize(f"arn:aws:iam::{ROLE_ACCOUNT}:role/does-not-exist-{scenario.suffix}")
    assert missing.status_code == 400
    assert error_code(missing) == "CANNOT_ASSUME_ROLE"
    malformed = scenario.authorize("arn:aws:iam::1234:user/someone")
    assert malformed.status_code == 400
    assert error_code(malformed) == "VALIDATION_ERROR"


def test_authorize_waits_for_iam_propagation(emulator, scenario):
    emulator.set_propagation_delay(0.4)
    scenario.create_atlas_role()
    scenario.create_iam_role()
    early = scenario.authorize()
    assert early.status_code == 400
    assert error_code(early) == "CANNOT_ASSUME_ROLE"
    time.sleep(0.5)
    assert scenario.authorize().status_code == 200


# -- encryption at rest with a role: what Atlas checks -----------------------------------------------


def test_role_based_setup_is_accepted_and_valid(scenario, api):
    scenario.ready_role()
    response = scenario.enable()
    assert response.status_code == 200, response.text
    aws_kms = response.json()["awsKms"]
    assert aws_kms == {
        "enabled": True,
        "customerMasterKeyID": scenario.key["KeyId"],
        "region": "EU_WEST_2",
        "roleId": scenario.role["roleId"],
        "requirePrivateNetworking": False,
        "valid": True,
    }
    assert response.json()["azureKeyVault"]["enabled"] is False
    assert response.json()["googleCloudKms"]["enabled"] is False
    role = api.get(f"/groups/{scenario.group_id}/cloudProviderAccess/{scenario.role['roleId']}").json()
    assert role["featureUsages"] == [{"featureType": "ENCRYPTION_AT_REST", "featureId": None}]


def test_role_must_exist_and_be_authorized(scenario):
    scenario.create_atlas_role()
    scenario.create_key()
    unknown = scenario.enable(role_id="0123456789abcdef01234567")
    assert unknown.status_code == 404
    assert error_code(unknown) == "CLOUD_PROVIDER_ACCESS_ROLE_NOT_FOUND"
    unauthorized = scenario.enable()
    assert unauthorized.status_code == 400
    assert error_code(unauthorized) == "CLOUD_PROVIDER_ACCESS_ROLE_NOT_AUTHORIZED"


def test_trust_broken_after_authorization_is_refused(scenario):
    scenario.ready_role()
    scenario.iam().update_assume_role_policy(RoleName=scenario.role_name, PolicyDocument=json.dumps(trust_policy("arn:aws:iam::999999999999:root", "x")))
    response = scenario.enable()
    assert response.status_code == 400
    assert error_code(response) == "CANNOT_ASSUME_ROLE"


def refused(response):
    assert response.status_code == 400, response.text
    assert error_code(response) == "INVALID_AWS_CREDENTIALS"
    return response.json()["detail"]


def test_missing_key_is_refused(scenario):
    scenario.ready_role()
    assert "not found" in refused(scenario.enable(key_id=str(uuid.uuid4())))


@pytest.mark.parametrize("state", ["Disabled", "PendingDeletion"])
def test_key_must_be_enabled(scenario, state):
    scenario.ready_role()
    if state == "Disabled":
        scenario.kms().disable_key(KeyId=scenario.key["KeyId"])
    else:
        scenario.kms().schedule_key_deletion(KeyId=scenario.key["KeyId"], PendingWindowInDays=7)
    assert state in refused(scenario.enable())


def test_key_must_be_in_the_given_region(scenario):
    scenario.ready_role()
    assert "not found" in refused(scenario.enable(region="US_EAST_1"))
    assert "region" in refused(scenario.enable(key_id=scenario.key["Arn"], region="US_EAST_1"))


def test_identity_policy_missing_an_action_is_refused(scenario):
    scenario.ready_role(identity=False)
    scenario.put_role_policy(policy(kms_statement(scenario.key["Arn"], actions=("kms:Encrypt", "kms:DescribeKey"))))
    detail = refused(scenario.enable())
    assert "kms:Decrypt" in detail
    assert "kms:Encrypt from" not in detail


def test_explicit_deny_wins(scenario):
    scenario.ready_role()
    scenario.put_role_policy(policy(kms_statement("*", actions=("kms:Decrypt",), effect="Deny")), name="deny")
    assert "explicit Deny" in refused(scenario.enable())


def test_wildcards_and_attached_managed_policy_are_honoured(scenario):
    scenario.ready_role(identity=False)
    document = policy(kms_statement("arn:aws:kms:*:*:key/*", actions=("kms:*",)))
    arn = scenario.iam().create_policy(PolicyName=f"atlas-kms-{scenario.suffix}", PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    scenario.iam().attach_role_policy(RoleName=scenario.role_name, PolicyArn=arn)
    assert scenario.enable().status_code == 200


def test_key_policy_without_delegation_is_refused(scenario):
    admin = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ROLE_ACCOUNT}:user/key-admin"}, "Action": "kms:*", "Resource": "*"}
    scenario.create_key(key_policy=policy(admin))
    scenario.ready_role()
    assert "neither names" in refused(scenario.enable())


def test_key_policy_naming_the_role_is_enough_in_the_same_account(scenario):
    scenario.create_atlas_role()
    scenario.create_iam_role()
    admin = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ROLE_ACCOUNT}:user/key-admin"}, "Action": "kms:*", "Resource": "*"}
    scenario.create_key(key_policy=policy(admin, kms_statement("*", principal={"AWS": scenario.role_arn})))
    assert scenario.authorize().status_code == 200
    assert scenario.enable().status_code == 200


# -- cross-account key -------------------------------------------------------------------------------


@pytest.fixture
def cross(emulator, moto_url, api):
    return Scenario(emulator, moto_url, api, role_account=ROLE_ACCOUNT, key_account=KEY_ACCOUNT)


def cross_ready(cross, key_statement_principal):
    cross.create_atlas_role()
    cross.create_iam_role()
    extra = [kms_statement("*", principal={"AWS": key_statement_principal(cross)})] if key_statement_principal else []
    cross.create_key(key_policy=root_key_policy(KEY_ACCOUNT, *extra))
    cross.put_role_policy(policy(kms_statement(cross.key["Arn"])))
    assert cross.authorize().status_code == 200


def test_cross_account_bare_key_id_is_refused(cross):
    cross_ready(cross, lambda c: c.role_arn)
    assert "full ARN" in refused(cross.enable())


def test_cross_account_arn_with_key_policy_naming_the_role_is_accepted(cross):
    cross_ready(cross, lambda c: c.role_arn)
    response = cross.enable(key_id=cross.key["Arn"])
    assert response.status_code == 200, response.text
    assert response.json()["awsKms"]["valid"] is True


def test_cross_account_key_policy_naming_the_account_is_accepted(cross):
    cross_ready(cross, lambda c: f"arn:aws:iam::{ROLE_ACCOUNT}:root")
    assert cross.enable(key_id=cross.key["Arn"]).status_code == 200


def test_cross_account_key_policy_not_naming_the_role_is_refused(cross):
    cross_ready(cross, None)
    assert f"account {KEY_ACCOUNT}" in refused(cross.enable(key_id=cross.key["Arn"]))


def test_cross_account_without_identity_policy_is_refused(cross):
    cross_ready(cross, lambda c: c.role_arn)
    cross.iam().delete_role_policy(RoleName=cross.role_name, PolicyName="atlas-kms")
    assert "needed for a key in another account" in refused(cross.enable(key_id=cross.key["Arn"]))


# -- source addresses --------------------------------------------------------------------------------


def ip_policy(scenario, addresses, operator="IpAddress"):
    return policy(kms_statement(scenario.key["Arn"], condition={operator: {"aws:SourceIp": [f"{a}/32" for a in addresses]}}))


def test_source_ip_condition_listing_the_egress_addresses_is_accepted(scenario):
    scenario.ready_role(identity=False)
    scenario.put_role_policy(ip_policy(scenario, EGRESS))
    assert scenario.enable().status_code == 200


def test_source_ip_condition_missing_an_egress_address_is_refused(scenario):
    scenario.ready_role(identity=False)
    scenario.put_role_policy(ip_policy(scenario, EGRESS[:1]))
    assert EGRESS[1] in refused(scenario.enable())


def test_not_ip_address_deny_excluding_the_egress_addresses(scenario):
    scenario.ready_role()
    deny = policy(kms_statement("*", actions=("kms:*",), effect="Deny", condition={"NotIpAddress": {"aws:SourceIp": [f"{a}/32" for a in EGRESS]}}))
    scenario.put_role_policy(deny, name="deny-elsewhere")
    assert scenario.enable().status_code == 200
    scenario.put_role_policy(
        policy(kms_statement("*", actions=("kms:*",), effect="Deny", condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})), "deny-elsewhere"
    )
    assert "explicit Deny" in refused(scenario.enable())


def test_node_addresses_count_once_a_cluster_uses_the_key(emulator, scenario, api):
    nodes = [{"hostname": f"c0-shard-00-0{i}.abcde.mongodb.net", "port": 27017, "public_ip": f"203.0.113.{10 + i}"} for i in range(3)]
    emulator.add_cluster(scenario.group_id, "c0", nodes=nodes)
    scenario.ready_role(identity=False)
    scenario.put_role_policy(ip_policy(scenario, EGRESS))
    assert scenario.enable().status_code == 200
    cluster = api.patch(f"/groups/{scenario.group_id}/clusters/c0", {"encryptionAtRestProvider": "AWS"})
    assert cluster.status_code == 400
    assert "203.0.113.10" in cluster.json()["detail"]
    scenario.put_role_policy(ip_policy(scenario, [*EGRESS, *(n["public_ip"] for n in nodes)]))
    assert api.patch(f"/groups/{scenario.group_id}/clusters/c0", {"encryptionAtRestProvider": "AWS"}).status_code == 200
    assert scenario.encryption_at_rest()["valid"] is True
    # A node moves to a new address the policy does not list: Atlas loses the key.
    emulator.set_node_public_ip(scenario.group_id, "c0", nodes[1]["hostname"], "203.0.113.99")
    assert scenario.encryption_at_rest()["valid"] is False


# -- valid reflects current AWS state ----------------------------------------------------------------


def test_valid_is_re_evaluated_on_every_read(scenario):
    scenario.ready_role()
    assert scenario.enable().status_code == 200
    assert scenario.encryption_at_rest()["valid"] is True
    scenario.iam().delete_role_policy(RoleName=scenario.role_name, PolicyName="atlas-kms")
    assert scenario.encryption_at_rest()["valid"] is False
    scenario.put_role_policy(policy(kms_statement(scenario.key["Arn"])))
    assert scenario.encryption_at_rest()["valid"] is True
    scenario.kms().disable_key(KeyId=scenario.key["KeyId"])
    assert scenario.encryption_at_rest()["valid"] is False


# -- features and deauthorization --------------------------------------------------------------------


def test_deauthorize_is_refused_while_the_role_is_in_use(scenario, api):
    scenario.ready_role()
    assert scenario.enable().status_code == 200
    path = f"/groups/{scenario.group_id}/cloudProviderAccess/AWS/{scenario.role['roleId']}"
    refused_delete = api.delete(path)
    assert refused_delete.status_code == 400
    assert error_code(refused_delete) == "CLOUD_PROVIDER_ACCESS_ROLE_IN_USE"
    assert api.patch(f"/groups/{scenario.group_id}/encryptionAtRest", {"awsKms": {"enabled": False}}).status_code == 200
    role = api.get(f"/groups/{scenario.group_id}/cloudProviderAccess/{scenario.role['roleId']}").json()
    assert role["featureUsages"] == []
    deleted = api.delete(path)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert api.get(f"/groups/{scenario.group_id}/cloudProviderAccess/{scenario.role['roleId']}").status_code == 404


def test_first_enable_needs_every_field(scenario, api):
    scenario.ready_role()
    response = api.patch(f"/groups/{scenario.group_id}/encryptionAtRest", {"awsKms": {"enabled": True, "roleId": scenario.role["roleId"]}})
    assert response.status_code == 400
    assert error_code(response) == "VALIDATION_ERROR"
    fields = {f["field"] for f in response.json()["badRequestDetail"]["fields"]}
    assert fields == {"awsKms.customerMasterKeyID", "awsKms.region"}


def test_later_updates_send_only_changed_fields(scenario, api):
    scenario.ready_role()
    assert scenario.enable().status_code == 200
    other = scenario.create_key()
    scenario.put_role_policy(policy(kms_statement("*")))
    response = api.patch(f"/groups/{scenario.group_id}/encryptionAtRest", {"awsKms": {"customerMasterKeyID": other["KeyId"]}})
    assert response.status_code == 200, response.text
    assert response.json()["awsKms"]["customerMasterKeyID"] == other["KeyId"]
    assert response.json()["awsKms"]["roleId"] == scenario.role["roleId"]


def test_disabling_is_refused_while_a_cluster_uses_the_key(emulator, scenario, api):
    emulator.add_cluster(scenario.group_id, "c1", encryption_at_rest_provider="AWS")
    scenario.ready_role()
    scenario.put_role_policy(policy(kms_statement("*")))
    assert scenario.enable().status_code == 200
    response = api.patch(f"/groups/{scenario.group_id}/encryptionAtRest", {"awsKms": {"enabled": False}})
    assert response.status_code == 409
    assert error_code(response) == "ENCRYPTION_AT_REST_PROVIDER_IN_USE"


# -- credentials, and the one-way switch to a role ---------------------------------------------------


def credentials_user(scenario, allow=True):
    iam = scenario.iam()
    user = f"atlas-user-{scenario.suffix}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    if allow:
        iam.put_user_policy(UserName=user, PolicyName="kms", PolicyDocument=json.dumps(policy(kms_statement(scenario.key["Arn"]))))
    return key["AccessKeyId"], key["SecretAccessKey"]


def enable_with_credentials(scenario, api, access_key_id, secret):
    aws_kms = {
        "enabled": True,
        "customerMasterKeyID": scenario.key["KeyId"],
        "region": scenario.region,
        "accessKeyID": access_key_id,
        "secretAccessKey": secret,
    }
    return api.patch(f"/groups/{scenario.group_id}/encryptionAtRest", {"awsKms": aws_kms})


def test_credentials_are_checked_and_the_secret_never_returned(scenario, api, emulator):
    scenario.create_key()
    access_key_id, secret = credentials_user(scenario)
    assert "does not match" in refused(enable_with_credentials(scenario, api, access_key_id, secret + "x"))
    assert "does not exist" in refused(enable_with_credentials(scenario, api, "AKIA0000000000000000", secret))
    response = enable_with_credentials(scenario, api, access_key_id, secret)
    assert response.status_code == 200, response.text
    for body in (response.text, api.get(f"/groups/{scenario.group_id}/encryptionAtRest").text):
        assert secret not in body
        assert "secretAccessKey" not in body
        assert access_key_id in body
    assert scenario.encryption_at_rest()["valid"] is True
    assert emulator.project_state(scenario.group_id)["encryptionAtRest"]["credentialsStored"] is True


def test_credentials_without_key_permissions_are_refused(scenario, api):
    scenario.create_key()
    access_key_id, secret = credentials_user(scenario, allow=False)
    assert "no identity policy" in refused(enable_with_credentials(scenario, api, access_key_id, secret))


def test_switch_from_credentials_to_role_is_one_way(scenario, api, emulator):
    scenario.create_key()
    access_key_id, secret = credentials_user(scenario)
    assert enable_with_credentials(scenario, api, access_key_id, secret).status_code == 200
    scenario.ready_role()
    switched = api.patch(f"/groups/{scenario.group_id}/encryptionAtRest", {"awsKms": {"roleId": scenario.role["roleId"]}})
    assert switched.status_code == 200, switched.text
    aws_kms = switched.json()["awsKms"]
    assert aws_kms["customerMasterKeyID"] == scenario.key["KeyId"]
    assert aws_kms["region"] == scenario.region
    assert aws_kms["roleId"] == scenario.role["roleId"]
    assert "accessKeyID" not in aws_kms
    state = emulator.project_state(scenario.group_id)["encryptionAtRest"]
    assert state["credentialsStored"] is False
    assert state["roleBasedOnly"] is True
    back = enable_with_credentials(scenario, api, access_key_id, secret)
    assert back.status_code == 400
    assert error_code(back) == "AWS_KMS_CREDENTIALS_AUTH_DEPRECATED"
    assert scenario.encryption_at_rest()["roleId"] == scenario.role["roleId"]


def test_seeded_credentials_project(scenario, api, emulator):
    scenario.create_key()
    access_key_id, secret = credentials_user(scenario)
    emulator.set_encryption_at_rest(
        scenario.group_id,
        {"enabled": True, "customerMasterKeyID": scenario.key["KeyId"], "region": "EU_WEST_2", "accessKeyID": access_key_id, "secretAccessKey": secret},
    )
    aws_kms = scenario.encryption_at_rest()
    assert aws_kms["accessKeyID"] == access_key_id
    assert aws_kms["valid"] is True
    assert "secretAccessKey" not in aws_kms
