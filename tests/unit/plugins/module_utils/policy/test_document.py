import copy
import json
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.cmk.atlas.plugins.module_utils.policy import document as policy
from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import PolicyError

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
ATLAS_ARN = "arn:aws:iam::536727724300:root"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/atlas-kms"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN_2 = f"arn:aws:kms:eu-west-1:{OTHER_ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"


def doc(*statements, version="2012-10-17"):
    result = {"Statement": list(statements)}
    if version is not None:
        result["Version"] = version
    return result


def allow(sid=None, **fields):
    statement = {"Effect": "Allow"}
    if sid is not None:
        statement["Sid"] = sid
    statement.update(fields)
    return statement


# -- normalisation rules, one example each -------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(
            doc(allow("A", Action="s3:GetObject", Resource="*"), allow("B", Action="kms:Decrypt", Resource="*")),
            doc(allow("B", Action="kms:Decrypt", Resource="*"), allow("A", Action="s3:GetObject", Resource="*")),
            id="statement order",
        ),
        pytest.param(doc(allow("A", Action=["kms:Decrypt"], Resource=["*"])), doc(allow("A", Action="kms:Decrypt", Resource="*")), id="one-item list"),
        pytest.param(
            doc(allow("A", Action="kms:Decrypt", Resource="*")),
            {"Version": "2012-10-17", "Statement": allow("A", Action="kms:Decrypt", Resource="*")},
            id="lone statement object",
        ),
        pytest.param(
            doc(allow("A", Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, Action="kms:*", Resource="*")),
            doc(allow("A", Principal={"AWS": ACCOUNT}, Action="kms:*", Resource="*")),
            id="root arn is account id",
        ),
        pytest.param(
            doc(allow("A", Principal={"AWS": f"arn:aws-cn:iam::{ACCOUNT}:root"}, Action="kms:*", Resource="*")),
            doc(allow("A", Principal={"AWS": [ACCOUNT]}, Action="kms:*", Resource="*")),
            id="root arn in another partition",
        ),
        pytest.param(
            doc(allow("A", Principal="*", Action="sts:AssumeRole")), doc(allow("A", Principal={"AWS": "*"}, Action="sts:AssumeRole")), id="star principal"
        ),
        pytest.param(doc(allow("A", Action="kms:Decrypt"), version=None), doc(allow("A", Action="kms:Decrypt"), version="2008-10-17"), id="missing version"),
        pytest.param(doc(allow("A", Action=["kms:decrypt", "KMS:DescribeKey"])), doc(allow("A", Action=["kms:DescribeKey", "kms:Decrypt"])), id="action case"),
        pytest.param(
            doc(allow("A", Action="sts:AssumeRole", Condition={"stringequals": {"STS:EXTERNALID": "abc"}})),
            doc(allow("A", Action="sts:AssumeRole", Condition={"StringEquals": {"sts:ExternalId": "abc"}})),
            id="condition operator and key case",
        ),
        pytest.param(
            doc(allow("A", Action="kms:Decrypt", Condition={"ForAnyValue:stringlikeifexists": {"aws:PrincipalTag/Team": "x"}})),
            doc(allow("A", Action="kms:Decrypt", Condition={"ForAnyValue:StringLikeIfExists": {"aws:principaltag/team": "x"}})),
            id="operator prefix and suffix, unknown key",
        ),
        pytest.param(
            doc(allow("A", Action="kms:Decrypt", Condition={"Bool": {"aws:SecureTransport": True}, "NumericLessThan": {"aws:MultiFactorAuthAge": 3600}})),
            doc(allow("A", Action="kms:Decrypt", Condition={"Bool": {"aws:SecureTransport": "true"}, "NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}})),
            id="bool and int values as strings",
        ),
        pytest.param(
            doc(allow("A", Action=["kms:Decrypt", "kms:Decrypt", "kms:decrypt"], Resource=[KEY_ARN, KEY_ARN])),
            doc(allow("A", Action="kms:Decrypt", Resource=KEY_ARN)),
            id="duplicates collapse",
        ),
        pytest.param(
            doc(allow("A", Principal={"AWS": [ROLE_ARN, ACCOUNT]}, Action="kms:Decrypt", Resource=[KEY_ARN_2, KEY_ARN])),
            doc(allow("A", Principal={"AWS": [f"arn:aws:iam::{ACCOUNT}:root", ROLE_ARN]}, Action="kms:Decrypt", Resource=[KEY_ARN, KEY_ARN_2])),
            id="list order",
        ),
        pytest.param(doc(allow("A", Action="kms:Decrypt"), allow("A", Action="kms:Decrypt")), doc(allow("A", Action="kms:Decrypt")), id="duplicate statements"),
    ],
)
def test_equal_documents(a, b):
    assert policies_equal_both_ways(a, b)
    assert json.loads(json.dumps(policy.normalize_policy(a))) == policy.normalize_policy(b)


def policies_equal_both_ways(first, second):
    return policy.policies_equal(first, second) and policy.policies_equal(second, first)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(
            doc(allow("A", Principal={"AWS": ROLE_ARN}, Action="kms:Decrypt")),
            doc(allow("A", Principal={"AWS": "AROAEXAMPLEUNIQUEID12"}, Action="kms:Decrypt")),
            id="unique id of a deleted role is not the role",
        ),
        pytest.param(doc(allow("A", Action="kms:Decrypt")), doc(allow("B", Action="kms:Decrypt")), id="sid"),
        pytest.param(doc(allow("A", Action="kms:Decrypt")), doc({"Sid": "A", "Effect": "Deny", "Action": "kms:Decrypt"}), id="effect"),
        pytest.param(doc(allow("A", Action="kms:Decrypt")), doc(allow("A", Action="kms:Encrypt")), id="action"),
        pytest.param(doc(allow("A", Action="kms:Decrypt")), doc(allow("A", NotAction="kms:Decrypt")), id="not action"),
        pytest.param(
            doc(allow("A", Action="kms:Decrypt", Resource=KEY_ARN)), doc(allow("A", Action="kms:Decrypt", Resource=KEY_ARN.upper())), id="resource case"
        ),
        pytest.param(
            doc(allow("A", Action="sts:AssumeRole", Condition={"StringEquals": {"sts:ExternalId": "abc"}})),
            doc(allow("A", Action="sts:AssumeRole", Condition={"StringEquals": {"sts:ExternalId": "ABC"}})),
            id="condition value case",
        ),
        pytest.param(
            doc(allow("A", Action="sts:AssumeRole", Condition={"StringEquals": {"sts:ExternalId": "abc"}})),
            doc(allow("A", Action="sts:AssumeRole", Condition={"StringLike": {"sts:ExternalId": "abc"}})),
            id="condition operator",
        ),
        pytest.param(
            doc(allow("A", Action="kms:Decrypt"), version="2012-10-17"), doc(allow("A", Action="kms:Decrypt"), version=None), id="explicit newer version"
        ),
        pytest.param(
            doc(allow("A", Principal={"AWS": ACCOUNT}, Action="kms:*")), doc(allow("A", Principal={"AWS": OTHER_ACCOUNT}, Action="kms:*")), id="account"
        ),
        pytest.param(doc(allow("A", Principal={"AWS": "*"}, Action="kms:*")), doc(allow("A", Principal={"Service": "*"}, Action="kms:*")), id="principal kind"),
        pytest.param(doc(allow("A", Action="kms:Decrypt")), doc(allow("A", Action="kms:Decrypt"), allow("B", Action="kms:Decrypt")), id="extra statement"),
        pytest.param(doc(allow("A", Action="kms:Decrypt")), None, id="no document"),
    ],
)
def test_different_documents(a, b):
    first, second = a, b
    assert not policy.policies_equal(first, second)
    assert not policy.policies_equal(second, first)


def test_normalized_form_is_readable_and_stable():
    given_doc = {
        "Statement": [
            {
                "Resource": "*",
                "Action": ["kms:Encrypt", "kms:Decrypt"],
                "Effect": "Allow",
                "Principal": {"AWS": [ROLE_ARN, f"arn:aws:iam::{ACCOUNT}:root"]},
                "Sid": "Z",
            },
            {"Sid": "A", "Effect": "Allow", "Action": "kms:*", "Resource": "*", "Principal": "*"},
        ]
    }
    normalized = policy.normalize_policy(given_doc)
    assert normalized == {
        "Version": "2008-10-17",
        "Statement": [
            {"Sid": "A", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Z", "Effect": "Allow", "Principal": {"AWS": [ACCOUNT, ROLE_ARN]}, "Action": ["kms:Decrypt", "kms:Encrypt"], "Resource": "*"},
        ],
    }
    assert list(normalized) == ["Version", "Statement"]
    assert [list(statement) for statement in normalized["Statement"]] == [["Sid", "Effect", "Principal", "Action", "Resource"]] * 2
    assert policy.normalize_policy(normalized) == normalized


def test_policy_accepted_as_json_and_url_encoded_json():
    trust = policy.build_atlas_trust_policy(ATLAS_ARN, "ext-id-1")
    text = json.dumps(trust)
    assert policy.policies_equal(text, trust)
    assert policy.policies_equal(quote(text), trust)
    assert policy.policies_equal(text.encode("utf-8"), trust)
    assert policy.load_policy("") is None
    assert policy.normalize_policy(None) is None


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("{not json", "is not valid JSON; expected a policy document"),
        ("[1, 2]", "must be a JSON object with a Statement list, not list"),
        (42, "must be a JSON object with a Statement list, not int"),
        ({"Statement": "nope"}, "Statement must be an object or a list of objects"),
        ({"Statement": [1]}, "Statement must be an object or a list of objects"),
    ],
)
def test_invalid_documents(value, match):
    with pytest.raises(PolicyError, match=match):
        policy.normalize_policy(value)


def test_load_policy_copies():
    original = doc(allow("A", Action=["kms:Decrypt"]))
    loaded = policy.load_policy(original)
    loaded["Statement"][0]["Action"].append("kms:Encrypt")
    assert original == doc(allow("A", Action=["kms:Decrypt"]))


# -- editing by Sid, examples ----------------------------------------------------------------


def test_upsert_appends_replaces_and_keeps_others():
    admin = {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}
    ours = policy.build_key_policy_statement("AtlasKms", ROLE_ARN)
    start = {"Version": "2012-10-17", "Id": "key-default-1", "Statement": [admin]}

    added, changed = policy.upsert_statement(start, ours)
    assert changed
    assert added == {"Version": "2012-10-17", "Id": "key-default-1", "Statement": [admin, ours]}
    assert start == {"Version": "2012-10-17", "Id": "key-default-1", "Statement": [admin]}  # input untouched

    same, changed = policy.upsert_statement(added, dict(ours, Action=[a.upper() for a in ours["Action"]]))
    assert not changed
    assert same == added  # an equal statement is not rewritten, even with different spelling

    narrower = policy.build_key_policy_statement("AtlasKms", ROLE_ARN, source_ips=["203.0.113.7"])
    replaced, changed = policy.upsert_statement(json.dumps(added), narrower)
    assert changed
    assert replaced["Statement"] == [admin, narrower]


def test_upsert_drops_duplicate_sids_and_starts_empty_documents():
    ours = allow("X", Action="kms:Decrypt", Resource="*")
    other = allow("Y", Action="kms:Encrypt", Resource="*")
    result, changed = policy.upsert_statement(doc(allow("X", Action="kms:Encrypt"), other, allow("X", Action="kms:Decrypt", Resource="*")), ours)
    assert changed
    assert result["Statement"] == [ours, other]

    created, changed = policy.upsert_statement(None, ours)
    assert changed
    assert created == {"Version": "2012-10-17", "Statement": [ours]}


def test_remove_statement():
    other = allow("Y", Action="kms:Encrypt", Resource="*")
    result, changed = policy.remove_statement(doc(allow("X", Action="kms:Decrypt"), other, allow("X", Action="kms:Encrypt")), "X")
    assert changed
    assert result["Statement"] == [other]
    unchanged, changed = policy.remove_statement(result, "X")
    assert not changed
    assert unchanged == result
    assert policy.remove_statement(None, "X") == (None, False)


@pytest.mark.parametrize("statement", [allow(Action="kms:Decrypt"), allow("", Action="kms:Decrypt"), "not a statement"])
def test_upsert_requires_a_sid(statement):
    with pytest.raises(PolicyError, match="must be"):
        policy.upsert_statement(doc(), statement)


def test_get_statement():
    ours = allow("X", Action="kms:Decrypt")
    assert policy.get_statement(doc(allow("Y", Action="kms:Encrypt"), ours), "X") == ours
    assert policy.get_statement(doc(ours), "Z") is None
    assert policy.get_statement(None, "X") is None


# -- property tests --------------------------------------------------------------------------

SIDS = ["S1", "S2", "S3", "Enable IAM User Permissions"]
ACTIONS = ["kms:Decrypt", "kms:Encrypt", "kms:DescribeKey", "kms:*", "kms:PutKeyPolicy", "sts:AssumeRole", "*"]
RESOURCES = ["*", KEY_ARN, KEY_ARN_2]
AWS_PRINCIPALS = [ACCOUNT, OTHER_ACCOUNT, ROLE_ARN, "*", f"arn:aws:iam::{OTHER_ACCOUNT}:role/service/admin"]
CONDITION_VALUES = ["abc", "203.0.113.0/24", "true", "Team-A"]


def one_or_many(elements):
    return st.one_of(elements, st.lists(elements, min_size=1, max_size=3))


conditions = st.dictionaries(
    st.sampled_from(["StringEquals", "StringLike", "IpAddress", "Bool"]),
    st.dictionaries(
        st.sampled_from(["sts:ExternalId", "aws:SourceIp", "aws:SecureTransport", "aws:PrincipalTag/Team"]),
        one_or_many(st.sampled_from(CONDITION_VALUES)),
        min_size=1,
        max_size=2,
    ),
    min_size=1,
    max_size=2,
)


@st.composite
def statements(draw, sid=None):
    statement = {"Effect": draw(st.sampled_from(["Allow", "Deny"]))}
    chosen_sid = sid if sid is not None else draw(st.one_of(st.none(), st.sampled_from(SIDS)))
    if chosen_sid is not None:
        statement["Sid"] = chosen_sid
    if draw(st.booleans()):
        statement["Principal"] = draw(st.one_of(st.just("*"), st.fixed_dictionaries({"AWS": one_or_many(st.sampled_from(AWS_PRINCIPALS))})))
    statement[draw(st.sampled_from(["Action", "NotAction"]))] = draw(one_or_many(st.sampled_from(ACTIONS)))
    statement["Resource"] = draw(one_or_many(st.sampled_from(RESOURCES)))
    if draw(st.booleans()):
        statement["Condition"] = draw(conditions)
    return statement


documents = st.builds(
    lambda statement_list, version: doc(*statement_list, version=version),
    st.lists(statements(), max_size=5),
    st.sampled_from([None, "2008-10-17", "2012-10-17"]),
)


def _respell(data, values, respell_one):
    """An equal spelling of a scalar-or-list value: shuffled, duplicated, scalar <-> one-item list, each item respelled."""
    items = [respell_one(item) for item in (values if isinstance(values, list) else [values])]
    items = data.draw(st.permutations(items))
    if data.draw(st.booleans()):
        items = [*items, items[0]]
    if len(set(items)) == 1 and data.draw(st.booleans()):
        return items[0]
    return list(items)


def _flip_case(data):
    return lambda text: data.draw(st.sampled_from([text, text.lower(), text.upper()]))


def _respell_account(data, value):
    if value.isdigit():
        return data.draw(st.sampled_from([value, f"arn:aws:iam::{value}:root"]))
    return value


def _respell_principal(data, value):
    if value == "*" or value.get("AWS") in ("*", ["*"]):
        return data.draw(st.sampled_from(["*", {"AWS": "*"}, {"AWS": ["*"]}]))
    return {"AWS": _respell(data, value["AWS"], lambda item: _respell_account(data, item))}


def equivalent_statement(data, statement):
    result = {}
    for key in data.draw(st.permutations(list(statement))):
        value = statement[key]
        if key == "Principal":
            result[key] = _respell_principal(data, value)
        elif key in ("Action", "NotAction"):
            result[key] = _respell(data, value, _flip_case(data))
        elif key == "Resource":
            result[key] = _respell(data, value, lambda item: item)
        elif key == "Condition":
            result[key] = {
                _flip_case(data)(operator): {_flip_case(data)(name): _respell(data, values, lambda item: item) for name, values in clauses.items()}
                for operator, clauses in value.items()
            }
        else:
            result[key] = value
    return result


@settings(max_examples=60, deadline=None)
@given(documents, st.data())
def test_compare_ignores_order_and_spelling(document, data):
    statement_list = [equivalent_statement(data, statement) for statement in document["Statement"]]
    respelled = dict(document, Statement=data.draw(st.permutations(statement_list)))
    assert policy.policies_equal(document, respelled)
    assert policy.policies_equal(json.dumps(respelled), document)
    normalized = policy.normalize_policy(document)
    assert policy.normalize_policy(normalized) == normalized
    assert json.loads(json.dumps(normalized)) == normalized


@settings(max_examples=60, deadline=None)
@given(documents, st.data())
def test_upsert_is_idempotent(document, data):
    statement = data.draw(statements(sid=data.draw(st.sampled_from(SIDS))))
    once, _changed = policy.upsert_statement(document, statement)
    twice, changed = policy.upsert_statement(once, statement)
    assert not changed
    assert twice == once
    assert policy.statements_equal(policy.get_statement(once, statement["Sid"]), statement)
    # An equivalent spelling of the same statement is no change either.
    again, changed = policy.upsert_statement(once, equivalent_statement(data, statement))
    assert not changed
    assert again == once


@settings(max_examples=60, deadline=None)
@given(documents, st.data())
def test_remove_undoes_upsert(document, data):
    sid = data.draw(st.sampled_from(SIDS))
    without = dict(document, Statement=[s for s in document["Statement"] if s.get("Sid") != sid])
    statement = data.draw(statements(sid=sid))
    added, changed = policy.upsert_statement(without, statement)
    assert changed
    removed, changed = policy.remove_statement(added, sid)
    assert changed
    assert removed == without


@settings(max_examples=60, deadline=None)
@given(documents, st.data())
def test_other_statements_are_never_touched(document, data):
    original = copy.deepcopy(document)
    sid = data.draw(st.sampled_from(SIDS))
    statement = data.draw(statements(sid=sid))

    def others(d):
        return [s for s in d["Statement"] if s.get("Sid") != sid]

    upserted, _changed = policy.upsert_statement(document, statement)
    removed, _changed = policy.remove_statement(document, sid)
    assert others(upserted) == others(original)
    assert others(removed) == others(original)
    assert {k: v for k, v in upserted.items() if k != "Statement"} == {k: v for k, v in original.items() if k != "Statement"}
    assert document == original


# -- builders --------------------------------------------------------------------------------


def test_build_atlas_trust_policy():
    trust = policy.build_atlas_trust_policy(ATLAS_ARN, "a1b2c3d4-ext")
    assert trust == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": policy.ATLAS_TRUST_SID,
                "Effect": "Allow",
                "Principal": {"AWS": ATLAS_ARN},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": "a1b2c3d4-ext"}},
            }
        ],
    }


@pytest.mark.parametrize(
    ("account_arn", "external_id", "match"),
    [
        (ATLAS_ARN, "", "external_id is required"),
        (ATLAS_ARN, None, "external_id is required"),
        (ATLAS_ARN, "has space", "is not a valid sts:ExternalId"),
        ("536727724300", "ext-1", "is not an IAM principal ARN; expected the atlasAWSAccountArn"),
        ("arn:aws:iam::5367:root", "ext-1", "atlas_aws_account_arn .* is not an IAM principal"),
        ("arn:aws:s3:::bucket", "ext-1", "atlas_aws_account_arn .* is not an IAM principal"),
        (None, "ext-1", "is not an IAM principal ARN"),
    ],
)
def test_build_atlas_trust_policy_refuses(account_arn, external_id, match):
    with pytest.raises(PolicyError, match=match):
        policy.build_atlas_trust_policy(account_arn, external_id)


def test_build_kms_access_policy():
    built = policy.build_kms_access_policy([KEY_ARN_2, KEY_ARN, KEY_ARN])
    assert built == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": policy.KMS_ACCESS_SID, "Effect": "Allow", "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt"], "Resource": [KEY_ARN_2, KEY_ARN]}
        ],
    }
    assert policy.build_kms_access_policy(KEY_ARN)["Statement"][0]["Resource"] == KEY_ARN


def test_build_kms_access_policy_with_source_ips():
    built = policy.build_kms_access_policy(KEY_ARN, source_ips=["10.0.0.1", "9.0.0.0/8", " 10.0.0.1/32", "2001:db8::/32", "192.0.2.7"])
    assert built["Statement"][0]["Condition"] == {"IpAddress": {"aws:SourceIp": ["9.0.0.0/8", "10.0.0.1/32", "192.0.2.7/32", "2001:db8::/32"]}}
    single = policy.build_kms_access_policy(KEY_ARN, source_ips="203.0.113.5")
    assert single["Statement"][0]["Condition"] == {"IpAddress": {"aws:SourceIp": "203.0.113.5/32"}}


@pytest.mark.parametrize(
    ("key_arns", "source_ips", "match"),
    [
        ([], None, "key_arns must name at least one KMS key ARN"),
        (["alias/atlas"], None, "key_arns entry 'alias/atlas' is not a KMS key ARN; expected arn:aws:kms:"),
        (["1234abcd-12ab-34cd-56ef-1234567890ab"], None, "is not a KMS key ARN"),
        ([KEY_ARN], [], "source_ips must be a non-empty list"),
        ([KEY_ARN], ["10.0.0.1/8"], r"source_ips entry '10.0.0.1/8' is not an IP address or CIDR block .*; did you mean 10.0.0.0/8\?"),
        ([KEY_ARN], ["300.1.1.1"], "source_ips entry '300.1.1.1' is not an IP address or CIDR block such as 203.0.113.5"),
        ([KEY_ARN], [16909060], "source_ips entry 16909060 is not an IP address"),
    ],
)
def test_build_kms_access_policy_refuses(key_arns, source_ips, match):
    with pytest.raises(PolicyError, match=match):
        policy.build_kms_access_policy(key_arns, source_ips=source_ips)


def test_build_key_policy_statement():
    statement = policy.build_key_policy_statement("AtlasKms", [ROLE_ARN, OTHER_ACCOUNT, ROLE_ARN], source_ips=["198.51.100.0/24"])
    assert statement == {
        "Sid": "AtlasKms",
        "Effect": "Allow",
        "Principal": {"AWS": [ROLE_ARN, f"arn:aws:iam::{OTHER_ACCOUNT}:root"]},
        "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt"],
        "Resource": "*",
        "Condition": {"IpAddress": {"aws:SourceIp": "198.51.100.0/24"}},
    }
    assert policy.build_key_policy_statement("S", ROLE_ARN)["Principal"] == {"AWS": ROLE_ARN}
    assert policy.build_key_policy_statement("S", ACCOUNT, partition="aws-cn")["Principal"] == {"AWS": f"arn:aws-cn:iam::{ACCOUNT}:root"}


@pytest.mark.parametrize(
    ("sid", "principals", "match"),
    [
        ("", [ROLE_ARN], "sid must be a non-empty string"),
        ("S", [], "principals must name at least one"),
        ("S", ["role/atlas"], "principal 'role/atlas' is not an IAM principal"),
        ("S", ["*"], "is not an IAM principal"),
    ],
)
def test_build_key_policy_statement_refuses(sid, principals, match):
    with pytest.raises(PolicyError, match=match):
        policy.build_key_policy_statement(sid, principals)


# -- analysis --------------------------------------------------------------------------------

ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/key-admin"
ROOT_ADMIN = allow("Enable IAM User Permissions", Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, Action="kms:*", Resource="*")
ATLAS_USE = policy.build_key_policy_statement("AtlasKms", ROLE_ARN)


@pytest.mark.parametrize(
    ("statement_list", "expected"),
    [
        pytest.param([ROOT_ADMIN, ATLAS_USE], [ACCOUNT], id="console default delegates to the account"),
        pytest.param([ATLAS_USE], [], id="only use permissions: locked out"),
        pytest.param([allow("A", Principal={"AWS": ADMIN_ROLE}, Action=["kms:Create*", "kms:Put*"], Resource="*")], [ADMIN_ROLE], id="kms:Put*"),
        pytest.param([allow("A", Principal={"AWS": ADMIN_ROLE}, Action="KMS:PUTKEYPOLICY", Resource="*")], [ADMIN_ROLE], id="action case"),
        pytest.param([allow("A", Principal={"AWS": ADMIN_ROLE}, Action="*", Resource="*")], [ADMIN_ROLE], id="star action"),
        pytest.param([allow("A", Principal={"AWS": ADMIN_ROLE}, NotAction="kms:Decrypt", Resource="*")], [ADMIN_ROLE], id="NotAction not covering it"),
        pytest.param([allow("A", Principal={"AWS": ADMIN_ROLE}, NotAction="kms:Put*", Resource="*")], [], id="NotAction covering it"),
        pytest.param(
            [allow("A", Principal="*", Action="kms:*", Resource="*", Condition={"StringEquals": {"kms:CallerAccount": ACCOUNT}})],
            ["*"],
            id="conditional grant counts",
        ),
        pytest.param([ROOT_ADMIN, {"Sid": "D", "Effect": "Deny", "Principal": "*", "Action": "kms:PutKeyPolicy", "Resource": "*"}], [], id="deny everyone"),
        pytest.param(
            [
                ROOT_ADMIN,
                {
                    "Sid": "D",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "kms:PutKeyPolicy",
                    "Resource": "*",
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
            [ACCOUNT],
            id="conditional deny does not lock out",
        ),
        pytest.param(
            [
                allow("A", Principal={"AWS": [ADMIN_ROLE, f"arn:aws:iam::{OTHER_ACCOUNT}:role/x"]}, Action="kms:*", Resource="*"),
                {"Sid": "D", "Effect": "Deny", "Principal": {"AWS": ACCOUNT}, "Action": "kms:*", "Resource": "*"},
            ],
            [f"arn:aws:iam::{OTHER_ACCOUNT}:role/x"],
            id="deny of an account covers its roles",
        ),
        pytest.param(
            [
                allow("A", Principal={"AWS": [ADMIN_ROLE, ROLE_ARN]}, Action="kms:*", Resource="*"),
                {"Sid": "D", "Effect": "Deny", "NotPrincipal": {"AWS": ADMIN_ROLE}, "Action": "kms:*", "Resource": "*"},
            ],
            [ADMIN_ROLE],
            id="deny NotPrincipal",
        ),
        pytest.param(
            [{"Sid": "A", "Effect": "Allow", "NotPrincipal": {"AWS": ADMIN_ROLE}, "Action": "kms:*", "Resource": "*"}],
            [],
            id="allow NotPrincipal is not a grant",
        ),
    ],
)
def test_principals_able_to_manage_key(statement_list, expected):
    assert policy.principals_able_to_manage_key(doc(*statement_list)) == expected


def test_principals_able_to_manage_key_without_policy():
    assert policy.principals_able_to_manage_key(None) == []


TRUST = policy.build_atlas_trust_policy(ATLAS_ARN, "ext-1")


@pytest.mark.parametrize(
    ("document", "principal", "external_id", "allowed"),
    [
        pytest.param(TRUST, ATLAS_ARN, "ext-1", True, id="built policy"),
        pytest.param(TRUST, "536727724300", "ext-1", True, id="account id form"),
        pytest.param(TRUST, ATLAS_ARN, "ext-2", False, id="other external id"),
        pytest.param(TRUST, ATLAS_ARN, "", False, id="no external id"),
        pytest.param(TRUST, "arn:aws:iam::111111111111:root", "ext-1", False, id="other principal"),
        pytest.param(json.dumps(TRUST), ATLAS_ARN, "ext-1", True, id="json text"),
        pytest.param(doc(allow("A", Principal={"AWS": ATLAS_ARN}, Action="sts:AssumeRole")), ATLAS_ARN, "ext-1", False, id="no external id condition"),
        pytest.param(
            doc(allow("A", Principal={"AWS": "536727724300"}, Action=["sts:assumerole"], Condition={"stringequals": {"STS:ExternalId": ["x", "ext-1"]}})),
            ATLAS_ARN,
            "ext-1",
            True,
            id="other spellings",
        ),
        pytest.param(
            doc(allow("A", Principal="*", Action="sts:AssumeRole", Condition={"StringEquals": {"sts:ExternalId": "ext-1"}})),
            ATLAS_ARN,
            "ext-1",
            True,
            id="star principal",
        ),
        pytest.param(
            doc(allow("A", Principal={"AWS": ATLAS_ARN}, Action="sts:*", Condition={"StringLike": {"sts:ExternalId": "ext-*"}})),
            ATLAS_ARN,
            "ext-1",
            True,
            id="StringLike",
        ),
        pytest.param(
            doc(allow("A", Principal={"AWS": ATLAS_ARN}, Action="sts:*", Condition={"StringLike": {"sts:ExternalId": "EXT-*"}})),
            ATLAS_ARN,
            "ext-1",
            False,
            id="StringLike is case-sensitive",
        ),
        pytest.param(
            doc(allow("A", Principal={"AWS": ATLAS_ARN}, Action="sts:TagSession", Condition={"StringEquals": {"sts:ExternalId": "ext-1"}})),
            ATLAS_ARN,
            "ext-1",
            False,
            id="other action",
        ),
        pytest.param(
            doc(TRUST["Statement"][0], {"Sid": "D", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}),
            ATLAS_ARN,
            "ext-1",
            False,
            id="deny wins",
        ),
        pytest.param(
            doc(allow("A", Principal={"AWS": "AROAEXAMPLEUNIQUEID12"}, Action="sts:AssumeRole", Condition={"StringEquals": {"sts:ExternalId": "ext-1"}})),
            "arn:aws:iam::536727724300:role/atlas",
            "ext-1",
            False,
            id="unique id of a deleted role",
        ),
        pytest.param(None, ATLAS_ARN, "ext-1", False, id="no policy"),
    ],
)
def test_trust_policy_allows(document, principal, external_id, allowed):
    assert policy.trust_policy_allows(document, principal, external_id) is allowed


def test_policy_json_is_compact_and_round_trips():
    text = policy.policy_json(TRUST)
    assert " " not in text.replace("sts:AssumeRole", "")
    assert json.loads(text) == TRUST


@pytest.mark.parametrize(
    ("operator", "canonical"),
    [
        ("stringequals", "StringEquals"),
        ("forallvalues:stringlike", "ForAllValues:StringLike"),
        ("ipaddressifexists", "IpAddressIfExists"),
        ("MadeUpOperator", "madeupoperator"),
    ],
)
def test_canonical_condition_operator(operator, canonical):
    assert policy.canonical_condition_operator(operator) == canonical


def test_normalized_actions_use_the_usual_spelling_where_known():
    canonical = policy.normalize_statement({"Effect": "Allow", "Action": ["KMS:describekey", "sts:assumerole", "KMS:SomeFutureAction"]})
    assert canonical["Action"] == ["kms:DescribeKey", "kms:somefutureaction", "sts:AssumeRole"]


# -- condition_source_ips ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(None, [], id="no document"),
        pytest.param({}, [], id="empty document"),
        pytest.param(doc(allow("A", Action="kms:Decrypt", Resource=KEY_ARN)), [], id="no condition"),
        pytest.param(doc(allow("A", Action="kms:Decrypt", Resource="*", Condition=None)), [], id="null condition"),
        pytest.param(
            doc(allow("A", Action="kms:Decrypt", Resource="*", Condition={"IpAddress": {"aws:SourceIp": "203.0.113.5"}})),
            ["203.0.113.5/32"],
            id="one bare address becomes its /32",
        ),
        pytest.param(
            doc(
                allow("A", Action="kms:Decrypt", Resource="*", Condition={"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "198.51.100.10/32", "2001:db8::1"]}})
            ),
            ["198.51.100.10/32", "203.0.113.0/24", "2001:db8::1/128"],
            id="a list, sorted by address, IPv4 first",
        ),
        pytest.param(
            doc(
                allow("A", Action="kms:Decrypt", Resource="*", Condition={"IpAddress": {"aws:SourceIp": ["198.51.100.10", "192.0.2.0/24"]}}),
                allow("B", Action="kms:Encrypt", Resource="*", Condition={"IpAddress": {"aws:SourceIp": "198.51.100.10/32"}}),
            ),
            ["192.0.2.0/24", "198.51.100.10/32"],
            id="every statement, each address once",
        ),
        pytest.param(
            {"Version": "2012-10-17", "Statement": allow("A", Action="kms:Decrypt", Resource="*", Condition={"IpAddress": {"aws:SourceIp": "192.0.2.7"}})},
            ["192.0.2.7/32"],
            id="lone statement object",
        ),
        pytest.param(
            doc(allow("A", Action="kms:Decrypt", Resource="*", Condition={"ipaddress": {"AWS:SourceIP": ["192.0.2.7"]}})),
            ["192.0.2.7/32"],
            id="operator and key in any case",
        ),
        pytest.param(
            doc(
                allow(
                    "A",
                    Action="kms:Decrypt",
                    Resource="*",
                    Condition={
                        "IpAddress": {"aws:SourceIp": "192.0.2.7", "aws:VpcSourceIp": "10.0.0.1"},
                        "StringEquals": {"aws:SourceVpc": "vpc-1234"},
                    },
                )
            ),
            ["192.0.2.7/32"],
            id="other keys and operators beside it",
        ),
        pytest.param(
            doc(
                allow("A", Action="kms:Decrypt", Resource="*", Condition={"NotIpAddress": {"aws:SourceIp": "192.0.2.7"}}),
                allow("B", Action="kms:Decrypt", Resource="*", Condition={"IpAddressIfExists": {"aws:SourceIp": "192.0.2.8"}}),
                allow("C", Action="kms:Decrypt", Resource="*", Condition={"IpAddress": "192.0.2.9"}),
            ),
            [],
            id="only IpAddress conditions count",
        ),
    ],
)
def test_condition_source_ips(document, expected):
    assert policy.condition_source_ips(document) == expected


def test_condition_source_ips_reads_back_what_the_builders_write():
    ips = ["10.0.0.1", "9.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
    expected = ["9.0.0.0/8", "10.0.0.1/32", "192.0.2.7/32", "2001:db8::/32"]
    assert policy.condition_source_ips(policy.build_kms_access_policy(KEY_ARN, source_ips=ips)) == expected
    assert policy.condition_source_ips(doc(policy.build_key_policy_statement("Sid1", [ROLE_ARN], source_ips=ips))) == expected
    assert policy.condition_source_ips(policy.build_kms_access_policy(KEY_ARN, source_ips="203.0.113.5")) == ["203.0.113.5/32"]
    assert policy.condition_source_ips(policy.build_kms_access_policy(KEY_ARN)) == []


def test_condition_source_ips_does_not_change_the_document():
    document = doc(allow("A", Action="kms:Decrypt", Resource="*", Condition={"IpAddress": {"aws:SourceIp": ["203.0.113.5", "192.0.2.0/24"]}}))
    before = copy.deepcopy(document)
    policy.condition_source_ips(document)
    assert document == before


# -- a /0 restricts nothing ------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["0.0.0.0/0", "::/0", " 0.0.0.0/0 ", "10.0.0.0/0", "0:0:0:0:0:0:0:0/0"])
def test_source_ips_refuse_a_block_that_admits_every_address(entry):
    with pytest.raises(PolicyError) as caught:
        policy.normalize_source_ips(["203.0.113.5", entry], "cmk_source_ips")
    message = str(caught.value)
    assert message.startswith(f"cmk_source_ips entry {entry!r} admits every IPv")
    assert "no aws:SourceIp condition is the same as allowing every address" in message
    assert message.endswith("leave cmk_source_ips unset instead")
    assert "did you mean" not in message


def test_source_ips_builders_refuse_a_block_that_admits_every_address():
    with pytest.raises(PolicyError, match=r"source_ips entry '0.0.0.0/0' admits every IPv4 address"):
        policy.build_kms_access_policy(KEY_ARN, source_ips=["0.0.0.0/0"])
    with pytest.raises(PolicyError, match=r"source_ips entry '::/0' admits every IPv6 address"):
        policy.build_key_policy_statement("AtlasKms", [ROLE_ARN], source_ips="::/0")


def test_condition_source_ips_leaves_out_a_block_that_restricts_nothing():
    # A policy written elsewhere may hold one; reading it must not fail, and it restricts no more than no condition.
    condition = {"IpAddress": {"aws:SourceIp": ["0.0.0.0/0", "203.0.113.5", "::/0"]}}
    assert policy.condition_source_ips(doc(allow("A", Action="kms:Decrypt", Resource="*", Condition=condition))) == ["203.0.113.5/32"]
    only_any = {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}
    assert policy.condition_source_ips(doc(allow("A", Action="kms:Decrypt", Resource="*", Condition=only_any))) == []
