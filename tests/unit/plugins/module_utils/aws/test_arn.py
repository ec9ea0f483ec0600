import pytest

from ansible_collections.cmk.atlas.plugins.module_utils.aws import arn
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import ArnError

UUID = "1234abcd-12ab-34cd-56ef-1234567890ab"
MRK = "mrk-1234abcd12ab34cd56ef1234567890ab"
ACCOUNT = "123456789012"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("arn:aws:iam::123456789012:root", ("aws", "iam", "", ACCOUNT, "root")),
        ("arn:aws-cn:kms:cn-north-1:123456789012:key/" + UUID, ("aws-cn", "kms", "cn-north-1", ACCOUNT, "key/" + UUID)),
        ("arn:aws:iam::123456789012:role/a/b:c", ("aws", "iam", "", ACCOUNT, "role/a/b:c")),
    ],
)
def test_parse_arn(value, expected):
    assert tuple(arn.parse_arn(value)) == expected


@pytest.mark.parametrize("value", ["", "arn", "arn:aws:iam", "xrn:aws:iam::1:root", "arn:gcp:iam::123456789012:root", "arn:aws::::x", None, 5])
def test_parse_arn_rejects(value):
    with pytest.raises(ArnError, match=r"^my_opt .* is not an ARN; expected arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE"):
        arn.parse_arn(value, "my_opt")


@pytest.mark.parametrize(
    ("value", "kind", "key_id", "alias", "account", "region", "partition"),
    [
        (UUID, "key_id", UUID, None, None, None, None),
        (MRK, "key_id", MRK, None, None, None, None),
        ("arn:aws:kms:eu-west-1:123456789012:key/" + UUID, "key_arn", UUID, None, ACCOUNT, "eu-west-1", "aws"),
        ("arn:aws:kms:us-east-1:123456789012:key/" + MRK, "key_arn", MRK, None, ACCOUNT, "us-east-1", "aws"),
        ("arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/" + UUID, "key_arn", UUID, None, ACCOUNT, "us-gov-west-1", "aws-us-gov"),
        ("alias/atlas-cmk", "alias_name", None, "alias/atlas-cmk", None, None, None),
        ("alias/team/atlas_cmk-1", "alias_name", None, "alias/team/atlas_cmk-1", None, None, None),
        ("arn:aws:kms:ap-south-1:123456789012:alias/atlas", "alias_arn", None, "alias/atlas", ACCOUNT, "ap-south-1", "aws"),
    ],
)
def test_parse_kms_key_ref(value, kind, key_id, alias, account, region, partition):
    ref = arn.parse_kms_key_ref(value)
    assert (ref.kind, ref.key_id, ref.alias, ref.account, ref.region, ref.partition) == (kind, key_id, alias, account, region, partition)
    assert ref.arn == (value if value.startswith("arn:") else None)


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "",
        UUID.upper(),  # KMS key ids are lower-case hex
        UUID[:-1],
        "mrk-1234",
        "mrk-" + "g" * 32,
        "alias/",
        "alias/bad name",
        "arn:aws:kms:eu-west-1:123456789012:key/abc",
        "arn:aws:kms:eu-west-1:12345:key/" + UUID,
        "arn:aws:kms::123456789012:key/" + UUID,
        "arn:aws:kms:EU-WEST-1:123456789012:key/" + UUID,
        "arn:aws:s3:eu-west-1:123456789012:key/" + UUID,
        "arn:aws:kms:eu-west-1:123456789012:grant/" + UUID,
        None,
        ["alias/x"],
    ],
)
def test_parse_kms_key_ref_rejects_with_help(value):
    with pytest.raises(ArnError) as info:
        arn.parse_kms_key_ref(value, "key_id")
    message = str(info.value)
    assert message.startswith("key_id ")
    for expected in ("key id (UUID", "mrk-", "key ARN", "alias name", "alias ARN"):
        assert expected in message


def test_parse_kms_key_arn_accepts_only_key_arns():
    key_arn = "arn:aws:kms:eu-west-1:123456789012:key/" + UUID
    assert arn.parse_kms_key_arn(key_arn).key_id == UUID
    for value in (UUID, "alias/x", "arn:aws:kms:eu-west-1:123456789012:alias/x", "nonsense"):
        with pytest.raises(ArnError, match=r"^key_arns '.*' is not a KMS key ARN; expected arn:aws:kms:"):
            arn.parse_kms_key_arn(value, "key_arns")


@pytest.mark.parametrize(
    ("value", "managed"),
    [
        ("alias/aws/kms", True),
        ("alias/aws/s3", True),
        ("arn:aws:kms:us-east-1:123456789012:alias/aws/ebs", True),
        ("alias/awsome", False),
        ("alias/my/aws/key", False),
        ("arn:aws:kms:us-east-1:123456789012:alias/mine", False),
        (UUID, False),
        ("arn:aws:kms:us-east-1:123456789012:key/" + UUID, False),
        (None, False),
    ],
)
def test_is_aws_managed_alias(value, managed):
    assert arn.is_aws_managed_alias(value) is managed


@pytest.mark.parametrize(
    ("value", "account", "path", "name", "partition"),
    [
        ("arn:aws:iam::123456789012:role/atlas-kms", ACCOUNT, "/", "atlas-kms", "aws"),
        ("arn:aws:iam::123456789012:role/service/atlas-kms", ACCOUNT, "/service/", "atlas-kms", "aws"),
        ("arn:aws:iam::123456789012:role/a/b/c/Role+=,.@_-1", ACCOUNT, "/a/b/c/", "Role+=,.@_-1", "aws"),
        ("arn:aws-cn:iam::000000000001:role/x", "000000000001", "/", "x", "aws-cn"),
    ],
)
def test_parse_role_arn(value, account, path, name, partition):
    role = arn.parse_role_arn(value)
    assert (role.account, role.path, role.name, role.partition, role.arn) == (account, path, name, partition, value)
    assert arn.build_role_arn(account, name, path, partition) == value


@pytest.mark.parametrize(
    "value",
    [
        "atlas-kms",
        "arn:aws:iam::123456789012:user/atlas",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role/bad name",
        "arn:aws:iam::123456789012:role/" + "r" * 65,
        "arn:aws:iam:us-east-1:123456789012:role/x",
        "arn:aws:iam::1234:role/x",
        "arn:aws:sts::123456789012:assumed-role/x/session",
        "arn:aws:iam::123456789012:role/caf\u00e9",
    ],
)
def test_parse_role_arn_rejects(value):
    with pytest.raises(ArnError, match=r"^assume_role_arn '.*' is not an IAM role ARN; expected arn:aws:iam::ACCOUNT:role/NAME"):
        arn.parse_role_arn(value, "assume_role_arn")


@pytest.mark.parametrize(
    ("value", "valid"),
    [(ACCOUNT, True), ("000000000000", True), ("12345678901", False), ("1234567890123", False), ("12345678901a", False), (123456789012, False), (None, False)],
)
def test_validate_account_id(value, valid):
    assert arn.is_account_id(value) is valid
    if valid:
        assert arn.validate_account_id(value) == value
    else:
        with pytest.raises(ArnError, match=r"^key_account .* is not an AWS account id; expected 12 digits such as 123456789012"):
            arn.validate_account_id(value, "key_account")


@pytest.mark.parametrize(
    ("key_id", "region", "partition", "expected"),
    [
        (UUID, "us-east-1", None, "arn:aws:kms:us-east-1:123456789012:key/" + UUID),
        (MRK, "eu-west-2", None, "arn:aws:kms:eu-west-2:123456789012:key/" + MRK),
        (UUID, "cn-north-1", None, "arn:aws-cn:kms:cn-north-1:123456789012:key/" + UUID),
        (UUID, "us-gov-east-1", None, "arn:aws-us-gov:kms:us-gov-east-1:123456789012:key/" + UUID),
        (UUID, "us-east-1", "aws-iso", "arn:aws-iso:kms:us-east-1:123456789012:key/" + UUID),
    ],
)
def test_build_key_arn_round_trips(key_id, region, partition, expected):
    built = arn.build_key_arn(key_id, ACCOUNT, region, partition)
    assert built == expected
    ref = arn.parse_kms_key_ref(built)
    assert (ref.kind, ref.key_id, ref.account, ref.region) == ("key_arn", key_id, ACCOUNT, region)


@pytest.mark.parametrize(
    ("key_id", "account", "region", "match"),
    [
        ("alias/x", ACCOUNT, "us-east-1", "is not a KMS key id"),
        (UUID, "123", "us-east-1", "is not an AWS account id"),
        (UUID, ACCOUNT, "US_EAST_1", "is not an AWS region name; expected e.g. us-east-1"),
    ],
)
def test_build_key_arn_rejects(key_id, account, region, match):
    with pytest.raises(ArnError, match=match):
        arn.build_key_arn(key_id, account, region)


@pytest.mark.parametrize(
    "value",
    [
        ACCOUNT,
        "arn:aws:iam::123456789012:root",
        "arn:aws:iam::123456789012:role/atlas",
        "arn:aws:iam::123456789012:role/path/atlas",
        "arn:aws:iam::123456789012:user/ops",
        "arn:aws-cn:iam::123456789012:root",
    ],
)
def test_validate_iam_principal_accepts(value):
    assert arn.validate_iam_principal(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "1234",
        "arn:aws:iam::123456789012:group/admins",
        "arn:aws:iam::123456789012:rootx",
        "arn:aws:sts::123456789012:root",
        "AROAEXAMPLEID123456789",
        None,
    ],
)
def test_validate_iam_principal_rejects(value):
    with pytest.raises(ArnError, match=r"^principals .* is not an IAM principal; expected a 12-digit account id or an ARN"):
        arn.validate_iam_principal(value, "principals")


@pytest.mark.parametrize(
    ("region", "valid"), [("us-east-1", True), ("us-gov-west-1", True), ("ap-southeast-7", True), ("US_EAST_1", False), ("us-east", False), ("", False)]
)
def test_is_region_name(region, valid):
    assert arn.is_region_name(region) is valid
