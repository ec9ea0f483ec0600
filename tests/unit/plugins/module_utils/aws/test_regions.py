import os

import pytest
import yaml

from ansible_collections.cmk.atlas.plugins.module_utils.aws import regions
from ansible_collections.cmk.atlas.plugins.module_utils.aws.regions import RegionError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))))
SPEC_PATH = os.environ.get("CMK_ATLAS_SPEC") or os.path.join(REPO_ROOT, "..", "shared", "atlas-api", "atlas-kms-subset.yaml")
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


def _spec_aws_kms_regions():
    if not os.path.isfile(SPEC_PATH):
        pytest.skip(f"Atlas API spec not found at {SPEC_PATH} (set CMK_ATLAS_SPEC)")
    with open(SPEC_PATH) as handle:
        spec = yaml.safe_load(handle)
    schemas = spec["components"]["schemas"]
    # The encryption-at-rest body refers to the AWS KMS schema; follow the reference rather than trusting a name.
    ref = schemas["EncryptionAtRest"]["properties"]["awsKms"]["$ref"]
    return schemas[ref.rsplit("/", 1)[1]]["properties"]["region"]["enum"]


def test_region_list_matches_spec_enum():
    assert list(regions.ATLAS_KMS_REGIONS) == _spec_aws_kms_regions()


@pytest.mark.parametrize(
    ("given", "atlas", "aws"),
    [
        ("us-east-1", "US_EAST_1", "us-east-1"),
        ("US_EAST_1", "US_EAST_1", "us-east-1"),
        ("us-gov-west-1", "US_GOV_WEST_1", "us-gov-west-1"),
        ("AP_SOUTHEAST_7", "AP_SOUTHEAST_7", "ap-southeast-7"),
        ("cn-northwest-1", "CN_NORTHWEST_1", "cn-northwest-1"),
        ("mx-central-1", "MX_CENTRAL_1", "mx-central-1"),
        (" eu-central-2 ", "EU_CENTRAL_2", "eu-central-2"),
        ("Eu-West-1", "EU_WEST_1", "eu-west-1"),
    ],
)
def test_conversion_both_ways(given, atlas, aws):
    assert regions.to_atlas_region(given) == atlas
    assert regions.to_aws_region(given) == aws
    assert regions.is_atlas_kms_region(given)


def test_every_atlas_region_round_trips():
    for atlas in regions.ATLAS_KMS_REGIONS:
        if atlas in regions.ATLAS_ONLY_REGIONS:
            continue
        aws = regions.to_aws_region(atlas)
        assert aws in regions.AWS_KMS_REGIONS
        assert regions.to_atlas_region(aws) == atlas


@pytest.mark.parametrize("value", ["us-east-9", "US_EAST_9", "mars-north-1", "useast1", "", "us-east-1a"])
def test_unknown_region_is_a_clear_error(value):
    with pytest.raises(RegionError) as info:
        regions.to_atlas_region(value, "key_region")
    message = str(info.value)
    assert message.startswith(f"key_region '{value}' is not an AWS region Atlas supports for KMS")
    assert "such as us-east-1" in message and "such as US_EAST_1" in message
    assert "eu-west-1" in message  # the known regions are listed
    assert not regions.is_atlas_kms_region(value)


@pytest.mark.parametrize("value", [None, 1, ["us-east-1"]])
def test_non_string_region(value):
    with pytest.raises(RegionError, match="must be a region name such as us-east-1 or US_EAST_1"):
        regions.to_aws_region(value)


def test_global_has_no_aws_region():
    assert regions.to_atlas_region("GLOBAL") == "GLOBAL"
    with pytest.raises(RegionError, match="'GLOBAL' is an Atlas region value with no AWS region"):
        regions.to_aws_region("GLOBAL")


@pytest.mark.parametrize(
    ("key", "aws", "atlas"),
    [
        (f"arn:aws:kms:eu-west-2:123456789012:key/{KEY_ID}", "eu-west-2", "EU_WEST_2"),
        ("arn:aws:kms:ap-northeast-3:123456789012:alias/atlas", "ap-northeast-3", "AP_NORTHEAST_3"),
    ],
)
def test_region_from_key_arn(key, aws, atlas):
    assert regions.region_from_key_arn(key) == aws
    assert regions.atlas_region_from_key_arn(key) == atlas


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (KEY_ID, "has no region: give the key ARN"),
        ("alias/atlas", "has no region: give the key ARN"),
        ("not-a-key", "is not a KMS key reference"),
    ],
)
def test_region_from_key_arn_rejects(key, match):
    with pytest.raises(RegionError, match=match):
        regions.region_from_key_arn(key, "customer_master_key_id")


def test_key_in_region_atlas_does_not_support():
    key = f"arn:aws:kms:xx-nowhere-1:123456789012:key/{KEY_ID}"
    assert regions.region_from_key_arn(key) == "xx-nowhere-1"
    with pytest.raises(RegionError, match="is in region xx-nowhere-1, which Atlas does not support for AWS KMS"):
        regions.atlas_region_from_key_arn(key)


def _validate_yml_vars():
    with open(os.path.join(REPO_ROOT, "roles", "enable", "tasks", "checks.yml")) as handle:
        tasks = yaml.safe_load(handle)
    (found,) = [task["vars"] for task in tasks if "cmk_atlas_kms_regions" in task.get("vars", {})]
    return found


def test_playbook_variable_check_knows_the_same_regions():
    # roles/enable/tasks/checks.yml refuses an unknown region before any call; its copy of the list must not drift.
    assert _validate_yml_vars()["cmk_atlas_kms_regions"] == list(regions.AWS_KMS_REGIONS)


@pytest.mark.parametrize("value", ["eu-west-9", "EU_WEST_9"])
def test_unknown_but_well_formed_region_lists_the_known_ones(value):
    with pytest.raises(RegionError) as info:
        regions.to_aws_region(value, "region")
    assert str(info.value).endswith("known AWS regions: " + ", ".join(regions.AWS_KMS_REGIONS))
