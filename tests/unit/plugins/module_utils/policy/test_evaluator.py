import pytest

from ansible_collections.cmk.atlas.plugins.module_utils.aws.connection import AwsError
from ansible_collections.cmk.atlas.plugins.module_utils.policy import evaluator as ka

ROLE = "arn:aws:iam::111111111111:role/atlas-kms"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY = f"arn:aws:kms:us-east-1:111111111111:key/{KEY_ID}"
OTHER_KEY = f"arn:aws:kms:us-east-1:222222222222:key/{KEY_ID}"
ATLAS = ["198.51.100.10/32", "198.51.100.11/32"]
ALL = ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"]


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(resource=KEY, actions=None, **extra):
    return {"Effect": "Allow", "Action": ALL if actions is None else actions, "Resource": resource, **extra}


def deny(resource="*", actions=None, **extra):
    return {"Effect": "Deny", "Action": ALL if actions is None else actions, "Resource": resource, **extra}


def root_delegation(account="111111111111"):
    return {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"}


def names_role(principal=ROLE, **extra):
    return {"Sid": "AtlasKey", "Effect": "Allow", "Principal": {"AWS": principal}, "Action": ALL, "Resource": "*", **extra}


def evaluate(identity=(), key_policy=None, boundary=None, key=KEY, sources=None, private_networking=False):
    documents = ka.Documents([(f"inline policy p{index}", document) for index, document in enumerate(identity)], boundary, key_policy)
    return ka.evaluate_access(ROLE, key, "us-east-1", documents, sources, private_networking)


# -- three-valued logic --------------------------------------------------------------------------


def test_kleene_logic():
    assert ka.all_of(True, None) is None
    assert ka.all_of(True, None, False) is False
    assert ka.all_of() is True
    assert ka.any_of(False, None) is None
    assert ka.any_of(None, True) is True
    assert ka.any_of() is False
    assert ka.negate(None) is None
    assert ka.negate(True) is False


# -- same account ----------------------------------------------------------------------------------


def test_same_account_root_delegation_needs_an_identity_policy():
    report = evaluate(identity=[doc(allow())], key_policy=doc(root_delegation()))
    assert (report.role_ok, report.key_ok, report.source_ip_ok) == (True, True, True)

    missing = evaluate(identity=[], key_policy=doc(root_delegation()))
    assert missing.role_ok is False and missing.key_ok is True
    assert missing.role_problems == [f"no identity policy of {ROLE} allows it on {KEY} (kms:Decrypt, kms:DescribeKey, kms:Encrypt)"]


def test_same_account_key_policy_naming_the_role_is_enough():
    report = evaluate(identity=[], key_policy=doc(names_role()))
    assert report.role_ok is True and report.key_ok is True


def test_one_missing_action_is_named():
    report = evaluate(identity=[doc(allow(actions=["kms:Encrypt", "kms:Decrypt"]))], key_policy=doc(root_delegation()))
    assert report.role_ok is False
    assert report.role_problems == [f"no identity policy of {ROLE} allows it on {KEY} (kms:DescribeKey)"]


@pytest.mark.parametrize(
    "statement",
    [
        allow(actions="kms:*"),
        allow(actions=["KMS:encrypt", "kms:DECRYPT", "kms:Describe*"]),
        allow(actions="*", resource="*"),
        allow(resource="arn:aws:kms:us-east-1:111111111111:key/*"),
        allow(resource="arn:aws:kms:*:111111111111:key/1234abcd-????-34cd-56ef-1234567890ab"),
        {"Effect": "Allow", "NotAction": "kms:ScheduleKeyDeletion", "Resource": KEY},
        {"Effect": "Allow", "Action": ALL, "NotResource": "arn:aws:kms:us-east-1:111111111111:key/other"},
        allow(Condition={"Bool": {"aws:SecureTransport": "true"}}),
        allow(Condition={"StringEquals": {"aws:PrincipalAccount": "111111111111"}}),
        allow(Condition={"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/atlas-*"}}),
        allow(Condition={"StringEqualsIfExists": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}),
        allow(Condition={"Null": {"kms:ViaService": "true"}}),
        allow(Condition={"StringNotEquals": {"aws:SourceVpc": "vpc-1"}}),
    ],
)
def test_wildcards_and_conditions_atlas_meets_grant(statement):
    assert evaluate(identity=[doc(statement)], key_policy=doc(root_delegation())).role_ok is True


@pytest.mark.parametrize(
    "statement",
    [
        allow(resource="arn:aws:kms:us-east-1:111111111111:alias/atlas-cmk"),
        allow(resource="arn:aws:kms:eu-west-1:111111111111:key/*"),
        allow(actions=["kms:Encrypt*", "kms:Decrypt"]),
        {"Effect": "Allow", "NotAction": "kms:*", "Resource": KEY},
        allow(Condition={"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}),
        allow(Condition={"Bool": {"aws:SecureTransport": "false"}}),
        allow(Condition={"StringEquals": {"aws:PrincipalAccount": "999999999999"}}),
    ],
)
def test_statements_that_do_not_grant(statement):
    assert evaluate(identity=[doc(statement)], key_policy=doc(root_delegation())).role_ok is False


# -- explicit deny -----------------------------------------------------------------------------------


def test_explicit_deny_in_an_identity_policy_wins():
    report = evaluate(identity=[doc(allow()), doc({"Sid": "NoDecrypt", **deny(actions="kms:Decrypt")})], key_policy=doc(names_role()))
    assert report.role_ok is False
    assert report.role_problems == ["explicit Deny in inline policy p1 (statement NoDecrypt) (kms:Decrypt)"]


def test_explicit_deny_in_the_key_policy_wins():
    report = evaluate(identity=[doc(allow())], key_policy=doc(root_delegation(), {"Sid": "Lock", "Principal": "*", **deny()}))
    assert report.key_ok is False
    assert report.key_problems == ["explicit Deny in the key policy (statement Lock) (kms:Decrypt, kms:DescribeKey, kms:Encrypt)"]


def test_deny_with_not_principal_excluding_the_role_does_not_apply():
    statement = {"Effect": "Deny", "NotPrincipal": {"AWS": ROLE}, "Action": "kms:*", "Resource": "*"}
    assert evaluate(identity=[doc(allow())], key_policy=doc(root_delegation(), statement)).key_ok is True


def test_permissions_boundary_must_allow():
    boundary = ("arn:aws:iam::111111111111:policy/boundary", doc(allow(actions=["kms:Encrypt", "kms:Decrypt"])))
    report = evaluate(identity=[doc(allow())], key_policy=doc(root_delegation()), boundary=boundary)
    assert report.role_ok is False
    assert report.role_problems == ["permissions boundary arn:aws:iam::111111111111:policy/boundary does not allow it (kms:DescribeKey)"]


# -- another account -------------------------------------------------------------------------------


def test_cross_account_needs_key_policy_and_identity_policy():
    ok = evaluate(identity=[doc(allow(resource=OTHER_KEY))], key_policy=doc(root_delegation("222222222222"), names_role("111111111111")), key=OTHER_KEY)
    assert (ok.role_ok, ok.key_ok) == (True, True)

    no_identity = evaluate(identity=[], key_policy=doc(root_delegation("222222222222"), names_role()), key=OTHER_KEY)
    assert no_identity.role_ok is False and no_identity.key_ok is True
    assert "a key in another account needs an identity policy" in no_identity.role_problems[0]

    no_grant = evaluate(identity=[doc(allow(resource=OTHER_KEY))], key_policy=doc(root_delegation("222222222222")), key=OTHER_KEY)
    assert no_grant.role_ok is True and no_grant.key_ok is False
    assert no_grant.key_problems == [
        f"the key policy of {OTHER_KEY} names neither {ROLE} nor its account 111111111111 (kms:Decrypt, kms:DescribeKey, kms:Encrypt)"
    ]


def test_unread_key_policy_is_unchecked_not_failed():
    report = evaluate(identity=[doc(allow(resource=OTHER_KEY))], key_policy=None, key=OTHER_KEY)
    assert report.key_ok is None
    assert report.role_ok is True
    same_account = evaluate(identity=[], key_policy=None)
    assert same_account.role_ok is None


# -- source addresses ------------------------------------------------------------------------------


def ip_allow(cidrs):
    return allow(Condition={"IpAddress": {"aws:SourceIp": cidrs}})


def test_source_ip_condition_admitting_atlas_passes():
    report = evaluate(identity=[doc(ip_allow(["198.51.100.0/24"]))], key_policy=doc(root_delegation()), sources=ATLAS)
    assert (report.role_ok, report.source_ip_ok) == (True, True)


def test_source_ip_condition_excluding_atlas_fails_and_names_the_address():
    report = evaluate(identity=[doc(ip_allow(["198.51.100.10/32", "10.0.0.0/8"]))], key_policy=doc(root_delegation()), sources=ATLAS)
    assert report.role_ok is False
    assert report.role_problems == [
        f"inline policy p0 of {ROLE} allows it on {KEY} only from aws:SourceIp addresses that exclude Atlas's (see source_ip) "
        "(kms:Decrypt, kms:DescribeKey, kms:Encrypt)"
    ]
    assert report.source_ip_ok is False
    assert report.source_ip_problems == [
        "inline policy p0 allows it only from aws:SourceIp addresses that exclude Atlas's control-plane addresses: 198.51.100.11/32 "
        "(kms:Decrypt, kms:DescribeKey, kms:Encrypt)"
    ]


def test_deny_from_outside_a_network_that_excludes_atlas():
    statement = {"Sid": "OnlyOffice", **deny(Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})}
    report = evaluate(identity=[doc(allow(), statement)], key_policy=doc(root_delegation()), sources=ATLAS)
    assert report.role_ok is False and report.source_ip_ok is False
    assert report.source_ip_problems == [
        "inline policy p0 (statement OnlyOffice) denies it by aws:SourceIp to Atlas's control-plane addresses: 198.51.100.10/32, 198.51.100.11/32 "
        "(kms:Decrypt, kms:DescribeKey, kms:Encrypt)"
    ]
    assert report.role_problems == [
        "explicit Deny in inline policy p0 (statement OnlyOffice) from 198.51.100.10/32, 198.51.100.11/32 (kms:Decrypt, kms:DescribeKey, kms:Encrypt)"
    ]


def test_source_ip_without_known_addresses_is_unchecked():
    report = evaluate(identity=[doc(ip_allow("10.0.0.0/8"))], key_policy=doc(root_delegation()), sources=None)
    assert report.role_ok is None
    assert report.source_ip_ok is None
    assert any("control-plane addresses are not known" in note for note in report.unchecked)


def test_source_ip_with_private_networking_is_unchecked():
    report = evaluate(identity=[doc(ip_allow("10.0.0.0/8"))], key_policy=doc(root_delegation()), sources=ATLAS, private_networking=True)
    assert report.role_ok is None and report.source_ip_ok is None


def test_address_block_partly_inside_is_undecided():
    report = evaluate(identity=[doc(ip_allow("198.51.100.0/25"))], key_policy=doc(root_delegation()), sources=["198.51.100.0/24"])
    assert report.role_ok is None


def test_no_source_ip_condition_needs_no_addresses():
    documents = ka.Documents([("inline policy p", doc(allow()))], None, doc(root_delegation()))
    assert ka.needs_source_addresses(documents) is False
    assert ka.needs_source_addresses(documents._replace(key_policy=doc(names_role(Condition={"IpAddress": {"AWS:SourceIP": "1.2.3.4"}})))) is True


# -- undecidable ------------------------------------------------------------------------------------


def test_unknown_condition_key_makes_an_allow_undecided_not_granted():
    report = evaluate(identity=[doc(allow(Condition={"StringEquals": {"aws:PrincipalTag/team": "data"}}))], key_policy=doc(root_delegation()))
    assert report.role_ok is None
    assert report.unchecked == ["inline policy p0: statement #1 depends on condition key aws:PrincipalTag/team"]


def test_unknown_condition_on_a_deny_makes_the_result_undecided():
    statement = deny(Condition={"StringEquals": {"aws:PrincipalTag/blocked": "yes"}})
    assert evaluate(identity=[doc(allow(), statement)], key_policy=doc(root_delegation())).role_ok is None


def test_unknown_condition_does_not_hide_a_grant_from_another_statement():
    statements = [allow(Condition={"NumericLessThan": {"aws:EpochTime": "1"}}), allow()]
    assert evaluate(identity=[doc(*statements)], key_policy=doc(root_delegation())).role_ok is True


def test_policy_variable_in_resource_is_undecided():
    statement = allow(resource="arn:aws:kms:us-east-1:111111111111:key/${aws:PrincipalTag/key}")
    assert evaluate(identity=[doc(statement)], key_policy=doc(root_delegation())).role_ok is None


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"ForAnyValue:StringEquals": {"kms:ViaService": "x"}}, False),
        ({"ForAllValues:StringEquals": {"kms:ViaService": "x"}}, True),
        ({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/atlas-kms"}}, True),
        ({"StringEqualsIgnoreCase": {"aws:PrincipalType": "assumedrole"}}, True),
        ({"StringNotLike": {"aws:PrincipalArn": "*atlas*"}}, False),
        ({"ArnNotEquals": {"aws:PrincipalArn": ROLE}}, False),
        ({"Null": {"aws:PrincipalArn": "false"}}, True),
        ({"IpAddress": {"aws:SourceIp": ["198.51.100.10"]}, "Bool": {"aws:SecureTransport": "true"}}, True),
    ],
)
def test_condition_operators(condition, expected):
    request = ka.Request(ROLE, "111111111111", KEY, "111111111111", "us-east-1", __import__("ipaddress").ip_network("198.51.100.10/32"), False)
    assert ka.evaluate_condition(condition, request).value is expected


# -- readers ---------------------------------------------------------------------------------------


class FakeIam:
    def __init__(self, role=None, inline=None, attached=None, boundary=None):
        self.role = role
        self.inline = inline or {}
        self.attached = attached or {}
        self.boundary = boundary

    def call(self, service, method, region=None, **kwargs):
        assert service == "iam"
        if method == "get_role":
            if self.role is None:
                raise AwsError("AWS iam:GetRole failed: NoSuchEntity: no role", "NoSuchEntity", "iam", "GetRole", 404)
            role = {"Arn": ROLE, "RoleName": "atlas-kms", "AssumeRolePolicyDocument": '{"Statement": []}'}
            if self.boundary:
                role["PermissionsBoundary"] = {"PermissionsBoundaryArn": "arn:aws:iam::111111111111:policy/b"}
            return {"Role": role}
        if method == "get_role_policy":
            return {"PolicyDocument": self.inline[kwargs["PolicyName"]]}
        if method == "get_policy":
            return {"Policy": {"DefaultVersionId": "v2"}}
        if method == "get_policy_version":
            arn = kwargs["PolicyArn"]
            document = self.boundary if arn.endswith("/b") else self.attached[arn]
            return {"PolicyVersion": {"Document": document}}
        raise AssertionError(method)

    def paginate(self, service, method, region=None, **kwargs):
        if method == "list_role_policies":
            return {"PolicyNames": list(self.inline)}
        if method == "list_attached_role_policies":
            return {"AttachedPolicies": [{"PolicyArn": arn} for arn in self.attached]}
        raise AssertionError(method)


def test_read_role_policies_reads_inline_attached_and_boundary():
    managed = "arn:aws:iam::111111111111:policy/kms"
    fake = FakeIam(role=True, inline={"b": doc(allow()), "a": '{"Statement": []}'}, attached={managed: doc(allow())}, boundary=doc(allow()))
    policies = ka.read_role_policies(fake, ROLE)
    assert [label for label, _document in policies.identity] == ["inline policy a", "inline policy b", f"managed policy {managed}"]
    assert policies.boundary[0] == "arn:aws:iam::111111111111:policy/b"
    assert policies.trust_policy == {"Statement": []}


def test_read_role_policies_of_a_missing_role():
    with pytest.raises(ka.RoleNotFoundError, match="does not exist"):
        ka.read_role_policies(FakeIam(), ROLE)


def test_control_plane_addresses_are_all_aws_outbound_addresses_once():
    body = {"outbound": {"aws": {"us-east-1": ["1.2.3.4/32", "5.6.7.8/32"], "eu-west-1": ["1.2.3.4/32"]}, "azure": {"x": ["9.9.9.9/32"]}}}
    assert ka.control_plane_addresses(body) == ["1.2.3.4/32", "5.6.7.8/32"]
    assert ka.control_plane_addresses({}) == []
