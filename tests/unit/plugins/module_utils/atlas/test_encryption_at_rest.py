import json
import types

import pytest
from unit.fakes import Clock

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, ModuleInputError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas import encryption_at_rest as ear
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.cloud_provider_access import normalize_role
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsError

GROUP = "660000000000000000000001"
ROLE_ID = "a" * 24
OTHER_ROLE_ID = "b" * 24
ROLE_ARN = "arn:aws:iam::111111111111:role/atlas-kms"
ATLAS_ARN = "arn:aws:iam::536727724300:root"
EXTERNAL_ID = "3c2f4a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:111111111111:key/{KEY_ID}"
OTHER_KEY_ARN = f"arn:aws:kms:us-east-1:222222222222:key/{KEY_ID}"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EAR_USAGE = {"featureType": "ENCRYPTION_AT_REST", "featureId": None}


def raw_role(role_id=ROLE_ID, arn=ROLE_ARN, usages=(), created="2025-01-01T00:00:00Z"):
    body = {
        "providerName": "AWS",
        "roleId": role_id,
        "atlasAWSAccountArn": ATLAS_ARN,
        "atlasAssumedRoleExternalId": EXTERNAL_ID,
        "createdDate": created,
        "featureUsages": list(usages),
    }
    if arn:
        body.update(iamAssumedRoleArn=arn, authorizedDate="2025-01-02T00:00:00Z")
    return body


def role(**kwargs):
    return normalize_role(raw_role(**kwargs))


def config(method="role", key=KEY_ID, region="US_EAST_1", valid=True, rpn=False):
    aws_kms = {"enabled": method != "none", "requirePrivateNetworking": rpn, "valid": valid if method != "none" else False}
    if method != "none":
        aws_kms.update(customerMasterKeyID=key, region=region)
    if method == "role":
        aws_kms["roleId"] = ROLE_ID
    if method == "credentials":
        aws_kms["accessKeyID"] = ACCESS_KEY
    return ear.normalize(aws_kms, [role(usages=[EAR_USAGE] if method == "role" else [])])


# -- normalising -----------------------------------------------------------------------------------


def test_normalize_role_based():
    assert config() == {
        "provider": "AWS",
        "enabled": True,
        "customer_master_key_id": KEY_ID,
        "region": "US_EAST_1",
        "aws_region": "us-east-1",
        "access_method": "role",
        "role_id": ROLE_ID,
        "iam_role_arn": ROLE_ARN,
        "access_key_id": None,
        "require_private_networking": False,
        "valid": True,
    }


def test_normalize_falls_back_to_the_role_whose_feature_usages_name_encryption_at_rest():
    roles = [role(role_id=OTHER_ROLE_ID, arn="arn:aws:iam::111111111111:role/other"), role(usages=[EAR_USAGE])]
    normalized = ear.normalize({"enabled": True, "customerMasterKeyID": KEY_ID, "region": "US_EAST_1", "valid": True}, roles)
    assert normalized["access_method"] == "role"
    assert normalized["role_id"] == ROLE_ID
    assert normalized["iam_role_arn"] == ROLE_ARN


def test_normalize_credentials_and_none():
    credentials = config("credentials")
    assert credentials["access_method"] == "credentials"
    assert credentials["access_key_id"] == ACCESS_KEY
    assert credentials["role_id"] is None
    none = ear.normalize({"enabled": False, "valid": False})
    assert none["access_method"] == "none"
    assert none["customer_master_key_id"] is None and none["region"] is None


def test_diff_view_hides_the_secret_and_keeps_the_access_key_id():
    view = ear.diff_view(config("credentials"))
    assert view["access_key_id"] == ACCESS_KEY
    assert view["secret_access_key"] == "(hidden)"
    assert "valid" not in view
    assert "secret_access_key" not in ear.diff_view(config())


def test_clusters_using():
    clusters = [
        {"name": "B", "encryptionAtRestProvider": "AWS"},
        {"name": "C", "encryptionAtRestProvider": "NONE"},
        {"name": "A", "encryptionAtRestProvider": "AWS"},
    ]
    assert ear.clusters_using(clusters) == ["A", "B"]


# -- keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "wanted", "region", "account", "same"),
    [
        (KEY_ID, KEY_ID, "us-east-1", None, True),
        (KEY_ID, KEY_ARN, "us-east-1", "111111111111", True),
        (KEY_ARN, KEY_ID, "us-east-1", "111111111111", True),
        (KEY_ID, KEY_ARN, "us-east-1", None, True),
        (KEY_ID, KEY_ARN, "eu-west-2", "111111111111", False),
        (KEY_ID, OTHER_KEY_ARN, "us-east-1", "111111111111", False),
        (KEY_ARN, OTHER_KEY_ARN, "us-east-1", None, False),
        (KEY_ID, "5678abcd-12ab-34cd-56ef-1234567890ab", "us-east-1", None, False),
        (KEY_ID, UNKNOWN, "us-east-1", None, False),
        (None, KEY_ID, "us-east-1", None, False),
        (KEY_ID, "alias/atlas", "us-east-1", None, False),
    ],
)
def test_same_key(current, wanted, region, account, same):
    assert ear.same_key(current, wanted, region, account) is same


# -- resolving the role ----------------------------------------------------------------------------


def test_resolve_role_by_id_arn_and_placeholder():
    roles = [role(role_id=OTHER_ROLE_ID, created="2024-01-01T00:00:00Z"), role(usages=[EAR_USAGE])]
    assert ear.resolve_role(roles, ROLE_ID)[:2] == (roles[1], ROLE_ID)
    # The role encryption at rest uses wins over an older one authorized for the same IAM role.
    assert ear.resolve_role(roles, ROLE_ARN)[1] == ROLE_ID
    assert ear.resolve_role(roles, "arn:aws:iam::111111111111:role/path/atlas-kms")[1] == ROLE_ID
    assert ear.resolve_role(roles, "c" * 24)[:2] == (None, "c" * 24)
    placeholder, role_id, _warnings = ear.resolve_role(roles, UNKNOWN)
    assert role_id == UNKNOWN and placeholder["iam_assumed_role_arn"] == UNKNOWN
    assert ear.resolve_role(roles, None) == (None, None, [])


def test_resolve_role_by_unauthorized_arn():
    with pytest.raises(ModuleInputError, match=r"no Atlas cloud provider access role of project .* is authorized for it"):
        ear.resolve_role([], "arn:aws:iam::111111111111:role/other", project_id=GROUP)
    placeholder, role_id, warnings = ear.resolve_role([], "arn:aws:iam::111111111111:role/other", check_mode=True)
    assert role_id == UNKNOWN and placeholder["iam_assumed_role_arn"] == "arn:aws:iam::111111111111:role/other"
    assert "check mode assumes" in warnings[0]


def test_resolve_role_refuses_other_values():
    with pytest.raises(ModuleInputError, match="neither an Atlas cloud provider access role id"):
        ear.resolve_role([], "atlas-kms")


# -- planning --------------------------------------------------------------------------------------


def test_first_enable_sends_every_field():
    plan = ear.plan_present(config("none"), ear.Desired(key=KEY_ID, region="US_EAST_1", role_id=ROLE_ID), role=role())
    assert plan.body == {"enabled": True, "customerMasterKeyID": KEY_ID, "region": "US_EAST_1", "roleId": ROLE_ID}
    assert plan.first_enable and not plan.switch
    assert plan.after["access_method"] == "role" and plan.after["iam_role_arn"] == ROLE_ARN and plan.after["valid"] is None


def test_first_enable_names_what_is_missing():
    with pytest.raises(ModuleInputError, match="needs region, role_id"):
        ear.plan_present(config("none"), ear.Desired(key=KEY_ID))


def test_first_enable_in_check_mode_with_placeholder_role():
    plan = ear.plan_present(config("none"), ear.Desired(key=KEY_ID, region="US_EAST_1", role_id=UNKNOWN), check_mode=True)
    assert plan.body["roleId"] == UNKNOWN
    assert plan.after["iam_role_arn"] == UNKNOWN


def test_converged_sends_nothing_and_omitted_options_are_unmanaged():
    current = config(rpn=True)
    assert ear.plan_present(current, ear.Desired()).body == {}
    assert ear.plan_present(current, ear.Desired(key=KEY_ARN, region="US_EAST_1", role_id=ROLE_ID), principal_account="111111111111").body == {}
    assert ear.plan_present(current, ear.Desired(require_private_networking=True)).body == {}


def test_only_differing_fields_are_sent():
    plan = ear.plan_present(config(), ear.Desired(key=KEY_ID, region="EU_WEST_2", role_id=ROLE_ID, require_private_networking=True))
    assert plan.body == {"region": "EU_WEST_2", "requirePrivateNetworking": True}
    assert plan.after["aws_region"] == "eu-west-2"
    assert ear.plan_present(config(), ear.Desired(role_id=OTHER_ROLE_ID)).body == {"roleId": OTHER_ROLE_ID}


def test_never_back_to_credentials():
    with pytest.raises(ear.NeverBackError, match="can never go back to an access key"):
        ear.plan_present(config(), ear.Desired(access_key_id=ACCESS_KEY, secret_access_key=SECRET))


def test_no_new_credentials_based_configuration():
    with pytest.raises(ModuleInputError, match="no longer accepts new credentials-based configurations"):
        ear.plan_present(config("none"), ear.Desired(key=KEY_ID, region="US_EAST_1", access_key_id=ACCESS_KEY, secret_access_key=SECRET))


def test_switch_needs_confirmation_outside_check_mode():
    with pytest.raises(ear.SwitchNotConfirmedError) as caught:
        ear.plan_present(config("credentials"), ear.Desired(role_id=ROLE_ID))
    assert "cannot undo" in str(caught.value) and "confirm_switch_to_role: true" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_switch_in_check_mode_without_confirmation_warns():
    plan = ear.plan_present(config("credentials"), ear.Desired(role_id=ROLE_ID), check_mode=True, role=role())
    assert plan.switch
    assert plan.body == {"roleId": ROLE_ID}
    assert "cannot undo" in plan.warnings[0] and "refuses it unless confirm_switch_to_role" in plan.warnings[0]


def test_confirmed_switch_keeps_key_and_region_and_drops_credentials():
    plan = ear.plan_present(config("credentials"), ear.Desired(role_id=ROLE_ID), confirm_switch=True, role=role())
    assert plan.body == {"roleId": ROLE_ID}
    assert plan.after["access_method"] == "role" and plan.after["access_key_id"] is None
    assert plan.after["customer_master_key_id"] == KEY_ID and plan.after["region"] == "US_EAST_1"
    assert plan.warnings == []
    switched = ear.plan_present(config("credentials"), ear.Desired(role_id=ROLE_ID, key=KEY_ARN), confirm_switch=True, principal_account="111111111111")
    assert switched.body == {"roleId": ROLE_ID}


def test_legacy_access_key_rotation_and_same_id():
    current = config("credentials")
    assert ear.plan_present(current, ear.Desired(access_key_id=ACCESS_KEY, secret_access_key=SECRET)).body == {}
    plan = ear.plan_present(current, ear.Desired(access_key_id="AKIANEWKEY0000000000", secret_access_key=SECRET))
    assert plan.rotate
    assert plan.body == {"accessKeyID": "AKIANEWKEY0000000000", "secretAccessKey": SECRET}
    assert SECRET not in json.dumps(ear.diff_view(plan.after))


def test_absent():
    with pytest.raises(ear.ClustersUseEncryptionError, match="clusters Archive, Orders use it"):
        ear.plan_absent(config(), ["Archive", "Orders"])
    plan = ear.plan_absent(config(), [])
    assert plan.body == {"enabled": False}
    assert plan.after["access_method"] == "none" and plan.after["valid"] is False
    assert ear.plan_absent(config("none"), []).body == {}


# -- Atlas calls -----------------------------------------------------------------------------------


class FakeAtlas:
    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def call(self, operation_id, body=None, query=None, **path):
        self.calls.append((operation_id, body))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def atlas_error(code, status=400):
    return AtlasApiError(status, "updateGroupEncryptionAtRest", "PATCH", "/x", error_code=code)


@pytest.mark.parametrize("code", ear.TRANSIENT_CODES)
def test_update_retries_each_transient_code(code):
    clock = Clock()
    atlas = FakeAtlas([atlas_error(code), atlas_error(code), {"awsKms": {"enabled": True, "valid": True}}])
    api = ear.EncryptionAtRestApi(atlas, GROUP, sleep=clock.sleep, clock=clock)
    assert api.update({"roleId": ROLE_ID}, 300) == {"enabled": True, "valid": True}
    assert clock.sleeps == [1.0, 2.0]
    assert atlas.calls[0] == ("updateGroupEncryptionAtRest", {"awsKms": {"roleId": ROLE_ID}})


def test_update_gives_up_after_the_timeout_and_does_not_retry_other_errors():
    clock = Clock()
    api = ear.EncryptionAtRestApi(FakeAtlas([atlas_error("INVALID_AWS_CREDENTIALS")] * 10), GROUP, sleep=clock.sleep, clock=clock)
    with pytest.raises(AtlasApiError) as caught:
        api.update({}, 12)
    assert "still INVALID_AWS_CREDENTIALS after" in str(caught.value)
    assert sum(clock.sleeps) == 12

    other = ear.EncryptionAtRestApi(FakeAtlas([atlas_error("AWS_KMS_CREDENTIALS_AUTH_DEPRECATED")]), GROUP, sleep=clock.sleep, clock=clock)
    with pytest.raises(AtlasApiError, match="AWS_KMS_CREDENTIALS_AUTH_DEPRECATED"):
        other.update({}, 300)


def test_wait_valid_polls_until_valid_or_timeout():
    clock = Clock()
    atlas = FakeAtlas([{"awsKms": {"valid": False}}, {"awsKms": {"valid": True}}])
    api = ear.EncryptionAtRestApi(atlas, GROUP, sleep=clock.sleep, clock=clock)
    assert api.wait_valid(300, {"valid": False}) == {"valid": True}
    assert clock.sleeps == [1.0, 2.0]

    clock = Clock()
    api = ear.EncryptionAtRestApi(FakeAtlas([{"awsKms": {"valid": False}}] * 40), GROUP, sleep=clock.sleep, clock=clock)
    assert api.wait_valid(60, {"valid": False}) == {"valid": False}
    assert sum(clock.sleeps) == 60

    assert ear.EncryptionAtRestApi(FakeAtlas([]), GROUP).wait_valid(0, {"valid": True}) == {"valid": True}


# -- preflight -------------------------------------------------------------------------------------


def key_metadata(arn=KEY_ARN, state="Enabled"):
    return {
        "KeyId": arn.split("/")[-1],
        "Arn": arn,
        "AWSAccountId": arn.split(":")[4],
        "KeyState": state,
        "Enabled": state == "Enabled",
        "KeyManager": "CUSTOMER",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "KeyUsage": "ENCRYPT_DECRYPT",
    }


def default_key_policy(account):
    return {"Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"}]}


def trust():
    return {
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ATLAS_ARN}, "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}
        ]
    }


def allow_key(resource=KEY_ARN):
    return {"Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], "Resource": resource}]}


class FakeAws:
    """Enough of AwsConnection for the preflight: one account, its keys, one IAM role, one IAM user."""

    def __init__(self, account="111111111111", keys=None, key_policies=None, inline=None, trust_policy=None, role_exists=True, users=None, denied=()):
        self.account = account
        self.keys = keys or {}
        self.key_policies = key_policies or {}
        self.inline = inline if inline is not None else {"kms": allow_key()}
        self.trust_policy = trust_policy or trust()
        self.role_exists = role_exists
        self.users = users or {}
        self.denied = set(denied)
        self.calls = []

    @property
    def account_id(self):
        return self.account

    def client(self, service, region=None):
        return types.SimpleNamespace(meta=types.SimpleNamespace(region_name=region or "us-east-1"))

    def _error(self, code, operation):
        return AwsError(f"AWS {operation} failed: {code}: nope", code, None, operation, 400)

    def call(self, service, method, region=None, **kwargs):
        self.calls.append((service, method))
        if method in self.denied:
            raise self._error("AccessDeniedException", method)
        if method == "describe_key":
            ref = kwargs["KeyId"]
            for arn, meta in self.keys.items():
                named = ref in (arn, arn.split("/")[-1]) or ref == meta.get("alias")
                if named and arn.split(":")[3] == (region or "us-east-1") and (arn.split(":")[4] == self.account or ref == arn):
                    return {"KeyMetadata": key_metadata(arn, meta.get("state", "Enabled"))}
            raise self._error("NotFoundException", "DescribeKey")
        if method == "get_key_policy":
            return {"Policy": json.dumps(self.key_policies.get(kwargs["KeyId"], default_key_policy(self.account)))}
        if method == "get_role":
            if not self.role_exists:
                raise self._error("NoSuchEntity", "GetRole")
            return {"Role": {"Arn": ROLE_ARN, "RoleName": "atlas-kms", "AssumeRolePolicyDocument": json.dumps(self.trust_policy)}}
        if method == "get_role_policy":
            return {"PolicyDocument": json.dumps(self.inline[kwargs["PolicyName"]])}
        if method == "get_access_key_last_used":
            for user, keys in self.users.items():
                if kwargs["AccessKeyId"] in keys:
                    return {"UserName": user}
            raise self._error("NoSuchEntity", "GetAccessKeyLastUsed")
        raise AssertionError(method)

    def paginate(self, service, method, region=None, **kwargs):
        self.calls.append((service, method))
        if method == "list_role_policies":
            return {"PolicyNames": list(self.inline)}
        if method == "list_attached_role_policies":
            return {"AttachedPolicies": []}
        if method == "list_access_keys":
            return {"AccessKeyMetadata": [{"AccessKeyId": key, "Status": "Active"} for key in self.users[kwargs["UserName"]]]}
        raise AssertionError(method)


def target(key=KEY_ID, **overrides):
    values = {"key": key, "region": "us-east-1", "role": role(), "role_id": ROLE_ID, "principal": "role"}
    values.update(overrides)
    return ear.Target(**values)


def by_name(checks):
    return {item["name"]: item for item in checks}


def test_preflight_all_good():
    outcome = ear.Preflight(FakeAws(keys={KEY_ARN: {}})).run(target())
    checks = by_name(outcome.checks)
    assert [item["name"] for item in outcome.checks] == [
        "key_exists",
        "key_state",
        "key_region",
        "role_authorized",
        "role_trust",
        "role_policy",
        "key_policy",
        "source_ip",
    ]
    assert all(item["ok"] is True and item["fix"] is None for item in outcome.checks), outcome.checks
    assert outcome.key == KEY_ID
    assert "no policy restricts the source address" in checks["source_ip"]["message"]


def test_preflight_reports_every_problem_together():
    aws = FakeAws(keys={KEY_ARN: {"state": "Disabled"}}, inline={}, trust_policy={"Statement": []})
    checks = by_name(ear.Preflight(aws).run(target()).checks)
    assert [name for name, item in checks.items() if item["ok"] is False] == ["key_state", "role_trust", "role_policy"]
    assert "is disabled" in checks["key_state"]["message"]
    assert EXTERNAL_ID in checks["role_trust"]["fix"]
    assert "cmk.atlas.aws_iam_role with kms_key_arns" in checks["role_policy"]["fix"]


def test_preflight_missing_key_and_wrong_region():
    checks = by_name(ear.Preflight(FakeAws()).run(target()).checks)
    assert checks["key_exists"]["ok"] is False
    assert "full ARN" in checks["key_exists"]["fix"]
    conflict = by_name(ear.Preflight(FakeAws(keys={KEY_ARN: {}})).run(target(key=KEY_ARN, region="eu-west-2", region_option="eu-west-2")).checks)
    assert conflict["key_region"]["ok"] is False
    assert "set region: us-east-1" in conflict["key_region"]["fix"]


def test_preflight_unknown_role_and_key_are_unchecked():
    outcome = ear.Preflight(FakeAws(keys={KEY_ARN: {}})).run(target(role=ear.placeholder_role([]), role_id=UNKNOWN))
    checks = by_name(outcome.checks)
    assert checks["key_exists"]["ok"] is True
    assert [checks[name]["ok"] for name in ("role_authorized", "role_trust", "role_policy", "key_policy")] == [None] * 4
    unknown_key = by_name(ear.Preflight(FakeAws()).run(target(key=UNKNOWN)).checks)
    assert unknown_key["key_exists"]["ok"] is None


def test_preflight_role_not_in_project_or_not_authorized():
    assert by_name(ear.Preflight(FakeAws(keys={KEY_ARN: {}})).run(target(role=None)).checks)["role_authorized"]["ok"] is False
    pending = by_name(ear.Preflight(FakeAws(keys={KEY_ARN: {}})).run(target(role=role(arn=None))).checks)
    assert pending["role_authorized"]["ok"] is False
    assert "cmk.atlas.cloud_provider_access" in pending["role_authorized"]["fix"]


def test_preflight_missing_iam_role():
    checks = by_name(ear.Preflight(FakeAws(keys={KEY_ARN: {}}, role_exists=False)).run(target()).checks)
    assert checks["role_trust"]["ok"] is False and "does not exist" in checks["role_trust"]["message"]


def test_preflight_role_in_another_account_than_the_credentials_is_unchecked():
    aws = FakeAws(account="333333333333", keys={f"arn:aws:kms:us-east-1:333333333333:key/{KEY_ID}": {}})
    checks = by_name(ear.Preflight(aws).run(target()).checks)
    assert checks["role_trust"]["ok"] is None and checks["role_policy"]["ok"] is None
    # The key was found in the credentials' account, not the role's: Atlas must get the ARN.
    assert checks["key_arn"]["ok"] is True


def test_preflight_cross_account_bare_id_is_converted_through_the_key_owner():
    main = FakeAws(inline={"kms": allow_key(OTHER_KEY_ARN)})
    owner = FakeAws(account="222222222222", keys={OTHER_KEY_ARN: {}}, key_policies={OTHER_KEY_ARN: default_key_policy("222222222222")})
    outcome = ear.Preflight(main, owner).run(target())
    checks = by_name(outcome.checks)
    assert outcome.key == OTHER_KEY_ARN
    assert checks["key_arn"]["ok"] is True and "instead of the key id" in checks["key_arn"]["message"]
    assert checks["key_policy"]["ok"] is False  # the key policy names neither the role nor its account
    assert "cmk.atlas.kms_key_policy with principals" in checks["key_policy"]["fix"]

    refused = by_name(ear.Preflight(main).run(target()).checks)
    assert refused["key_exists"]["ok"] is False


def test_preflight_cross_account_key_policy_without_key_owner_is_unchecked():
    main = FakeAws(keys={OTHER_KEY_ARN: {}}, inline={"kms": allow_key(OTHER_KEY_ARN)})
    checks = by_name(ear.Preflight(main).run(target(key=OTHER_KEY_ARN)).checks)
    assert checks["key_policy"]["ok"] is None
    assert "key_owner_assume_role_arn" in checks["key_policy"]["fix"]
    assert "get_key_policy" not in [method for _service, method in main.calls]


def test_preflight_denied_reads_are_unchecked():
    checks = by_name(ear.Preflight(FakeAws(keys={KEY_ARN: {}}, denied={"describe_key"})).run(target()).checks)
    assert checks["key_exists"]["ok"] is None
    denied_iam = by_name(ear.Preflight(FakeAws(keys={KEY_ARN: {}}, denied={"get_role"})).run(target()).checks)
    assert denied_iam["role_trust"]["ok"] is None


def test_preflight_source_ip_against_control_plane_addresses():
    inline = {"kms": {"Statement": [{**allow_key()["Statement"][0], "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}}
    fetched = []

    def addresses():
        fetched.append(True)
        return ["198.51.100.10/32"]

    checks = by_name(ear.Preflight(FakeAws(keys={KEY_ARN: {}}, inline=inline), addresses=addresses).run(target()).checks)
    assert checks["source_ip"]["ok"] is False
    assert "198.51.100.10/32" in checks["source_ip"]["message"]
    assert fetched == [True]

    def unreachable():
        raise ear.AtlasError("no")

    unknown = by_name(ear.Preflight(FakeAws(keys={KEY_ARN: {}}, inline=inline), addresses=unreachable).run(target()).checks)
    assert unknown["source_ip"]["ok"] is None and unknown["role_policy"]["ok"] is None


def test_preflight_alias_is_sent_as_key_id():
    outcome = ear.Preflight(FakeAws(keys={KEY_ARN: {"alias": "alias/atlas"}})).run(target(key="alias/atlas"))
    assert outcome.key == KEY_ID


def test_preflight_credentials_project_checks_the_key_only():
    checks = by_name(ear.Preflight(FakeAws(keys={KEY_ARN: {}})).run(target(principal="credentials", role=None)).checks)
    assert checks["credentials"]["ok"] is None
    assert "role_authorized" not in checks


def test_preflight_previous_access_key_owner():
    aws = FakeAws(keys={KEY_ARN: {}}, users={"legacy": [ACCESS_KEY]})
    outcome = ear.Preflight(aws).run(target(previous_access_key_id=ACCESS_KEY))
    assert outcome.access_key_owner == "legacy"
    assert by_name(outcome.checks)["previous_access_key"]["ok"] is True
    missing = ear.Preflight(FakeAws(keys={KEY_ARN: {}})).run(target(previous_access_key_id=ACCESS_KEY))
    assert missing.access_key_owner is None
    assert by_name(missing.checks)["previous_access_key"]["ok"] is False


def test_describe_checks():
    text = ear.describe_checks([ear.check("a", False, "broken.", "mend it."), ear.check("b", None, "unknown.")])
    assert text == "(1) a: broken. Fix: mend it. (2) b: unknown."


def test_wait_valid_reads_at_a_short_capped_interval():
    clock = Clock()
    atlas = FakeAtlas([{"awsKms": {"valid": False}}] * 4 + [{"awsKms": {"valid": True}}])
    api = ear.EncryptionAtRestApi(atlas, GROUP, sleep=clock.sleep, clock=clock)
    assert api.wait_valid(300, {"valid": False}) == {"valid": True}
    # Within 2 s of Atlas reporting valid, and never more than 30 reads a minute.
    assert clock.sleeps == [1.0, 2.0, 2.0, 2.0, 2.0]
