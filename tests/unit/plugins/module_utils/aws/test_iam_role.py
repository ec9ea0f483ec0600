import copy
import json
from urllib.parse import quote

import pytest

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, ModuleInputError
from ansible_collections.cmk.atlas.plugins.module_utils.aws import iam_role
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsError
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import (
    PolicyError,
    build_atlas_trust_policy,
    build_kms_access_policy,
    normalize_policy,
)

ATLAS_ARN = "arn:aws:iam::536727724300:root"
EXTERNAL_ID = "2b8f0b7e-4a4c-4f0e-9d6c-1b9e1d0a5c3f"
KEY_ARN = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY_ARN = "arn:aws:kms:eu-west-2:222222222222:key/mrk-0123456789abcdef0123456789abcdef"
PROJECT_ID = "660000000000000000000001"
ATLAS_ROLE_ID = "65a1b2c3d4e5f60718293a4b"
ROLE_ARN = "arn:aws:iam::111111111111:role/atlas-kms"


def params(**overrides):
    base = {
        "name": "atlas-kms",
        "path": "/",
        "description": None,
        "max_session_duration": None,
        "tags": None,
        "purge_tags": False,
        "atlas_aws_account_arn": ATLAS_ARN,
        "external_id": EXTERNAL_ID,
        "kms_key_arns": [KEY_ARN],
        "source_ips": None,
        "policy_name": "cmk-atlas-kms-access",
        "purge_policies": False,
        "atlas_project_id": PROJECT_ID,
        "atlas_role_id": ATLAS_ROLE_ID,
    }
    base.update(overrides)
    return base


def existing(desired, **overrides):
    """A role as read_role would return it, matching ``desired``."""
    state = {
        "name": desired["name"],
        "path": desired["path"],
        "arn": ROLE_ARN,
        "role_id": "AROAEXAMPLE",
        "description": desired["description"],
        "max_session_duration": desired["max_session_duration"] or 3600,
        "tags": dict(desired["tags"]),
        "trust_policy": copy.deepcopy(desired["trust_policy"]),
        "inline_policies": {desired["policy_name"]: copy.deepcopy(desired["inline_policy"])} if desired["inline_policy"] else {},
        "managed_policies": [],
    }
    state.update(overrides)
    return state


def methods(actions):
    return [action.method for action in actions]


# -- option checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["atlas-kms", "a", "A+=,.@_-9", "x" * 64])
def test_valid_role_names(name):
    assert iam_role.validate_role_name(name) == name


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "slash/name", None])
def test_invalid_role_names_name_the_option(name):
    with pytest.raises(ModuleInputError, match=r"^name .* is not a valid IAM role name; expected 1-64"):
        iam_role.validate_role_name(name)


@pytest.mark.parametrize("path", ["/", "/atlas/", "/a/b/c/"])
def test_valid_paths(path):
    assert iam_role.validate_role_path(path) == path


@pytest.mark.parametrize("path", ["", "atlas", "/atlas", "atlas/", "/a b/", "/" + "a" * 512 + "/"])
def test_invalid_paths(path):
    with pytest.raises(ModuleInputError, match=r"^path .* is not a valid IAM path"):
        iam_role.validate_role_path(path)


def test_policy_name():
    assert iam_role.validate_policy_name("cmk-atlas-kms-access") == "cmk-atlas-kms-access"
    with pytest.raises(ModuleInputError, match="policy_name 'a b' is not a valid IAM policy name"):
        iam_role.validate_policy_name("a b")


@pytest.mark.parametrize(("value", "ok"), [(None, True), (3600, True), (43200, True), (3599, False), (43201, False), (True, False), ("3600", False)])
def test_max_session_duration_range(value, ok):
    if ok:
        assert iam_role.validate_max_session_duration(value) == value
    else:
        with pytest.raises(ModuleInputError, match=r"max_session_duration .* is out of range"):
            iam_role.validate_max_session_duration(value)


def test_description_length():
    assert iam_role.validate_description("x" * 1000) == "x" * 1000
    with pytest.raises(ModuleInputError, match="at most 1000"):
        iam_role.validate_description("x" * 1001)


def test_atlas_ids():
    assert iam_role.validate_atlas_id(PROJECT_ID, "atlas_project_id") == PROJECT_ID
    assert iam_role.validate_atlas_id(UNKNOWN, "atlas_role_id") == UNKNOWN
    assert iam_role.validate_atlas_id(None, "atlas_role_id") is None
    with pytest.raises(ModuleInputError, match="atlas_project_id 'ABC' is not an Atlas id"):
        iam_role.validate_atlas_id("ABC", "atlas_project_id")


def test_tags_become_strings():
    assert iam_role.validate_tags({"team": "data", "cost": 42, "ratio": 0.5, "empty": ""}) == {"team": "data", "cost": "42", "ratio": "0.5", "empty": ""}
    assert iam_role.validate_tags(None) == {}


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"cmk-atlas:role-id": "x"}, "is reserved"),
        ({"CMK-ATLAS:anything": "x"}, "is reserved"),
        ({"aws:cloudformation": "x"}, "is reserved"),
        ({"Team": "a", "team": "b"}, "are the same IAM tag key"),
        ({"bad{key}": "x"}, "is not a valid IAM tag key"),
        ({"key": "bad{value}"}, "is not a valid IAM tag value"),
        ({"key": True}, "must be a string, not bool"),
        ({"key": ["a"]}, "must be a string, not list"),
        ({f"k{i}": "v" for i in range(49)}, "IAM allows 50 per role"),
    ],
)
def test_bad_tags(tags, message):
    with pytest.raises(ModuleInputError, match=message):
        iam_role.validate_tags(tags)


def test_key_arns_sorted_unique_placeholders_pass():
    assert iam_role.validate_kms_key_arns([OTHER_KEY_ARN, KEY_ARN, KEY_ARN]) == sorted([KEY_ARN, OTHER_KEY_ARN])
    assert iam_role.validate_kms_key_arns([UNKNOWN]) == [UNKNOWN]
    assert iam_role.validate_kms_key_arns(None) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1234abcd-12ab-34cd-56ef-1234567890ab", "is a bare key id; an IAM policy names keys by their full key ARN"),
        ("alias/atlas-cmk", "is an alias; an IAM policy names keys"),
        ("arn:aws:kms:us-east-1:111111111111:alias/atlas-cmk", "is an alias"),
        ("arn:aws:s3:::bucket", "is not a KMS key ARN; expected e.g. arn:aws:kms:"),
        ("", "is not a KMS key ARN"),
    ],
)
def test_key_references_that_are_not_arns_are_refused(value, message):
    with pytest.raises(ModuleInputError, match=message) as info:
        iam_role.validate_kms_key_arns([value])
    assert str(info.value).startswith(f"kms_key_arns entry {value!r}")


def test_the_hint_shows_how_to_find_the_arn():
    with pytest.raises(ModuleInputError, match=r"aws kms describe-key --key-id alias/x --query KeyMetadata\.Arn"):
        iam_role.validate_kms_key_arns(["alias/x"])


# -- wanted documents ------------------------------------------------------------------------


def test_trust_policy_is_the_shared_builder_when_known():
    assert iam_role.build_trust_policy(ATLAS_ARN, EXTERNAL_ID) == build_atlas_trust_policy(ATLAS_ARN, EXTERNAL_ID)


def test_trust_policy_keeps_placeholders():
    doc = iam_role.build_trust_policy(UNKNOWN, UNKNOWN)
    statement = doc["Statement"][0]
    assert statement["Principal"] == {"AWS": UNKNOWN}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": UNKNOWN}}
    assert statement["Action"] == "sts:AssumeRole"


@pytest.mark.parametrize("external_id", [None, ""])
def test_trust_policy_never_without_external_id(external_id):
    with pytest.raises(PolicyError, match="external_id is required"):
        iam_role.build_trust_policy(ATLAS_ARN, external_id)


def test_inline_policy_with_and_without_placeholders():
    assert iam_role.build_inline_policy([KEY_ARN]) == build_kms_access_policy([KEY_ARN])
    only_unknown = iam_role.build_inline_policy([UNKNOWN], ["198.51.100.10"])
    assert only_unknown["Statement"][0]["Resource"] == UNKNOWN
    assert only_unknown["Statement"][0]["Condition"] == {"IpAddress": {"aws:SourceIp": "198.51.100.10/32"}}
    mixed = iam_role.build_inline_policy([KEY_ARN, UNKNOWN])
    assert mixed["Statement"][0]["Resource"] == sorted([KEY_ARN, UNKNOWN])


def test_desired_role_from_params():
    desired = iam_role.desired_role(params(tags={"team": "data"}, source_ips=["198.51.100.11", "198.51.100.10"]))
    assert desired["tags"] == {"team": "data", iam_role.PROJECT_TAG: PROJECT_ID, iam_role.ROLE_TAG: ATLAS_ROLE_ID}
    assert desired["inline_policy"]["Statement"][0]["Condition"] == {"IpAddress": {"aws:SourceIp": ["198.51.100.10/32", "198.51.100.11/32"]}}
    assert desired["description"] is None
    assert desired["max_session_duration"] is None


def test_desired_role_without_keys_leaves_the_inline_policy_unmanaged():
    assert iam_role.desired_role(params(kms_key_arns=[]))["inline_policy"] is None
    with pytest.raises(ModuleInputError, match="source_ips limits the inline KMS policy"):
        iam_role.desired_role(params(kms_key_arns=None, source_ips=["198.51.100.10"]))


@pytest.mark.parametrize("external_id", ["", "   "])
def test_desired_role_refuses_an_empty_external_id(external_id):
    with pytest.raises(ModuleInputError, match="external_id is empty"):
        iam_role.desired_role(params(external_id=external_id))


def test_desired_role_pairing_tags_only_when_given():
    desired = iam_role.desired_role(params(atlas_project_id=None, atlas_role_id=UNKNOWN))
    assert desired["tags"] == {iam_role.ROLE_TAG: UNKNOWN}


# -- planning --------------------------------------------------------------------------------


def test_plan_for_a_new_role():
    desired = iam_role.desired_role(params(description="d", max_session_duration=7200, tags={"team": "data"}))
    actions, after = iam_role.plan_present(None, desired)
    assert methods(actions) == ["create_role", "put_role_policy"]
    create = actions[0].kwargs
    assert create["RoleName"] == "atlas-kms"
    assert create["Path"] == "/"
    assert json.loads(create["AssumeRolePolicyDocument"]) == desired["trust_policy"]
    assert create["Description"] == "d"
    assert create["MaxSessionDuration"] == 7200
    assert create["Tags"] == [
        {"Key": iam_role.PROJECT_TAG, "Value": PROJECT_ID},
        {"Key": iam_role.ROLE_TAG, "Value": ATLAS_ROLE_ID},
        {"Key": "team", "Value": "data"},
    ]
    assert json.loads(actions[1].kwargs["PolicyDocument"]) == desired["inline_policy"]
    assert after["arn"] is None
    assert after["max_session_duration"] == 7200
    assert after["inline_policies"] == {"cmk-atlas-kms-access": desired["inline_policy"]}


def test_plan_for_a_new_role_leaves_out_what_is_unset():
    desired = iam_role.desired_role(params(kms_key_arns=None, atlas_project_id=None, atlas_role_id=None))
    actions, after = iam_role.plan_present(None, desired)
    assert methods(actions) == ["create_role"]
    assert set(actions[0].kwargs) == {"RoleName", "Path", "AssumeRolePolicyDocument"}
    assert after["max_session_duration"] == 3600
    assert after["description"] is None
    assert after["inline_policies"] == {}


def test_a_converged_role_needs_no_write():
    desired = iam_role.desired_role(params(description="d", tags={"team": "data"}))
    current = existing(desired)
    actions, after = iam_role.plan_present(current, desired)
    assert actions == []
    assert after == current


def test_reformatted_documents_need_no_write():
    desired = iam_role.desired_role(params())
    trust = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ["536727724300"]},
                "Action": ["STS:AssumeRole"],
                "Condition": {"stringEquals": {"sts:externalid": [EXTERNAL_ID]}},
                "Sid": "MongoDBAtlasAssumeRole",
            }
        ],
        "Version": "2012-10-17",
    }
    inline = {
        "Version": "2012-10-17",
        "Statement": {"Sid": "MongoDBAtlasKmsAccess", "Effect": "Allow", "Action": ["kms:encrypt", "kms:Decrypt", "kms:DescribeKey"], "Resource": [KEY_ARN]},
    }
    current = existing(desired, trust_policy=trust, inline_policies={"cmk-atlas-kms-access": inline})
    assert iam_role.plan_present(current, desired)[0] == []


def test_changed_documents_are_written_one_call_each():
    desired = iam_role.desired_role(params())
    current = existing(desired, trust_policy=build_atlas_trust_policy(ATLAS_ARN, "old-id"), inline_policies={})
    actions, after = iam_role.plan_present(current, desired)
    assert methods(actions) == ["update_assume_role_policy", "put_role_policy"]
    assert after["trust_policy"] == desired["trust_policy"]
    assert after["inline_policies"]["cmk-atlas-kms-access"] == desired["inline_policy"]


def test_a_placeholder_external_id_plans_a_trust_policy_update():
    desired = iam_role.desired_role(params(external_id=UNKNOWN))
    current = existing(iam_role.desired_role(params()))
    assert methods(iam_role.plan_present(current, desired)[0]) == ["update_assume_role_policy"]


def test_update_role_sends_description_and_session_length_together():
    desired = iam_role.desired_role(params(description="new"))
    current = existing(desired, description="old", max_session_duration=7200)
    actions, after = iam_role.plan_present(current, desired)
    assert methods(actions) == ["update_role"]
    assert actions[0].kwargs == {"RoleName": "atlas-kms", "Description": "new", "MaxSessionDuration": 7200}
    assert (after["description"], after["max_session_duration"]) == ("new", 7200)

    desired = iam_role.desired_role(params(max_session_duration=3600))
    current = existing(desired, description=None, max_session_duration=7200)
    actions, _after = iam_role.plan_present(current, desired)
    assert actions[0].kwargs == {"RoleName": "atlas-kms", "MaxSessionDuration": 3600}


def test_unset_description_and_session_length_are_left_alone():
    desired = iam_role.desired_role(params())
    current = existing(desired, description="kept", max_session_duration=43200)
    assert iam_role.plan_present(current, desired)[0] == []


def test_a_role_under_another_path_is_a_conflict():
    desired = iam_role.desired_role(params(path="/atlas/"))
    current = existing(desired, path="/")
    with pytest.raises(iam_role.RoleConflictError, match="exists with path /, not /atlas/; IAM cannot move a role"):
        iam_role.plan_present(current, desired)


def test_tags_are_added_and_changed_without_purge():
    desired = iam_role.desired_role(params(tags={"team": "platform", "new": "1"}))
    current = existing(desired, tags={"team": "data", "owner": "x", iam_role.PROJECT_TAG: PROJECT_ID, iam_role.ROLE_TAG: "old"})
    actions, after = iam_role.plan_present(current, desired)
    assert methods(actions) == ["tag_role"]
    assert actions[0].kwargs["Tags"] == [{"Key": iam_role.ROLE_TAG, "Value": ATLAS_ROLE_ID}, {"Key": "new", "Value": "1"}, {"Key": "team", "Value": "platform"}]
    assert after["tags"] == {"team": "platform", "owner": "x", "new": "1", iam_role.PROJECT_TAG: PROJECT_ID, iam_role.ROLE_TAG: ATLAS_ROLE_ID}


def test_purge_tags_keeps_the_pairing_tags():
    desired = iam_role.desired_role(params(tags={"team": "data"}, atlas_project_id=None, atlas_role_id=None, purge_tags=True))
    current = existing(desired, tags={"team": "data", "owner": "x", iam_role.PROJECT_TAG: PROJECT_ID, iam_role.ROLE_TAG: ATLAS_ROLE_ID})
    actions, after = iam_role.plan_present(current, desired)
    assert methods(actions) == ["untag_role"]
    assert actions[0].kwargs["TagKeys"] == ["owner"]
    assert after["tags"] == {"team": "data", iam_role.PROJECT_TAG: PROJECT_ID, iam_role.ROLE_TAG: ATLAS_ROLE_ID}


def test_tag_keys_compare_without_case():
    desired = iam_role.desired_role(params(tags={"Team": "data"}, purge_tags=True))
    current = existing(desired, tags={"team": "data", iam_role.PROJECT_TAG: PROJECT_ID, iam_role.ROLE_TAG: ATLAS_ROLE_ID})
    assert iam_role.plan_present(current, desired)[0] == []

    desired = iam_role.desired_role(params(tags={"Team": "platform"}, purge_tags=True))
    actions, after = iam_role.plan_present(current, desired)
    assert methods(actions) == ["tag_role"]
    assert "team" not in after["tags"]
    assert after["tags"]["Team"] == "platform"


def test_other_inline_policies_stay_unless_purged():
    desired = iam_role.desired_role(params())
    other = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
    current = existing(desired)
    current["inline_policies"]["other"] = other
    actions, after = iam_role.plan_present(current, desired)
    assert actions == []
    assert after["inline_policies"]["other"] == other

    desired["purge_policies"] = True
    actions, after = iam_role.plan_present(current, desired)
    assert [(a.method, a.kwargs) for a in actions] == [("delete_role_policy", {"RoleName": "atlas-kms", "PolicyName": "other"})]
    assert set(after["inline_policies"]) == {"cmk-atlas-kms-access"}


def test_an_unmanaged_inline_policy_is_not_touched():
    desired = iam_role.desired_role(params(kms_key_arns=None))
    stale = build_kms_access_policy([OTHER_KEY_ARN])
    current = existing(desired, inline_policies={"cmk-atlas-kms-access": stale})
    actions, after = iam_role.plan_present(current, desired)
    assert actions == []
    assert after["inline_policies"]["cmk-atlas-kms-access"] == stale


def test_plan_absent():
    desired = iam_role.desired_role(params())
    current = existing(desired)
    current["inline_policies"]["other"] = {}
    none = {"managed_policies": [], "instance_profiles": []}
    assert iam_role.plan_absent(None, none, False) == []
    assert [(a.method, a.kwargs.get("PolicyName")) for a in iam_role.plan_absent(current, none, False)] == [
        ("delete_role_policy", "cmk-atlas-kms-access"),
        ("delete_role_policy", "other"),
        ("delete_role", None),
    ]


def test_plan_absent_with_managed_policies():
    current = existing(iam_role.desired_role(params(kms_key_arns=None)))
    attachments = {"managed_policies": ["arn:aws:iam::aws:policy/ReadOnlyAccess"], "instance_profiles": []}
    with pytest.raises(iam_role.RoleConflictError, match=r"managed policies attached: arn:aws:iam::aws:policy/ReadOnlyAccess; .*purge_policies: true"):
        iam_role.plan_absent(current, attachments, False)
    actions = iam_role.plan_absent(current, attachments, True)
    assert methods(actions) == ["detach_role_policy", "delete_role"]
    assert actions[0].kwargs["PolicyArn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"


def test_plan_absent_refuses_instance_profiles():
    current = existing(iam_role.desired_role(params()))
    with pytest.raises(iam_role.RoleConflictError, match="instance profiles web"):
        iam_role.plan_absent(current, {"managed_policies": [], "instance_profiles": ["web"]}, True)


# -- reading and applying against a fake AWS connection --------------------------------------


class FakeAws:
    """Answers IAM calls from a dict of canned responses and records every call."""

    def __init__(self, responses=None, failures=None):
        self.responses = responses or {}
        self.failures = failures or {}
        self.calls = []

    def call(self, service, method, **kwargs):
        self.calls.append((method, kwargs))
        queue = self.failures.get(method)
        if queue:
            raise queue.pop(0)
        return copy.deepcopy(self.responses.get(method, {}))

    def paginate(self, service, method, **kwargs):
        return self.call(service, method, **kwargs)

    def caller_identity(self):
        return {"Account": "111111111111", "Arn": "arn:aws-us-gov:iam::111111111111:user/op", "UserId": "AIDA"}


def no_such_entity(operation):
    return AwsError(f"AWS iam:{operation} failed: NoSuchEntity: not found", "NoSuchEntity", "iam", operation, 404)


def test_read_role_missing():
    aws = FakeAws(failures={"get_role": [no_such_entity("GetRole")]})
    assert iam_role.read_role(aws, "atlas-kms") is None
    assert [method for method, _kw in aws.calls] == ["get_role"]


def test_read_role_other_errors_propagate():
    error = AwsError("AWS iam:GetRole failed: AccessDenied: no", "AccessDenied", "iam", "GetRole", 403)
    with pytest.raises(AwsError, match="AccessDenied"):
        iam_role.read_role(FakeAws(failures={"get_role": [error]}), "atlas-kms")


def test_read_role_decodes_documents():
    trust = build_atlas_trust_policy(ATLAS_ARN, EXTERNAL_ID)
    inline = build_kms_access_policy([KEY_ARN])
    aws = FakeAws(
        {
            "get_role": {
                "Role": {
                    "RoleName": "atlas-kms",
                    "Path": "/",
                    "Arn": ROLE_ARN,
                    "RoleId": "AROAEXAMPLE",
                    "MaxSessionDuration": 3600,
                    "AssumeRolePolicyDocument": quote(json.dumps(trust)),
                    "Tags": [{"Key": "team", "Value": "data"}],
                }
            },
            "list_role_policies": {"PolicyNames": ["cmk-atlas-kms-access"]},
            "get_role_policy": {"PolicyDocument": json.dumps(inline)},
            "list_attached_role_policies": {"AttachedPolicies": [{"PolicyName": "b", "PolicyArn": "arn:b"}, {"PolicyName": "a", "PolicyArn": "arn:a"}]},
        }
    )
    state = iam_role.read_role(aws, "atlas-kms")
    # One read more than before: the attached managed policies, sorted.
    assert [method for method, _kw in aws.calls] == ["get_role", "list_role_policies", "get_role_policy", "list_attached_role_policies"]
    assert state == {
        "name": "atlas-kms",
        "path": "/",
        "arn": ROLE_ARN,
        "role_id": "AROAEXAMPLE",
        "description": None,
        "max_session_duration": 3600,
        "tags": {"team": "data"},
        "trust_policy": trust,
        "inline_policies": {"cmk-atlas-kms-access": inline},
        "managed_policies": ["arn:a", "arn:b"],
    }


def test_read_attachments():
    aws = FakeAws(
        {
            "list_attached_role_policies": {"AttachedPolicies": [{"PolicyName": "b", "PolicyArn": "arn:b"}, {"PolicyName": "a", "PolicyArn": "arn:a"}]},
            "list_instance_profiles_for_role": {"InstanceProfiles": []},
        }
    )
    assert iam_role.read_attachments(aws, "atlas-kms") == {"managed_policies": ["arn:a", "arn:b"], "instance_profiles": []}


def test_read_attachments_reuses_the_managed_policies_read_role_found():
    aws = FakeAws({"list_instance_profiles_for_role": {"InstanceProfiles": [{"InstanceProfileName": "p"}]}})
    assert iam_role.read_attachments(aws, "atlas-kms", managed_policies=["arn:a"]) == {"managed_policies": ["arn:a"], "instance_profiles": ["p"]}
    assert [method for method, _kw in aws.calls] == ["list_instance_profiles_for_role"]


def test_predicted_arn_follows_the_caller_partition():
    assert iam_role.predicted_arn(FakeAws(), "atlas-kms", "/atlas/") == "arn:aws-us-gov:iam::111111111111:role/atlas/atlas-kms"


def test_apply_retries_no_such_entity_only_after_create():
    actions, _after = iam_role.plan_present(None, iam_role.desired_role(params()))
    aws = FakeAws({"create_role": {"Role": {"Arn": ROLE_ARN, "RoleId": "AROAEXAMPLE"}}}, {"put_role_policy": [no_such_entity("PutRolePolicy")] * 2})
    sleeps = []
    created = iam_role.apply_actions(aws, actions, sleep=sleeps.append)
    assert created == {"Arn": ROLE_ARN, "RoleId": "AROAEXAMPLE"}
    assert [method for method, _kw in aws.calls] == ["create_role", "put_role_policy", "put_role_policy", "put_role_policy"]
    assert sleeps == [1.0, 2.0]


def test_apply_gives_up_after_bounded_retries():
    actions, _after = iam_role.plan_present(None, iam_role.desired_role(params()))
    failures = {"put_role_policy": [no_such_entity("PutRolePolicy")] * iam_role.CREATE_SETTLE_ATTEMPTS}
    aws = FakeAws({"create_role": {"Role": {"Arn": ROLE_ARN, "RoleId": "AROAEXAMPLE"}}}, failures)
    sleeps = []
    with pytest.raises(AwsError, match="NoSuchEntity"):
        iam_role.apply_actions(aws, actions, sleep=sleeps.append)
    assert len(sleeps) == iam_role.CREATE_SETTLE_ATTEMPTS - 1
    assert sum(sleeps) < 60


def test_apply_does_not_retry_on_an_existing_role():
    desired = iam_role.desired_role(params())
    actions, _after = iam_role.plan_present(existing(desired, inline_policies={}), desired)
    aws = FakeAws(failures={"put_role_policy": [no_such_entity("PutRolePolicy")]})
    with pytest.raises(AwsError):
        iam_role.apply_actions(aws, actions, sleep=pytest.fail)
    assert len(aws.calls) == 1


def test_apply_reports_a_role_another_run_created_meanwhile():
    actions, _after = iam_role.plan_present(None, iam_role.desired_role(params()))
    exists = AwsError(
        "AWS iam:CreateRole failed: EntityAlreadyExists: Role with name atlas-kms already exists.", "EntityAlreadyExists", "iam", "CreateRole", 409
    )
    aws = FakeAws(failures={"create_role": [exists]})
    with pytest.raises(iam_role.RoleAppearedError, match=r"^IAM role atlas-kms appeared during the run .*a re-run reads it") as info:
        iam_role.apply_actions(aws, actions, sleep=pytest.fail)
    assert isinstance(info.value, iam_role.RoleConflictError)
    assert info.value.name == "atlas-kms"
    # Nothing after the failed CreateRole: the inline policy would land on someone else's role.
    assert [method for method, _kw in aws.calls] == ["create_role"]


def test_apply_passes_other_create_errors_through():
    denied = AwsError("AWS iam:CreateRole failed: AccessDenied: no", "AccessDenied", "iam", "CreateRole", 403)
    actions, _after = iam_role.plan_present(None, iam_role.desired_role(params()))
    with pytest.raises(AwsError, match="AccessDenied") as info:
        iam_role.apply_actions(FakeAws(failures={"create_role": [denied]}), actions)
    assert not isinstance(info.value, iam_role.RoleConflictError)


# -- views -----------------------------------------------------------------------------------


def test_diff_view_normalises_documents():
    desired = iam_role.desired_role(params(tags={"b": "2", "a": "1"}))
    state = existing(desired)
    state["inline_policies"]["other"] = {"Statement": [{"Effect": "Allow", "Action": "S3:GetObject", "Resource": "*"}]}
    view = iam_role.diff_view(state, "cmk-atlas-kms-access")
    assert list(view["tags"]) == sorted(view["tags"])
    assert view["trust_policy"]["Statement"][0]["Principal"] == {"AWS": "536727724300"}
    assert view["inline_policy"] == normalize_policy(desired["inline_policy"])
    assert view["other_inline_policies"]["other"]["Version"] == "2008-10-17"
    assert iam_role.diff_view(None, "x") is None
    del state["inline_policies"]["other"]
    assert "other_inline_policies" not in iam_role.diff_view(state, "cmk-atlas-kms-access")


def test_result_view():
    desired = iam_role.desired_role(params())
    state = existing(desired)
    state["inline_policies"]["zz"] = {}
    result = iam_role.result_view(state, "cmk-atlas-kms-access")
    assert result["arn"] == ROLE_ARN
    assert result["role_name"] == "atlas-kms"
    assert result["inline_policy"] == desired["inline_policy"]
    assert result["other_inline_policies"] == ["zz"]
    assert result["policy_name"] == "cmk-atlas-kms-access"


# -- Atlas -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (ROLE_ARN, ROLE_ARN, True),
        (ROLE_ARN, "arn:aws:iam::111111111111:role/atlas/atlas-kms", True),
        (ROLE_ARN, "arn:aws:iam::222222222222:role/atlas-kms", False),
        (ROLE_ARN, "arn:aws:iam::111111111111:role/other", False),
        ("not-an-arn", "not-an-arn", True),
    ],
)
def test_same_role_arn(a, b, same):
    assert iam_role.same_role_arn(a, b) is same


class FakeAtlas:
    def __init__(self, roles, aws_kms):
        self.answers = {"listGroupCloudProviderAccess": {"awsIamRoles": roles}, "getGroupEncryptionAtRest": {"awsKms": aws_kms}}
        self.calls = []

    def call(self, operation_id, **path):
        self.calls.append((operation_id, path))
        return self.answers[operation_id]


def test_atlas_usage_finds_the_role_encryption_uses():
    roles = [
        {"roleId": "a" * 24, "iamAssumedRoleArn": ROLE_ARN},
        {"roleId": "b" * 24, "iamAssumedRoleArn": "arn:aws:iam::111111111111:role/other"},
        {"roleId": "c" * 24},
    ]
    atlas = FakeAtlas(roles, {"enabled": True, "roleId": "a" * 24})
    assert iam_role.atlas_usage(atlas, PROJECT_ID, ROLE_ARN) == {"encryption_role_id": "a" * 24, "authorized_role_ids": ["a" * 24]}
    assert atlas.calls[0] == ("listGroupCloudProviderAccess", {"groupId": PROJECT_ID})


@pytest.mark.parametrize("aws_kms", [{"enabled": False, "roleId": "a" * 24}, {"enabled": True, "roleId": "b" * 24}, {"enabled": False}])
def test_atlas_usage_when_encryption_uses_another_role_or_none(aws_kms):
    roles = [{"roleId": "a" * 24, "iamAssumedRoleArn": ROLE_ARN}, {"roleId": "b" * 24, "iamAssumedRoleArn": "arn:aws:iam::111111111111:role/x"}]
    usage = iam_role.atlas_usage(FakeAtlas(roles, aws_kms), PROJECT_ID, ROLE_ARN)
    assert usage == {"encryption_role_id": None, "authorized_role_ids": ["a" * 24]}


# -- ownership -------------------------------------------------------------------------------

OTHER_PROJECT_ID = "660000000000000000000002"
EC2_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def found_role(tags=None, trust=None, **overrides):
    """An existing role as read_role returns it, with the given tags and trust policy (default: Atlas with EXTERNAL_ID)."""
    desired = iam_role.desired_role(params())
    return existing(desired, tags=tags or {}, trust_policy=trust or build_atlas_trust_policy(ATLAS_ARN, EXTERNAL_ID), **overrides)


def ownership(current, project_id=PROJECT_ID, external_ids=(EXTERNAL_ID,)):
    return iam_role.role_ownership(current, project_id, ATLAS_ARN, list(external_ids))


def test_no_role_is_absent():
    assert ownership(None).kind == "absent"


@pytest.mark.parametrize("key", [iam_role.PROJECT_TAG, "CMK-Atlas:Project-ID"])
def test_a_role_tagged_for_this_project_is_ours_whatever_it_trusts(key):
    result = ownership(found_role({key: PROJECT_ID}, EC2_TRUST))
    assert result.kind == "ours"
    assert result.paired_project_id == PROJECT_ID
    assert f"IAM role {ROLE_ARN} is paired with Atlas project {PROJECT_ID}" in result.message


def test_an_untagged_role_trusting_atlas_with_this_projects_external_id_is_the_projects():
    result = ownership(found_role(), external_ids=["another-id", EXTERNAL_ID])
    assert (result.kind, result.external_id, result.paired_project_id) == ("trusts_project", EXTERNAL_ID, None)
    assert ROLE_ARN in result.message and EXTERNAL_ID in result.message and PROJECT_ID in result.message


def test_a_tag_naming_another_project_wins_over_a_matching_trust():
    result = ownership(found_role({"cmk-atlas:PROJECT-id": OTHER_PROJECT_ID}))
    assert (result.kind, result.paired_project_id) == ("other_project", OTHER_PROJECT_ID)
    assert f"IAM role {ROLE_ARN} is paired with Atlas project {OTHER_PROJECT_ID}" in result.message
    assert PROJECT_ID in result.message


def test_a_trust_with_another_external_id_of_atlas_belongs_to_another_project():
    result = ownership(found_role(trust=build_atlas_trust_policy(ATLAS_ARN, "someone-elses-id")))
    assert (result.kind, result.external_id, result.paired_project_id) == ("other_project", "someone-elses-id", None)
    assert "someone-elses-id" in result.message and ROLE_ARN in result.message


@pytest.mark.parametrize(
    "trust",
    [
        EC2_TRUST,
        build_atlas_trust_policy("arn:aws:iam::999999999999:root", EXTERNAL_ID),
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ATLAS_ARN}, "Action": "sts:AssumeRole"}]},
    ],
)
def test_any_other_role_is_foreign(trust):
    result = ownership(found_role(trust=trust))
    assert (result.kind, result.paired_project_id, result.external_id) == ("foreign", None, None)
    assert f"IAM role {ROLE_ARN} is not paired with an Atlas project" in result.message


def test_the_foreign_message_says_what_the_role_trusts():
    assert "ec2.amazonaws.com" in ownership(found_role(trust=EC2_TRUST)).message


def test_without_a_project_id_a_tagged_role_is_the_projects_only_through_its_trust():
    tags = {iam_role.PROJECT_TAG: OTHER_PROJECT_ID}
    assert ownership(found_role(tags), project_id=None).kind == "trusts_project"
    refused = ownership(found_role(tags, EC2_TRUST), project_id=None)
    assert (refused.kind, refused.paired_project_id) == ("other_project", OTHER_PROJECT_ID)


def test_placeholders_never_match_a_trust():
    assert ownership(found_role(), external_ids=[UNKNOWN]).kind == "other_project"
    assert iam_role.role_ownership(found_role(), PROJECT_ID, UNKNOWN, [EXTERNAL_ID]).kind == "foreign"


# -- permissions beyond the KMS access -------------------------------------------------------


def beyond(**overrides):
    desired = iam_role.desired_role(params())
    return iam_role.extra_permissions(existing(desired, **overrides), desired["policy_name"], [KEY_ARN])


def test_a_role_with_only_its_kms_policy_has_nothing_beyond():
    assert beyond() == []
    assert iam_role.extra_permissions(None, "cmk-atlas-kms-access", [KEY_ARN]) == []
    # Fewer actions or keys, or a source IP condition, are narrower, not wider.
    narrow = build_kms_access_policy([KEY_ARN], source_ips=["198.51.100.10"])
    narrow["Statement"][0]["Action"] = "kms:Decrypt"
    assert beyond(inline_policies={"cmk-atlas-kms-access": narrow}) == []


def test_other_inline_policies_and_managed_policies_count():
    s3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/*"}]}
    deny_only = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}
    desired = iam_role.desired_role(params())
    found = beyond(
        inline_policies={"cmk-atlas-kms-access": desired["inline_policy"], "s3-read": s3, "guard": deny_only},
        managed_policies=["arn:aws:iam::aws:policy/ReadOnlyAccess"],
    )
    assert found == [
        "inline policy s3-read of IAM role atlas-kms allows s3:GetObject on arn:aws:s3:::bucket/*",
        "managed policy arn:aws:iam::aws:policy/ReadOnlyAccess is attached to IAM role atlas-kms "
        "(its permissions are not read; they count as beyond KMS access)",
    ]


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            {"Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": KEY_ARN},
            "allows kms:GenerateDataKey, beyond kms:Encrypt, kms:Decrypt and kms:DescribeKey",
        ),
        ({"Action": "kms:*", "Resource": KEY_ARN}, "allows kms:*, beyond"),
        ({"Action": "kms:Decrypt*", "Resource": KEY_ARN}, "allows kms:Decrypt*, beyond"),
        ({"NotAction": "kms:Decrypt", "Resource": KEY_ARN}, "allows every action except kms:Decrypt"),
        ({"Action": "kms:Decrypt", "Resource": "*"}, f"allows kms:Decrypt on *, not only on {KEY_ARN}"),
        ({"Action": "kms:Decrypt", "Resource": [KEY_ARN, OTHER_KEY_ARN]}, f"allows kms:Decrypt on {OTHER_KEY_ARN}, not only on"),
        ({"Action": "kms:Decrypt", "NotResource": OTHER_KEY_ARN}, f"allows kms:Decrypt on every resource except {OTHER_KEY_ARN}"),
    ],
)
def test_wider_statements_in_our_policy_count(statement, expected):
    policy = {"Version": "2012-10-17", "Statement": [dict(statement, Effect="Allow")]}
    (found,) = beyond(inline_policies={"cmk-atlas-kms-access": policy})
    assert found.startswith("inline policy cmk-atlas-kms-access of IAM role atlas-kms ")
    assert expected in found


def test_without_key_arns_only_actions_are_judged():
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}
    desired = iam_role.desired_role(params())
    assert iam_role.extra_permissions(existing(desired, inline_policies={"cmk-atlas-kms-access": policy}), "cmk-atlas-kms-access", None) == []


def test_a_new_role_plans_no_managed_policies():
    _actions, after = iam_role.plan_present(None, iam_role.desired_role(params()))
    assert after["managed_policies"] == []


def test_a_hand_made_policy_that_grants_just_the_key_is_nothing_beyond():
    by_hand = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kms:Decrypt", "kms:Encrypt"], "Resource": KEY_ARN}]}
    assert beyond(inline_policies={"kms": by_hand}) == []
    wider = copy.deepcopy(by_hand)
    wider["Statement"][0]["Resource"] = "*"
    assert beyond(inline_policies={"kms": wider}) == ["inline policy kms of IAM role atlas-kms allows kms:Decrypt, kms:Encrypt on *"]


# -- a trust policy to keep as it is ---------------------------------------------------------


def atlas_statement(principal=ATLAS_ARN, external_id=EXTERNAL_ID, operator="StringEquals"):
    return {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole", "Condition": {operator: {"sts:ExternalId": external_id}}}


@pytest.mark.parametrize(
    "statements, kept",
    [
        ([atlas_statement()], True),
        ([atlas_statement(principal="536727724300")], True),
        ([atlas_statement(principal=[ATLAS_ARN])], True),
        # Another party admitted beside Atlas, Atlas without the external id, or another external id: rewritten.
        ([atlas_statement(), {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}], False),
        ([atlas_statement(), atlas_statement(principal="arn:aws:iam::111111111111:root")], False),
        ([{"Effect": "Allow", "Principal": {"AWS": ATLAS_ARN}, "Action": "sts:AssumeRole"}], False),
        ([atlas_statement(external_id="other")], False),
        ([atlas_statement(principal="*")], False),
    ],
)
def test_trust_admits_only_atlas_with_the_external_id(statements, kept):
    trust = {"Version": "2012-10-17", "Statement": statements}
    assert iam_role.trust_admits_only(trust, ATLAS_ARN, EXTERNAL_ID) is kept


def test_a_trust_is_never_kept_for_placeholders():
    trust = {"Version": "2012-10-17", "Statement": [atlas_statement()]}
    assert iam_role.trust_admits_only(trust, ATLAS_ARN, UNKNOWN) is False
    assert iam_role.trust_admits_only(trust, UNKNOWN, EXTERNAL_ID) is False
