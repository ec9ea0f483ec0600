"""IAM policy evaluation of the Atlas emulator (emulators.atlas.access), without any server."""

import pytest

from emulators.atlas.access import Context, Principal, conditions_hold, evaluate, kms_decision, trust_problems

ROLE_ACCOUNT = "111111111111"
KEY_ACCOUNT = "222222222222"
ATLAS = "536727724300"
ROLE = Principal(f"arn:aws:iam::{ROLE_ACCOUNT}:role/atlas-kms", ROLE_ACCOUNT)
SAME_KEY = f"arn:aws:kms:eu-west-2:{ROLE_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY = f"arn:aws:kms:eu-west-2:{KEY_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
EXTERNAL_ID = "0fffc965-59c3-45f1-8f26-27588f3ab814"
CTX = Context.of(aws__SourceIp="198.51.100.10", aws__PrincipalArn=ROLE.arn, aws__PrincipalAccount=ROLE_ACCOUNT)


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(resource="*", actions=("kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"), **extra):
    return {"Effect": "Allow", "Action": list(actions), "Resource": resource, **extra}


def root_delegation(account):
    return {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "kms:*", "Resource": "*"}


def decide(key_arn, key_policy, identity=(), boundary=None, action="kms:Decrypt", context=CTX):
    return kms_decision(ROLE, action, key_arn, key_policy, [(f"p{i}", d) for i, d in enumerate(identity)], boundary, context)[0]


# -- same account ------------------------------------------------------------------------------------


def test_same_account_delegation_needs_identity_allow():
    key_policy = doc(root_delegation(ROLE_ACCOUNT))
    assert not decide(SAME_KEY, key_policy)
    assert decide(SAME_KEY, key_policy, [doc(allow(SAME_KEY))])


def test_same_account_key_policy_naming_the_role_is_enough_alone():
    key_policy = doc(allow("*", Principal={"AWS": ROLE.arn}))
    assert decide(SAME_KEY, key_policy)


def test_same_account_identity_allow_without_delegation_is_refused():
    key_policy = doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ROLE_ACCOUNT}:user/admin"}, "Action": "kms:*", "Resource": "*"})
    assert not decide(SAME_KEY, key_policy, [doc(allow(SAME_KEY))])


def test_account_id_principal_counts_as_delegation():
    assert decide(SAME_KEY, doc(allow("*", Principal={"AWS": ROLE_ACCOUNT})), [doc(allow("*"))])


def test_identity_policy_missing_an_action_refuses_that_action():
    key_policy = doc(root_delegation(ROLE_ACCOUNT))
    identity = [doc(allow(SAME_KEY, actions=("kms:Encrypt", "kms:DescribeKey")))]
    assert decide(SAME_KEY, key_policy, identity, action="kms:Encrypt")
    assert not decide(SAME_KEY, key_policy, identity, action="kms:Decrypt")


@pytest.mark.parametrize(
    "actions",
    [("kms:*",), ("*",), ("KMS:decrypt",), ("kms:Decr?pt",), ("kms:De*",)],
)
def test_action_wildcards_and_case(actions):
    assert decide(SAME_KEY, doc(root_delegation(ROLE_ACCOUNT)), [doc(allow(SAME_KEY, actions=actions))])


def test_resource_wildcards():
    key_policy = doc(root_delegation(ROLE_ACCOUNT))
    assert decide(SAME_KEY, key_policy, [doc(allow(f"arn:aws:kms:eu-west-2:{ROLE_ACCOUNT}:key/*"))])
    assert decide(SAME_KEY, key_policy, [doc(allow("arn:aws:kms:*:*:key/1234abcd-????-*"))])
    assert not decide(SAME_KEY, key_policy, [doc(allow(f"arn:aws:kms:us-east-1:{ROLE_ACCOUNT}:key/*"))])
    # An alias ARN in an identity policy does not grant use of the key it points to.
    assert not decide(SAME_KEY, key_policy, [doc(allow(f"arn:aws:kms:eu-west-2:{ROLE_ACCOUNT}:alias/atlas"))])


def test_not_action_and_not_resource():
    key_policy = doc(root_delegation(ROLE_ACCOUNT))
    not_action = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    assert decide(SAME_KEY, key_policy, [doc(not_action)])
    not_kms = {"Effect": "Allow", "NotAction": "kms:*", "Resource": "*"}
    assert not decide(SAME_KEY, key_policy, [doc(not_kms)])
    not_resource = {"Effect": "Allow", "Action": "kms:*", "NotResource": "arn:aws:kms:*:*:key/other"}
    assert decide(SAME_KEY, key_policy, [doc(not_resource)])


def test_explicit_deny_wins_everywhere():
    deny = {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}
    key_policy = doc(allow("*", Principal={"AWS": ROLE.arn}))
    assert not decide(SAME_KEY, key_policy, [doc(allow("*"), deny)])
    assert not decide(SAME_KEY, doc(allow("*", Principal={"AWS": ROLE.arn}), {**deny, "Principal": "*"}))
    assert decide(SAME_KEY, key_policy, [doc(allow("*"), deny)], action="kms:Encrypt")


def test_not_principal_deny_applies_to_everyone_else():
    deny_others = {"Effect": "Deny", "NotPrincipal": {"AWS": f"arn:aws:iam::{ROLE_ACCOUNT}:role/other"}, "Action": "kms:*", "Resource": "*"}
    assert not decide(SAME_KEY, doc(root_delegation(ROLE_ACCOUNT), deny_others), [doc(allow("*"))])


def test_permissions_boundary_must_allow():
    key_policy = doc(root_delegation(ROLE_ACCOUNT))
    identity = [doc(allow("*"))]
    assert not decide(SAME_KEY, key_policy, identity, boundary=("b", doc(allow("*", actions=("kms:Encrypt",)))))
    assert decide(SAME_KEY, key_policy, identity, boundary=("b", doc(allow("*", actions=("kms:*",)))))


# -- other account -----------------------------------------------------------------------------------


def test_cross_account_needs_key_policy_and_identity_policy():
    identity = [doc(allow(OTHER_KEY))]
    assert not decide(OTHER_KEY, doc(root_delegation(KEY_ACCOUNT)), identity)
    names_role = doc(root_delegation(KEY_ACCOUNT), allow("*", Principal={"AWS": ROLE.arn}))
    assert decide(OTHER_KEY, names_role, identity)
    assert not decide(OTHER_KEY, names_role, [])
    names_account = doc(root_delegation(KEY_ACCOUNT), allow("*", Principal={"AWS": f"arn:aws:iam::{ROLE_ACCOUNT}:root"}))
    assert decide(OTHER_KEY, names_account, identity)


def test_cross_account_star_principal_still_needs_identity_policy():
    key_policy = doc(allow("*", Principal="*"))
    assert not decide(OTHER_KEY, key_policy)
    assert decide(OTHER_KEY, key_policy, [doc(allow("*"))])


# -- conditions --------------------------------------------------------------------------------------


def test_source_ip_conditions():
    key_policy = doc(root_delegation(ROLE_ACCOUNT))
    ip_allow = doc(allow("*", Condition={"IpAddress": {"aws:SourceIp": ["198.51.100.0/24"]}}))
    assert decide(SAME_KEY, key_policy, [ip_allow])
    assert not decide(SAME_KEY, key_policy, [ip_allow], context=CTX.with_values(aws__SourceIp="203.0.113.9"))
    deny_outside = {"Effect": "Deny", "Action": "kms:*", "Resource": "*", "Condition": {"NotIpAddress": {"aws:SourceIp": "198.51.100.10/32"}}}
    assert decide(SAME_KEY, key_policy, [doc(allow("*"), deny_outside)])
    assert not decide(SAME_KEY, key_policy, [doc(allow("*"), deny_outside)], context=CTX.with_values(aws__SourceIp="198.51.100.11"))


def test_unknown_condition_key_makes_the_statement_not_apply():
    holds, notes = conditions_hold({"StringEquals": {"aws:PrincipalOrgID": "o-123"}}, CTX)
    assert not holds
    assert "unknown" in notes[0]
    key_policy = doc(root_delegation(ROLE_ACCOUNT))
    assert not decide(SAME_KEY, key_policy, [doc(allow("*", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-123"}}))])


def test_absent_keys_follow_aws_rules():
    # kms:ViaService is absent for Atlas's direct calls: positive operators fail, negated ones hold.
    assert not conditions_hold({"StringEquals": {"kms:ViaService": "s3.eu-west-2.amazonaws.com"}}, CTX)[0]
    assert conditions_hold({"StringNotEquals": {"kms:ViaService": "s3.eu-west-2.amazonaws.com"}}, CTX)[0]
    assert conditions_hold({"StringEqualsIfExists": {"kms:ViaService": "x"}}, CTX)[0]
    assert conditions_hold({"Null": {"aws:SourceVpce": "true"}}, CTX)[0]
    assert not conditions_hold({"Null": {"aws:SourceIp": "true"}}, CTX)[0]


def test_string_and_arn_operators():
    assert conditions_hold({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/atlas-*"}}, CTX)[0]
    assert conditions_hold({"ArnEquals": {"aws:PrincipalArn": ROLE.arn}}, CTX)[0]
    assert not conditions_hold({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}, CTX)[0]
    assert conditions_hold({"StringEqualsIgnoreCase": {"aws:PrincipalArn": ROLE.arn.upper()}}, CTX)[0]
    assert not conditions_hold({"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}, CTX)[0]


def test_evaluate_prefers_direct_grants():
    key_policy = doc(allow("*", Principal={"AWS": ROLE_ACCOUNT}), allow("*", Principal={"AWS": ROLE.arn}))
    assert evaluate(key_policy, "kms:Decrypt", SAME_KEY, CTX, principal=ROLE, resource_policy=True).via == "direct"


# -- trust policy ------------------------------------------------------------------------------------


def trust(principal, operator="StringEquals", external_id=EXTERNAL_ID, extra=None):
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    condition = dict(extra or {})
    if external_id is not None:
        condition.setdefault(operator, {})["sts:ExternalId"] = external_id
    if condition:
        statement["Condition"] = condition
    return doc(statement)


def problems(trust_doc, ips=("198.51.100.10",)):
    return trust_problems(trust_doc, ATLAS, EXTERNAL_ID, ips, "9a1b0d8e-0000-4000-8000-000000000000")


@pytest.mark.parametrize("principal", [f"arn:aws:iam::{ATLAS}:root", ATLAS, "*"])
def test_trust_accepts_atlas_account_with_external_id(principal):
    assert problems(trust(principal)) == []
    assert problems(trust(principal, operator="StringLike")) == []


def test_trust_refuses_wrong_account_wrong_id_and_missing_condition():
    assert problems(trust("arn:aws:iam::999999999999:root"))
    assert problems(trust(f"arn:aws:iam::{ATLAS}:root", external_id="00000000-0000-0000-0000-000000000000"))
    missing = problems(trust(f"arn:aws:iam::{ATLAS}:root", external_id=None))
    assert any("without any sts:ExternalId" in p for p in missing)
    # A pattern matching any external ID is as open as no condition at all.
    assert problems(trust(f"arn:aws:iam::{ATLAS}:root", operator="StringLike", external_id="*"))


def test_trust_source_ip_condition_must_admit_every_egress_address():
    limited = trust(f"arn:aws:iam::{ATLAS}:root", extra={"IpAddress": {"aws:SourceIp": "198.51.100.10/32"}})
    assert problems(limited, ips=("198.51.100.10",)) == []
    assert problems(limited, ips=("198.51.100.10", "198.51.100.11"))


def test_trust_explicit_deny_wins():
    document = trust(f"arn:aws:iam::{ATLAS}:root")
    document["Statement"].append({"Effect": "Deny", "Principal": "*", "Action": "sts:*"})
    assert problems(document)
