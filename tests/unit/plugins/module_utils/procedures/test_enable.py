import json

import pytest

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, ModuleInputError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.cloud_provider_access import normalize_role
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.encryption_at_rest import normalize
from ansible_collections.cmk.atlas.plugins.module_utils.aws.iam_role import build_inline_policy, build_trust_policy
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import condition_source_ips
from ansible_collections.cmk.atlas.plugins.module_utils.procedures import enable as pka

PROJECT = "5f1a2b3c4d5e6f7a8b9c0d1e"
ROLE_ID = "32b6e34b3d91647abb20e7b8"
OTHER_ROLE_ID = "42b6e34b3d91647abb20e7b9"
ACCOUNT = "111111111111"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}"
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def role(role_id=ROLE_ID, iam_role_arn=f"arn:aws:iam::{ACCOUNT}:role/atlas-kms"):
    """A normalised cloud provider access role that encryption at rest uses."""
    return {
        "role_id": role_id,
        "iam_assumed_role_arn": iam_role_arn,
        "authorized": True,
        "feature_usages": [{"feature_type": "ENCRYPTION_AT_REST", "feature_id": None}],
    }


def none_config():
    return normalize({"enabled": False, "valid": False})


def credentials_config():
    return normalize(
        {"enabled": True, "customerMasterKeyID": KEY_ID, "region": "US_EAST_1", "accessKeyID": ACCESS_KEY_ID, "secretAccessKey": SECRET, "valid": True}
    )


def role_config(key=KEY_ARN, region="US_EAST_1", role_id=ROLE_ID, valid=True, roles=None):
    aws_kms = {"enabled": True, "customerMasterKeyID": key, "region": region, "roleId": role_id, "valid": valid}
    return normalize(aws_kms, [role(role_id)] if roles is None else roles)


# -- guard_procedure ------------------------------------------------------------------------------


def test_enable_refuses_a_credentials_based_project_and_says_what_to_do():
    with pytest.raises(ModuleInputError) as caught:
        pka.guard_procedure(pka.PROCEDURE_ENABLE, PROJECT, credentials_config())
    message = str(caught.value)
    assert message.startswith(f"Project {PROJECT} encrypts at rest with key {KEY_ID} reached with access key {ACCESS_KEY_ID} (credentials-based access).")
    assert "switch it to the IAM role with cmk.atlas.switch" in message
    assert "cmk_atlas_confirm_switch: true" in message
    assert message.endswith("Nothing was written.")
    assert SECRET not in message


def test_switch_refuses_a_project_without_encryption_at_rest():
    with pytest.raises(ModuleInputError) as caught:
        pka.guard_procedure(pka.PROCEDURE_SWITCH, PROJECT, none_config())
    message = str(caught.value)
    assert message.startswith(f"Project {PROJECT} has no encryption at rest with AWS KMS, so there is nothing to switch.")
    assert "Enable it with cmk.atlas.enable (it needs cmk_atlas_kms_key)" in message
    assert message.endswith("Nothing was written.")


@pytest.mark.parametrize(
    ("procedure", "config"),
    [
        pytest.param("enable", none_config(), id="enable without encryption at rest"),
        pytest.param("enable", role_config(), id="enable with a role (re-run, or another key)"),
        pytest.param("switch", credentials_config(), id="switch from credentials"),
        pytest.param("switch", role_config(), id="switch with a role already (re-run)"),
        pytest.param(None, none_config(), id="no procedure, no encryption at rest"),
        pytest.param(None, credentials_config(), id="no procedure, credentials"),
        pytest.param(None, role_config(), id="no procedure, role"),
    ],
)
def test_guard_lets_every_other_combination_through(procedure, config):
    assert pka.guard_procedure(procedure, PROJECT, config) is None


def test_disabled_encryption_with_stale_credentials_counts_as_none():
    """Atlas may keep an access key id after encryption at rest was disabled: that is nothing to switch, and enable may go on."""
    config = normalize({"enabled": False, "accessKeyID": ACCESS_KEY_ID, "customerMasterKeyID": KEY_ID, "region": "US_EAST_1"})
    pka.guard_procedure(pka.PROCEDURE_ENABLE, PROJECT, config)
    with pytest.raises(ModuleInputError, match="nothing to switch"):
        pka.guard_procedure(pka.PROCEDURE_SWITCH, PROJECT, config)


# -- encryption_in_place -------------------------------------------------------------------------


def test_in_place_with_the_same_key_role_and_region_and_atlas_reporting_valid():
    assert pka.encryption_in_place(role_config(), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT) is True


def test_in_place_when_atlas_stores_the_bare_key_id_of_that_key():
    assert pka.encryption_in_place(role_config(key=KEY_ID), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT) is True


def test_in_place_when_atlas_leaves_the_role_id_out_and_the_role_says_it_serves_encryption_at_rest():
    config = normalize({"enabled": True, "customerMasterKeyID": KEY_ARN, "region": "US_EAST_1", "valid": True}, [role()])
    assert config["role_id"] == ROLE_ID
    assert pka.encryption_in_place(config, ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT) is True


@pytest.mark.parametrize(
    ("config", "role_id", "key_arn", "region", "role_account"),
    [
        pytest.param(none_config(), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="no encryption at rest"),
        pytest.param(credentials_config(), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="credentials-based"),
        pytest.param(role_config(valid=False), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="Atlas reports it not valid"),
        pytest.param(role_config(valid=None), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="valid unknown"),
        pytest.param(role_config(role_id=OTHER_ROLE_ID), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="through another Atlas role"),
        pytest.param(role_config(), UNKNOWN, KEY_ARN, "us-east-1", ACCOUNT, id="role still to be created (check mode)"),
        pytest.param(
            role_config(key=f"arn:aws:kms:us-east-1:{ACCOUNT}:key/aaaaaaaa-12ab-34cd-56ef-1234567890ab"),
            ROLE_ID,
            KEY_ARN,
            "us-east-1",
            ACCOUNT,
            id="another key",
        ),
        pytest.param(
            role_config(key=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{KEY_ID}", region="EU_WEST_1"),
            ROLE_ID,
            KEY_ARN,
            "us-east-1",
            ACCOUNT,
            id="same key id in another region",
        ),
        pytest.param(role_config(region="EU_WEST_1"), ROLE_ID, KEY_ARN, "us-east-1", ACCOUNT, id="region Atlas holds is not the key's"),
        pytest.param(
            role_config(key=KEY_ID), ROLE_ID, f"arn:aws:kms:us-east-1:222222222222:key/{KEY_ID}", "us-east-1", ACCOUNT, id="bare id, key in another account"
        ),
        pytest.param(role_config(key=KEY_ID), ROLE_ID, KEY_ARN, "us-east-1", "222222222222", id="bare id, role in another account than the key"),
    ],
)
def test_not_in_place(config, role_id, key_arn, region, role_account):
    assert pka.encryption_in_place(config, role_id, key_arn, region, role_account) is False


def test_in_place_for_a_key_in_another_account_stored_as_its_arn():
    key_arn = f"arn:aws:kms:us-east-1:222222222222:key/{KEY_ID}"
    assert pka.encryption_in_place(role_config(key=key_arn), ROLE_ID, key_arn, "us-east-1", ACCOUNT) is True


# -- KeyAccess.run with fakes: the order of the source-IP writes -----------------------------------

ATLAS_ARN = "arn:aws:iam::536727724300:root"
EXTERNAL_ID = "24a1c5f2-8d3e-4b6a-9f70-1e2d3c4b5a69"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/atlas-kms"
FOREIGN_KEY_ARN = f"arn:aws:kms:us-east-1:222222222222:key/{KEY_ID}"
OLD_IPS = ["192.0.2.10/32", "198.51.100.10/32"]
NEW_IPS = ["198.51.100.10/32", "203.0.113.7/32"]


class FakeAtlasRoles:
    def __init__(self, atlas, project_id, **_kwargs):
        self.project_id = project_id

    def roles(self):
        raw = {"roleId": ROLE_ID, "atlasAWSAccountArn": ATLAS_ARN, "atlasAssumedRoleExternalId": EXTERNAL_ID, "iamAssumedRoleArn": ROLE_ARN}
        return [normalize_role(raw)]

    def create(self):
        raise AssertionError("no Atlas role is created here")

    def authorize(self, *_args):
        raise AssertionError("the role is authorized already")


class FakeAws:
    region = "us-east-1"

    def caller_identity(self):
        return {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/operator"}

    def derive(self, **_kwargs):
        return self


def module_params(**overrides):
    """The module's options as Ansible hands them over (defaults filled in)."""
    params = {
        "project_id": PROJECT,
        "iam_role_name": "atlas-kms",
        "iam_role_path": "/",
        "iam_role_description": None,
        "iam_role_tags": None,
        "kms_key": KEY_ARN,
        "key_owner_assume_role_arn": None,
        "source_ips": None,
        "key_policy_source_ips": True,
        "policy_name": "cmk-atlas-kms-access",
        "procedure": None,
        "authorize_timeout": 0,
        "valid_timeout": 0,
        "region": None,
    }
    params.update(overrides)
    return params


def existing_iam_role(source_ips):
    inline = build_inline_policy([FOREIGN_KEY_ARN], source_ips)
    return {
        "name": "atlas-kms",
        "path": "/",
        "arn": ROLE_ARN,
        "role_id": "AROAEXAMPLE",
        "description": None,
        "max_session_duration": 3600,
        "tags": {"cmk-atlas:project-id": PROJECT, "cmk-atlas:role-id": ROLE_ID},
        "trust_policy": build_trust_policy(ATLAS_ARN, EXTERNAL_ID),
        "inline_policies": {"cmk-atlas-kms-access": inline},
    }


@pytest.fixture
def fake_run(monkeypatch):
    """``run(source_ips, encryption)``: KeyAccess.run for a key in another account (key policy unreadable) and an IAM
    role whose inline policy allows OLD_IPS; returns (outcome, events): each read of encryption at rest is "read", each
    inline policy written is the source-IP list it allows, in the order they happened."""

    def run(source_ips, encryption, check_mode=False):
        events = run.events = []

        class FakeEncryption:
            def __init__(self, *_args, **_kwargs):
                pass

            def get(self):
                events.append("read")
                return dict(encryption)

            def wait_valid(self, timeout, first=None):
                return first

        def apply(_aws, actions):
            for action in actions:
                assert action.method == "put_role_policy", action
                document = json.loads(action.kwargs["PolicyDocument"])
                events.append(condition_source_ips(document))

        monkeypatch.setattr(pka, "CloudProviderAccess", FakeAtlasRoles)
        monkeypatch.setattr(pka, "EncryptionAtRestApi", FakeEncryption)
        monkeypatch.setattr(pka, "read_role", lambda _aws, _name: existing_iam_role(OLD_IPS))
        monkeypatch.setattr(pka, "apply_actions", apply)
        aws = FakeAws()
        access = pka.KeyAccess(
            module_params(kms_key=FOREIGN_KEY_ARN, source_ips=source_ips), atlas=None, aws=lambda: aws, key_owner=lambda: None, check_mode=check_mode
        )
        return access.run(), events

    return run


VALID = {"enabled": True, "customerMasterKeyID": FOREIGN_KEY_ARN, "region": "US_EAST_1", "roleId": ROLE_ID, "valid": True}


def test_new_and_dropped_addresses_are_written_as_the_union_first_then_the_new_list(fake_run):
    outcome, events = fake_run(NEW_IPS, VALID)
    # The first read finds the project's encryption at rest; the second is the valid check between the writes.
    assert events == ["read", sorted({*OLD_IPS, *NEW_IPS}), "read", NEW_IPS]
    assert (outcome.result["source_ips_added"], outcome.result["source_ips_removed"]) == (["203.0.113.7/32"], ["192.0.2.10/32"])
    assert outcome.changed is True


def test_only_dropped_addresses_are_removed_after_the_valid_check_in_one_write(fake_run):
    outcome, events = fake_run(["198.51.100.10/32"], VALID)
    # The policy holds the old and the new addresses already: no widening write, but the check comes first.
    assert events == ["read", "read", ["198.51.100.10/32"]]
    assert outcome.result["source_ips_removed"] == ["192.0.2.10/32"]


def test_only_added_addresses_need_no_valid_check(fake_run):
    outcome, events = fake_run([*OLD_IPS, "203.0.113.7/32"], VALID)
    assert events == ["read", ["192.0.2.10/32", "198.51.100.10/32", "203.0.113.7/32"]]
    assert outcome.result["source_ips_removed"] == []


@pytest.mark.parametrize(
    ("wanted", "events"),
    [(NEW_IPS, ["read", sorted({*OLD_IPS, *NEW_IPS}), "read"]), (["198.51.100.10/32"], ["read", "read"])],
    ids=["widened first", "removal only"],
)
def test_nothing_is_removed_while_atlas_reports_the_key_not_valid(fake_run, wanted, events):
    with pytest.raises(ModuleInputError, match=r"so no address was removed \(it would remove 192\.0\.2\.10/32\)"):
        fake_run(wanted, dict(VALID, valid=False))
    assert fake_run.events == events


def test_check_mode_writes_nothing_and_reports_the_final_list(fake_run):
    outcome, events = fake_run(NEW_IPS, VALID, check_mode=True)
    assert events == ["read"]
    assert outcome.changed is True
    (statement,) = outcome.diffs[1]["after"]["inline_policy"]["Statement"]
    assert condition_source_ips({"Statement": [statement]}) == NEW_IPS


def test_the_unreadable_key_policy_is_warned_about_once_when_addresses_are_removed(fake_run):
    outcome, _events = fake_run(NEW_IPS, VALID)
    unread = [warning for warning in outcome.warnings if warning.startswith(f"The key policy of {FOREIGN_KEY_ARN} (account ") and "was not checked" in warning]
    assert len(unread) == 1, outcome.warnings


@pytest.mark.parametrize(
    ("procedure", "aws_kms", "match"),
    [
        ("enable", {"enabled": True, "customerMasterKeyID": KEY_ID, "region": "US_EAST_1", "accessKeyID": ACCESS_KEY_ID}, "credentials-based access"),
        ("switch", {"enabled": False}, "nothing to switch"),
    ],
)
def test_the_guard_refuses_before_aws_is_even_reached(monkeypatch, procedure, aws_kms, match):
    class FakeEncryption:
        def __init__(self, *_args, **_kwargs):
            pass

        def get(self):
            return dict(aws_kms)

    def no_aws():
        raise AssertionError("AWS must not be reached")

    monkeypatch.setattr(pka, "CloudProviderAccess", FakeAtlasRoles)
    monkeypatch.setattr(pka, "EncryptionAtRestApi", FakeEncryption)
    access = pka.KeyAccess(module_params(procedure=procedure), atlas=None, aws=no_aws, key_owner=no_aws)
    with pytest.raises(ModuleInputError, match=match):
        access.run()
