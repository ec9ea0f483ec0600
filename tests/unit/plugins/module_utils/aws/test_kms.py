import datetime
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, ModuleInputError
from ansible_collections.cmk.atlas.plugins.module_utils.aws import kms
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import ArnError
from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsConnection, AwsError
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import PolicyError, normalize_policy

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:eu-west-2:222222222222:key/{KEY_ID}"
ROLE_ARN = "arn:aws:iam::111111111111:role/atlas-kms"
ADMIN = {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"}, "Action": "kms:*", "Resource": "*"}
MOTO_ACCOUNT = "123456789012"
OTHER_ACCOUNT = "222222222222"
AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
)


def default_policy(*extra):
    return {"Version": "2012-10-17", "Id": "key-default-1", "Statement": [dict(ADMIN), *extra]}


def metadata(**overrides):
    result = {
        "key_id": KEY_ID,
        "key_arn": KEY_ARN,
        "account": "222222222222",
        "region": "eu-west-2",
        "partition": "aws",
        "key_state": "Enabled",
        "enabled": True,
        "key_manager": "CUSTOMER",
        "key_spec": "SYMMETRIC_DEFAULT",
        "key_usage": "ENCRYPT_DECRYPT",
        "origin": "AWS_KMS",
        "multi_region": False,
        "description": "",
        "creation_date": None,
        "deletion_date": None,
        "reference": KEY_ID,
    }
    result.update(overrides)
    return result


# -- key references --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [(KEY_ID, "key_id"), (KEY_ARN, "key_arn"), ("alias/atlas-cmk", "alias_name"), ("arn:aws:kms:eu-west-2:222222222222:alias/atlas-cmk", "alias_arn")],
)
def test_key_ref_accepts_every_form(value, kind):
    assert kms.key_ref(value).kind == kind
    assert kms.ref_text(kms.key_ref(value)) == value


@pytest.mark.parametrize("value", ["alias/aws/ebs", "arn:aws:kms:us-east-1:222222222222:alias/aws/s3"])
def test_key_ref_refuses_aws_managed_aliases_offline(value):
    with pytest.raises(kms.KmsKeyError, match=r"^key_id '.*' names an AWS managed key \(alias/aws/.*\): AWS fixes its key policy") as info:
        kms.key_ref(value)
    assert info.value.code == "aws_managed"
    assert isinstance(info.value, ModuleInputError)


def test_key_ref_names_the_option_for_malformed_values():
    with pytest.raises(ArnError, match=r"^key_id 'not-a-key' is not a KMS key reference; expected a key id"):
        kms.key_ref("not-a-key")


def test_key_region_an_arn_names_its_own_region():
    ref = kms.key_ref(KEY_ARN)
    assert kms.key_region(ref) == "eu-west-2"
    assert kms.key_region(ref, "eu-west-2") == "eu-west-2"
    with pytest.raises(kms.KmsKeyError, match=r"is in region eu-west-2, but region is us-east-1; leave region unset or set it to eu-west-2") as info:
        kms.key_region(ref, "us-east-1")
    assert info.value.code == "region_conflict"
    assert kms.key_region(kms.key_ref("alias/x"), "us-east-1") == "us-east-1"
    assert kms.key_region(kms.key_ref(KEY_ID)) is None


# -- principals and the statement ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ROLE_ARN, kms.KeyPrincipal("role", "111111111111", "atlas-kms", "aws", ROLE_ARN)),
        (
            "arn:aws:iam::111111111111:role/service/atlas-kms",
            kms.KeyPrincipal("role", "111111111111", "atlas-kms", "aws", "arn:aws:iam::111111111111:role/service/atlas-kms"),
        ),
        ("111111111111", kms.KeyPrincipal("account", "111111111111", None, None, "111111111111")),
        ("arn:aws-cn:iam::111111111111:root", kms.KeyPrincipal("account", "111111111111", None, "aws-cn", "arn:aws-cn:iam::111111111111:root")),
    ],
)
def test_key_principal_accepts_roles_and_accounts(value, expected):
    assert kms.key_principal(value) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("arn:aws:iam::111111111111:user/alice", r"it is an IAM user, but Atlas reaches the key through an IAM role"),
        (
            "arn:aws:sts::111111111111:assumed-role/atlas-kms/session",
            r"assumed-role session, not a role: give the role ARN, arn:aws:iam::111111111111:role/atlas-kms",
        ),
        ("arn:aws:iam::1111:role/atlas", r"expected an IAM role ARN such as arn:aws:iam::123456789012:role/NAME, a 12-digit account id"),
        ("arn:aws:iam::111111111111:role/bad name", r"expected an IAM role ARN"),
        ("arn:aws:iam::111111111111:group/admins", r"expected an IAM role ARN"),
        ("*", r"expected an IAM role ARN"),
        ("", r"expected an IAM role ARN"),
        ("11111111111", r"expected an IAM role ARN"),
    ],
)
def test_key_principal_refuses_what_cannot_be_granted(value, match):
    with pytest.raises(kms.KmsKeyError, match=match) as info:
        kms.key_principal(value, "principals")
    assert str(info.value).startswith(f"principals entry {value!r} is not a principal a key can be granted to; ")
    assert info.value.code == "bad_principal"


def test_placeholders_only_in_check_mode_and_only_in_valid_shapes():
    partial = "arn:aws:iam::111111111111:role/" + UNKNOWN
    assert kms.key_principal(UNKNOWN, allow_unknown=True) == kms.KeyPrincipal("unknown", None, None, None, UNKNOWN)
    assert kms.key_principal(partial, allow_unknown=True) == kms.KeyPrincipal("unknown", "111111111111", None, None, partial)
    assert kms.key_principal(f"arn:aws:iam::{UNKNOWN}:role/atlas", allow_unknown=True).kind == "unknown"
    with pytest.raises(kms.KmsKeyError, match="run without --check"):
        kms.key_principal(partial)
    with pytest.raises(kms.KmsKeyError, match="expected an IAM role ARN"):
        kms.key_principal("arn:aws:iam::111111111111:user/" + UNKNOWN, allow_unknown=True)


def test_validate_key_principals_counts_an_account_and_its_root_once():
    principals = kms.validate_key_principals(["111111111111", "arn:aws:iam::111111111111:root", ROLE_ARN, ROLE_ARN])
    assert [p.kind for p in principals] == ["account", "role"]
    with pytest.raises(kms.KmsKeyError, match="principals must name at least one principal"):
        kms.validate_key_principals([])


def test_check_principal_partitions():
    kms.check_principal_partitions(kms.validate_key_principals(["111111111111", ROLE_ARN]), "aws")
    with pytest.raises(kms.KmsKeyError, match="is in partition aws-cn, but the key is in partition aws"):
        kms.check_principal_partitions(kms.validate_key_principals(["arn:aws-cn:iam::111111111111:role/atlas"]), "aws")


@pytest.mark.parametrize(
    ("principal", "sid"),
    [
        (ROLE_ARN, "MongoDBAtlasKeyAccessaws111111111111X2FatlasX2Dkms"),
        ("arn:aws:iam::111111111111:role/team/Atlas_KMS-role.2", "MongoDBAtlasKeyAccessaws111111111111X2FteamX2FAtlasX5FKMSX2DroleX2E2"),
        ("333333333333", "MongoDBAtlasKeyAccess333333333333"),
        ("arn:aws:iam::333333333333:root", "MongoDBAtlasKeyAccess333333333333"),
        ("arn:aws:iam::111111111111:role/" + UNKNOWN, "MongoDBAtlasKeyAccess" + UNKNOWN),
    ],
)
def test_default_sid_follows_the_principal(principal, sid):
    assert kms.default_key_access_sid(kms.validate_key_principals([principal], allow_unknown=True)) == sid


def test_default_sid_differs_for_same_role_name_in_two_accounts():
    sids = {kms.default_key_access_sid(kms.validate_key_principals([f"arn:aws:iam::{account}:role/atlas"])) for account in ("111111111111", "333333333333")}
    assert len(sids) == 2


def unescape_sid(sid):
    """Decode a key_access_sid back to partition + account + path + name: proof that nothing is lost."""
    assert sid.startswith(kms.KEY_ACCESS_SID_PREFIX)
    text, out, i = sid[len(kms.KEY_ACCESS_SID_PREFIX) :], bytearray(), 0
    while i < len(text):
        if text[i] == "X":
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(text[i]))
            i += 1
    return out.decode()


# Few characters, so that near-collisions (atlas-kms-ab / atlas_kms_ab, X itself) are common.
_NAME_CHARS = "aX5-_.+=,@"
_PARTITIONS = st.sampled_from(["aws", "aws-cn", "aws-us-gov", "aws-iso-b"])
_ACCOUNTS = st.sampled_from(["111111111111", "011111111111", "111111111110"])
_NAMES = st.text(_NAME_CHARS, min_size=1, max_size=64)
_PATHS = st.one_of(
    st.just("/"), st.lists(st.text(_NAME_CHARS + "!~", min_size=1, max_size=8), min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts) + "/")
)


def role_arn(partition, account, path, name):
    return f"arn:{partition}:iam::{account}:role{path}{name}"


@given(_PARTITIONS, _ACCOUNTS, _PATHS, _NAMES)
def test_key_access_sid_keeps_every_part_of_the_role_arn(partition, account, path, name):
    sid = kms.key_access_sid(role_arn(partition, account, path, name))
    assert re.fullmatch(r"[A-Za-z0-9]+", sid)
    assert unescape_sid(sid) == partition + account + path + name


@given(_PARTITIONS, _ACCOUNTS, _PATHS, _NAMES, _PARTITIONS, _ACCOUNTS, _PATHS, _NAMES)
def test_key_access_sid_is_injective(p1, a1, path1, n1, p2, a2, path2, n2):
    first, second = role_arn(p1, a1, path1, n1), role_arn(p2, a2, path2, n2)
    assert (kms.key_access_sid(first) == kms.key_access_sid(second)) == (first == second)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("arn:aws:iam::111111111111:role/atlas-kms-ab", "arn:aws:iam::111111111111:role/atlas_kms_ab"),
        ("arn:aws:iam::111111111111:role/atlas-kms-ab", "arn:aws:iam::111111111111:role/atlaskmsab"),
        ("arn:aws:iam::111111111111:role/atlas", "arn:aws:iam::333333333333:role/atlas"),
        ("arn:aws:iam::111111111111:role/atlas", "arn:aws:iam::111111111111:role/team/atlas"),
        ("arn:aws:iam::111111111111:role/a/b/atlas", "arn:aws:iam::111111111111:role/a/batlas"),
        ("arn:aws:iam::111111111111:role/atlas", "arn:aws-cn:iam::111111111111:role/atlas"),
        ("arn:aws:iam::111111111111:role/X2D", "arn:aws:iam::111111111111:role/-"),
    ],
)
def test_key_access_sid_differs(a, b):
    assert kms.key_access_sid(a) != kms.key_access_sid(b)


def test_key_access_sid_escapes_the_escape_letter_and_refuses_non_roles():
    assert kms.key_access_sid("arn:aws:iam::111111111111:role/Xray") == "MongoDBAtlasKeyAccessaws111111111111X2FX58ray"
    with pytest.raises(ArnError, match="is not an IAM role ARN"):
        kms.key_access_sid("arn:aws:iam::111111111111:root")


def test_a_role_sid_never_equals_an_account_sid():
    # Role Sids go on with the partition's letters, account Sids with the account's digits.
    role = kms.default_key_access_sid(kms.validate_key_principals(["arn:aws:iam::111111111111:role/atlas"]))
    account = kms.default_key_access_sid(kms.validate_key_principals(["111111111111"]))
    assert role == kms.key_access_sid("arn:aws:iam::111111111111:role/atlas")
    assert role != account and not role.startswith(account)


def test_default_sid_needs_a_single_principal():
    principals = kms.validate_key_principals([ROLE_ARN, "333333333333"])
    with pytest.raises(kms.KmsKeyError, match=r"^sid is required when principals names 2 principals") as info:
        kms.default_key_access_sid(principals)
    assert info.value.code == "sid_required"


def test_key_access_statement():
    principals = kms.validate_key_principals([ROLE_ARN, "333333333333"])
    statement = kms.key_access_statement("S", principals, ["203.0.113.0/24", "198.51.100.10"], partition="aws-us-gov")
    assert (statement["Sid"], statement["Effect"], statement["Resource"]) == ("S", "Allow", "*")
    assert set(statement["Action"]) == {"kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"}
    assert statement["Principal"] == {"AWS": ["arn:aws-us-gov:iam::333333333333:root", ROLE_ARN]}
    assert statement["Condition"] == {"IpAddress": {"aws:SourceIp": ["198.51.100.10/32", "203.0.113.0/24"]}}
    assert "Condition" not in kms.key_access_statement("S", principals[:1])
    with pytest.raises(PolicyError, match=r"source_ips entry '300\.0\.0\.1' is not an IP address"):
        kms.key_access_statement("S", principals, ["300.0.0.1"])


def test_key_access_statement_keeps_placeholders():
    principals = kms.validate_key_principals([UNKNOWN], allow_unknown=True)
    statement = kms.key_access_statement("MongoDBAtlasKeyAccess" + UNKNOWN, principals)
    assert statement["Principal"] == {"AWS": UNKNOWN}
    assert statement["Sid"] == "MongoDBAtlasKeyAccess" + UNKNOWN


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ({"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]}, True),
        ({"Effect": "Allow", "Action": "KMS:decrypt"}, True),
        ({"Effect": "Allow", "Action": ["kms:Encrypt", "kms:ReEncrypt*"]}, False),
        ({"Effect": "Allow", "Action": "kms:*"}, False),
        ({"Effect": "Deny", "Action": "kms:Decrypt"}, False),
        ({"Effect": "Allow", "NotAction": "kms:Decrypt"}, False),
        ({"Effect": "Allow", "Action": "kms:Decrypt", "NotPrincipal": {"AWS": "x"}}, False),
        ({"Effect": "Allow"}, False),
    ],
)
def test_is_key_access_statement(statement, expected):
    assert kms.is_key_access_statement(statement) is expected


# -- planning a key-policy change ------------------------------------------------------------


def role_statement(sid="MongoDBAtlasKeyAccess111111111111atlaskms", principal=ROLE_ARN, source_ips=None):
    return kms.key_access_statement(sid, kms.validate_key_principals([principal]), source_ips)


def test_plan_adds_the_statement_and_keeps_every_other_one_exactly():
    other = {
        "Sid": "Allow use of the key",
        "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::222222222222:role/app"]},
        "Action": ["kms:Encrypt"],
        "Resource": "*",
    }
    current = default_policy(other)
    plan = kms.plan_key_policy_statement(json.dumps(current), role_statement().get("Sid"), role_statement())
    assert plan.changed is True
    assert plan.after["Statement"][:2] == current["Statement"]
    assert plan.after["Id"] == "key-default-1"
    assert plan.after["Statement"][2] == role_statement()
    assert plan.before == current


def test_plan_is_unchanged_for_a_semantically_equal_statement():
    stored = role_statement()
    stored["Action"] = ["kms:describekey", "kms:Encrypt", "kms:Decrypt"]
    stored["Principal"] = {"AWS": [ROLE_ARN]}
    plan = kms.plan_key_policy_statement(default_policy(stored), stored["Sid"], role_statement())
    assert plan.changed is False
    assert plan.after == plan.before


def test_plan_replaces_only_its_statement_when_it_changed():
    current = default_policy(role_statement())
    wanted = role_statement(source_ips=["198.51.100.10"])
    plan = kms.plan_key_policy_statement(current, wanted["Sid"], wanted)
    assert plan.changed is True
    assert plan.after["Statement"] == [ADMIN, wanted]


def test_two_projects_sharing_a_key_get_one_statement_each():
    first = role_statement()
    second_principal = "arn:aws:iam::333333333333:role/atlas-kms"
    second = role_statement(kms.default_key_access_sid(kms.validate_key_principals([second_principal])), second_principal)
    after_first = kms.plan_key_policy_statement(default_policy(), first["Sid"], first).after
    after_second = kms.plan_key_policy_statement(after_first, second["Sid"], second).after
    assert after_second["Statement"] == [ADMIN, first, second]


def test_plan_removes_only_its_statement():
    other = {"Sid": "Other", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}
    current = default_policy(role_statement(), other)
    plan = kms.plan_key_policy_statement(current, role_statement()["Sid"])
    assert plan.changed is True
    assert plan.after["Statement"] == [ADMIN, other]
    again = kms.plan_key_policy_statement(plan.after, role_statement()["Sid"])
    assert again.changed is False


@pytest.mark.parametrize("remove", [False, True])
@pytest.mark.parametrize(
    "foreign",
    [
        dict(ADMIN, Sid="Taken"),
        {"Sid": "Taken", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"},
        {"Sid": "Taken", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"},
    ],
)
def test_plan_leaves_someone_elses_statement_with_the_same_sid_alone(foreign, remove):
    current = default_policy(foreign)
    with pytest.raises(kms.KmsKeyError, match=r"already has a statement with Sid 'Taken' that grants more than key access \(Effect ") as info:
        kms.plan_key_policy_statement(current, "Taken", None if remove else role_statement("Taken"), KEY_ARN)
    assert KEY_ARN in str(info.value)
    assert info.value.code == "sid_conflict"


OTHER_ROLE = "arn:aws:iam::111111111111:role/someone-else"


@pytest.mark.parametrize(
    ("existing_principal", "named"),
    [
        ({"AWS": OTHER_ROLE}, OTHER_ROLE),
        ({"AWS": "arn:aws:iam::333333333333:root"}, "333333333333"),
        ({"AWS": [ROLE_ARN, OTHER_ROLE]}, OTHER_ROLE),
        ("*", "*"),
        ({"Service": "logs.amazonaws.com"}, "logs.amazonaws.com"),
    ],
)
@pytest.mark.parametrize("remove", [False, True])
def test_a_statement_with_our_sid_for_another_principal_is_not_ours(existing_principal, named, remove):
    sid = kms.key_access_sid(ROLE_ARN)
    taken = dict(role_statement(sid), Principal=existing_principal)
    with pytest.raises(kms.KmsKeyError, match=rf"^the key policy of {re.escape(KEY_ARN)} has a statement with Sid '{sid}' for ") as info:
        if remove:
            kms.plan_key_policy_statement(default_policy(taken), sid, None, KEY_ARN, principals=[ROLE_ARN])
        else:
            kms.plan_key_policy_statement(default_policy(taken), sid, role_statement(sid), KEY_ARN)
    assert named in str(info.value)
    assert "nothing was written" in str(info.value)
    assert info.value.code == "sid_conflict"


def test_plan_key_access_refuses_our_sid_on_another_principal():
    sid = kms.key_access_sid(ROLE_ARN)
    taken = dict(role_statement(sid), Principal={"AWS": OTHER_ROLE})
    with pytest.raises(kms.KmsKeyError, match="nothing was written"):
        kms.plan_key_access(default_policy(taken), sid, kms.validate_key_principals([ROLE_ARN]), metadata())


def test_our_statement_may_name_fewer_principals_or_a_deleted_role():
    sid = "MongoDBAtlasKeyAccessTeam"
    both = kms.key_access_statement(sid, kms.validate_key_principals([ROLE_ARN, OTHER_ROLE]))
    # Adding a principal takes nothing away from anyone.
    assert kms.plan_key_policy_statement(default_policy(role_statement(sid)), sid, both).changed is True
    # IAM shows a deleted role by its unique id: nobody loses access when it is replaced.
    stale = dict(role_statement(sid), Principal={"AWS": "AROAEXAMPLEDELETED123"})
    assert kms.plan_key_policy_statement(default_policy(stale), sid, role_statement(sid)).after["Statement"] == [ADMIN, role_statement(sid)]
    # Removing by Sid alone (no principals given) is the user's explicit word.
    assert kms.plan_key_policy_statement(default_policy(dict(role_statement(sid), Principal={"AWS": OTHER_ROLE})), sid).changed is True


def test_other_statements_are_kept_exactly_as_written():
    others = [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ["222222222222"]}, "Action": ["KMS:*"], "Resource": ["*"]},
        {"Effect": "Allow", "Principal": "*", "Action": "kms:decrypt", "Resource": "*", "Condition": {"stringequals": {"kms:CallerAccount": 222222222222}}},
        {"Sid": "Zeta", "Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::222222222222:root"}, "Action": "kms:PutKeyPolicy", "Resource": "*"},
    ]
    sid = kms.key_access_sid(ROLE_ARN)
    current = {"Version": "2012-10-17", "Id": "custom", "Statement": [others[0], role_statement(sid), *others[1:]]}
    updated = kms.plan_key_policy_statement(json.dumps(current), sid, role_statement(sid, source_ips=["198.51.100.10"])).after
    assert [statement for statement in updated["Statement"] if statement.get("Sid") != sid] == others
    removed = kms.plan_key_policy_statement(json.dumps(current), sid, None, principals=[ROLE_ARN]).after
    assert removed == {"Version": "2012-10-17", "Id": "custom", "Statement": others}


def test_plan_refuses_a_policy_that_nobody_can_manage():
    current = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "UseOnly", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt", "Resource": "*"}],
    }
    with pytest.raises(kms.KmsKeyError, match=r"no principal would be allowed kms:PutKeyPolicy.*already allows it to nobody") as info:
        kms.plan_key_policy_statement(current, role_statement()["Sid"], role_statement(), KEY_ARN)
    assert info.value.code == "lockout"
    # Nothing to change: nothing to refuse either.
    assert kms.plan_key_policy_statement(current, "Absent").changed is False


def test_plan_drops_duplicate_sids_it_owns():
    duplicate = role_statement()
    plan = kms.plan_key_policy_statement(default_policy(duplicate, dict(duplicate, Action="kms:Decrypt")), duplicate["Sid"], duplicate)
    assert plan.changed is True
    assert plan.after["Statement"] == [ADMIN, duplicate]


# -- key metadata and problems ---------------------------------------------------------------


# -- does the key policy already grant the key? ------------------------------------------------


SAME_ACCOUNT_ROLE = "arn:aws:iam::222222222222:role/atlas-kms"


def principals(*values):
    return kms.validate_key_principals(list(values), allow_unknown=True)


def test_the_default_key_policy_delegates_to_its_own_account_only():
    # AWS's default key policy lets the key's account grant the key through IAM policies.
    assert kms.key_policy_grants(default_policy(), principals(SAME_ACCOUNT_ROLE), metadata()) is True
    assert kms.key_policy_grants(default_policy(), principals(OTHER_ACCOUNT), metadata()) is True
    assert kms.key_policy_grants(default_policy(), principals(ROLE_ARN), metadata()) is False


def test_a_statement_naming_the_role_or_its_account_grants_it():
    assert kms.key_policy_grants(default_policy(role_statement()), principals(ROLE_ARN), metadata()) is True
    by_account = role_statement(sid="Partner", principal="arn:aws:iam::111111111111:root")
    assert kms.key_policy_grants(default_policy(by_account), principals(ROLE_ARN), metadata()) is True
    # ... unless it leaves one of the three actions out.
    partial = dict(by_account, Action=["kms:Encrypt", "kms:Decrypt"])
    assert kms.key_policy_grants(default_policy(partial), principals(ROLE_ARN), metadata()) is False


def test_the_managed_statement_can_be_left_out_of_the_answer():
    doc = default_policy(role_statement())
    assert kms.key_policy_grants(doc, principals(ROLE_ARN), metadata(), without_sid="MongoDBAtlasKeyAccess111111111111atlaskms") is False


def test_a_deny_or_an_undecided_condition_is_not_a_grant():
    deny = {"Sid": "NoDecrypt", "Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
    assert kms.key_policy_grants(default_policy(deny), principals(SAME_ACCOUNT_ROLE), metadata()) is False
    only_from = role_statement(source_ips=["198.51.100.10"])
    assert kms.key_policy_grants(default_policy(only_from), principals(ROLE_ARN), metadata()) is None
    assert kms.key_policy_grants(default_policy(), principals(UNKNOWN), metadata()) is None


def test_has_statement():
    assert kms.has_statement(default_policy(role_statement()), "MongoDBAtlasKeyAccess111111111111atlaskms")
    assert not kms.has_statement(json.dumps(default_policy()), "MongoDBAtlasKeyAccess111111111111atlaskms")


def test_key_metadata_is_snake_case_with_region_and_partition():
    raw = {
        "AWSAccountId": "222222222222",
        "KeyId": KEY_ID,
        "Arn": KEY_ARN,
        "CreationDate": datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc),
        "Enabled": False,
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeyState": "PendingDeletion",
        "DeletionDate": datetime.datetime(2026, 2, 3, tzinfo=datetime.timezone.utc),
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
        "Origin": "AWS_KMS",
    }
    result = kms.key_metadata(raw, "alias/atlas")
    assert result == metadata(
        key_state="PendingDeletion",
        enabled=False,
        creation_date="2026-01-02T00:00:00+00:00",
        deletion_date="2026-02-03T00:00:00+00:00",
        reference="alias/atlas",
    )
    json.dumps(result)


def test_a_usable_key_has_no_problems():
    assert kms.key_problems(metadata()) == []
    assert kms.check_key(metadata()) == []


@pytest.mark.parametrize(
    ("overrides", "severity", "code", "match"),
    [
        ({"key_manager": "AWS"}, "error", "aws_managed", "is an AWS managed key"),
        (
            {"key_state": "PendingDeletion", "deletion_date": "2026-02-03"},
            "error",
            "pending_deletion",
            r"is PendingDeletion \(deletion on 2026-02-03\).*cancel-key-deletion",
        ),
        ({"key_state": "PendingReplicaDeletion"}, "error", "pending_deletion", "is PendingReplicaDeletion: Atlas cannot use it"),
        ({"key_spec": "RSA_2048", "key_usage": "ENCRYPT_DECRYPT"}, "error", "not_symmetric", "has key spec RSA_2048"),
        ({"key_spec": "HMAC_256", "key_usage": "GENERATE_VERIFY_MAC"}, "error", "not_symmetric", "Atlas needs a symmetric encryption key"),
        ({"key_state": "Disabled", "enabled": False}, "warning", "disabled", r"is disabled: .*aws kms enable-key --key-id " + KEY_ID),
        ({"key_state": "PendingImport"}, "warning", "pending_import", "no key material"),
        ({"key_state": "Unavailable"}, "warning", "unavailable", "custom key store"),
    ],
)
def test_key_problems(overrides, severity, code, match):
    (problem,) = kms.key_problems(metadata(**overrides))
    assert (problem.severity, problem.code) == (severity, code)
    assert problem.message.startswith(f"KMS key {KEY_ARN} ")
    assert re.search(match, problem.message)


def test_check_key_raises_all_errors_and_returns_warnings():
    with pytest.raises(kms.KmsKeyError, match=r"^key_id: KMS key .* AWS managed key.*; KMS key .* is PendingDeletion") as info:
        kms.check_key(metadata(key_manager="AWS", key_state="PendingDeletion"))
    assert info.value.code == "aws_managed"
    (warning,) = kms.check_key(metadata(key_state="Disabled", reference="arn:aws:kms:eu-west-2:222222222222:alias/atlas"))
    assert warning.startswith(f"KMS key {KEY_ARN} (alias/atlas) is disabled")


# -- against moto ----------------------------------------------------------------------------


@pytest.fixture
def moto(monkeypatch, tmp_path):
    for name in AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    from moto import mock_aws

    with mock_aws():
        yield AwsConnection({"region": "eu-west-2"})


def make_key(connection, alias="alias/atlas-cmk", policy=None):
    arguments = {"Policy": json.dumps(policy)} if policy else {}
    key = connection.call("kms", "create_key", **arguments)["KeyMetadata"]
    connection.call("kms", "create_alias", AliasName=alias, TargetKeyId=key["KeyId"])
    return key


def test_describe_key_by_every_reference(moto):
    key = make_key(moto)
    alias_arn = f"arn:aws:kms:eu-west-2:{MOTO_ACCOUNT}:alias/atlas-cmk"
    for reference in (key["KeyId"], key["Arn"], "alias/atlas-cmk", alias_arn):
        result = kms.describe_key(moto, reference)
        assert (result["key_id"], result["key_arn"], result["account"], result["region"]) == (key["KeyId"], key["Arn"], MOTO_ACCOUNT, "eu-west-2")
        assert result["key_state"] == "Enabled"
        assert result["reference"] == reference
        json.dumps(result)


def test_describe_key_looks_for_an_arn_in_its_own_region(moto):
    other_region = moto.derive(region="us-west-2")
    key = other_region.call("kms", "create_key")["KeyMetadata"]
    assert kms.describe_key(moto, key["Arn"])["region"] == "us-west-2"
    with pytest.raises(
        kms.KmsKeyError,
        match=rf"^key_id '{key['KeyId']}': no such KMS key in account {MOTO_ACCOUNT}, region eu-west-2 \(AWS kms:DescribeKey failed: NotFoundException",
    ):
        kms.describe_key(moto, key["KeyId"])
    assert kms.describe_key(moto, key["KeyId"], region="us-west-2")["key_arn"] == key["Arn"]


def test_describe_key_names_a_missing_alias(moto):
    with pytest.raises(kms.KmsKeyError, match=rf"^key_id 'alias/missing': no such KMS alias in account {MOTO_ACCOUNT}, region eu-west-2") as info:
        kms.describe_key(moto, "alias/missing")
    assert info.value.code == "not_found"


def test_require_key_owner(moto):
    own = kms.key_ref(f"arn:aws:kms:eu-west-2:{MOTO_ACCOUNT}:key/{KEY_ID}")
    kms.require_key_owner(moto, own)
    kms.require_key_owner(moto, kms.key_ref(KEY_ID))
    with pytest.raises(kms.KmsKeyError) as info:
        kms.require_key_owner(moto, kms.key_ref(KEY_ARN))
    message = str(info.value)
    assert message.startswith(f"key_id '{KEY_ARN}' is a key in AWS account 222222222222, but the AWS credentials act in account {MOTO_ACCOUNT}")
    assert "assume_role_arn: arn:aws:iam::222222222222:role/ROLE_NAME" in message
    assert info.value.code == "wrong_account"
    owner = moto.derive(assume_role_arn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/key-admin")
    kms.require_key_owner(owner, kms.key_ref(KEY_ARN))


def test_key_policy_round_trip(moto):
    key = make_key(moto)
    meta = kms.describe_key(moto, "alias/atlas-cmk")
    current = kms.get_key_policy(moto, meta)
    assert [statement["Sid"] for statement in current["Statement"]] == ["Enable IAM User Permissions"]
    plan = kms.plan_key_policy_statement(current, role_statement()["Sid"], role_statement(), meta["key_arn"])
    kms.put_key_policy(moto, meta, plan.after)
    stored = json.loads(moto.call("kms", "get_key_policy", KeyId=key["KeyId"], PolicyName="default")["Policy"])
    assert normalize_policy(stored) == normalize_policy(plan.after)
    assert kms.plan_key_policy_statement(kms.get_key_policy(moto, meta), role_statement()["Sid"], role_statement()).changed is False


def test_put_key_policy_explains_a_malformed_policy(moto, monkeypatch):
    make_key(moto)
    meta = kms.describe_key(moto, "alias/atlas-cmk")

    def refuse(*_args, **_kwargs):
        raise AwsError(
            "AWS kms:PutKeyPolicy failed: MalformedPolicyDocumentException: Policy contains a statement with one or more invalid principals.",
            "MalformedPolicyDocumentException",
            "kms",
            "PutKeyPolicy",
            400,
        )

    monkeypatch.setattr(moto, "call", refuse)
    with pytest.raises(AwsError, match=r"invalid principals\.; check that every principal exists \(an IAM role must exist before") as info:
        kms.put_key_policy(moto, meta, default_policy())
    assert info.value.code == "MalformedPolicyDocumentException"
