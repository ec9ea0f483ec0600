# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS region names (``us-east-1``) and the Atlas names for them (``US_EAST_1``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.cmk.atlas.plugins.module_utils._errors import CmkAtlasError
from ansible_collections.cmk.atlas.plugins.module_utils.aws.arn import ArnError, parse_kms_key_ref

# The values Atlas accepts for awsKms.region (schema AWSKMSConfiguration in the Admin API),
# in the API's order. A unit test keeps this equal to the spec's enum.
ATLAS_KMS_REGIONS = (
    "US_GOV_WEST_1",
    "US_GOV_EAST_1",
    "US_EAST_1",
    "US_EAST_2",
    "US_WEST_1",
    "US_WEST_2",
    "CA_CENTRAL_1",
    "EU_NORTH_1",
    "EU_WEST_1",
    "EU_WEST_2",
    "EU_WEST_3",
    "EU_CENTRAL_1",
    "EU_CENTRAL_2",
    "AP_EAST_1",
    "AP_EAST_2",
    "AP_NORTHEAST_1",
    "AP_NORTHEAST_2",
    "AP_NORTHEAST_3",
    "AP_SOUTHEAST_1",
    "AP_SOUTHEAST_2",
    "AP_SOUTHEAST_3",
    "AP_SOUTHEAST_4",
    "AP_SOUTHEAST_5",
    "AP_SOUTHEAST_6",
    "AP_SOUTHEAST_7",
    "AP_SOUTH_1",
    "AP_SOUTH_2",
    "SA_EAST_1",
    "CN_NORTH_1",
    "CN_NORTHWEST_1",
    "ME_SOUTH_1",
    "ME_CENTRAL_1",
    "AF_SOUTH_1",
    "EU_SOUTH_1",
    "EU_SOUTH_2",
    "IL_CENTRAL_1",
    "CA_WEST_1",
    "MX_CENTRAL_1",
    "GLOBAL",
)

# Atlas values that are not an AWS region, so have no AWS name.
ATLAS_ONLY_REGIONS = frozenset(["GLOBAL"])

_ATLAS_TO_AWS = {name: name.lower().replace("_", "-") for name in ATLAS_KMS_REGIONS if name not in ATLAS_ONLY_REGIONS}
_AWS_TO_ATLAS = {aws: atlas for atlas, aws in _ATLAS_TO_AWS.items()}

AWS_KMS_REGIONS = tuple(sorted(_AWS_TO_ATLAS))
"""The AWS region names Atlas can use for a KMS key."""


class RegionError(CmkAtlasError, ValueError):
    """A region is not one Atlas can use for AWS KMS, or cannot be converted."""


def _unknown(value, option):
    known = ", ".join(AWS_KMS_REGIONS)
    return RegionError(
        f"{option} '{value}' is not an AWS region Atlas supports for KMS; expected an AWS region name such as us-east-1 "
        f"or an Atlas region name such as US_EAST_1; known AWS regions: {known}"
    )


def _lookup(value, option):
    """Map either spelling to the Atlas name; case and '-'/'_' are not significant."""
    if not isinstance(value, str):
        raise RegionError(f"{option} must be a region name such as us-east-1 or US_EAST_1, not {type(value).__name__}")
    candidate = value.strip().upper().replace("-", "_")
    if candidate in ATLAS_KMS_REGIONS:
        return candidate
    raise _unknown(value, option)


def to_atlas_region(value, option="region"):
    """The Atlas name (``US_EAST_1``) of a region given in either form."""
    return _lookup(value, option)


def to_aws_region(value, option="region"):
    """The AWS name (``us-east-1``) of a region given in either form."""
    atlas = _lookup(value, option)
    if atlas in ATLAS_ONLY_REGIONS:
        raise RegionError(f"{option} '{value}' is an Atlas region value with no AWS region; expected an AWS region such as us-east-1")
    return _ATLAS_TO_AWS[atlas]


def is_atlas_kms_region(value):
    """Whether ``value`` (in either form) is a region Atlas accepts for AWS KMS."""
    try:
        _lookup(value, "region")
    except RegionError:
        return False
    return True


def region_from_key_arn(key_arn, option="key"):
    """The AWS region name in a KMS key or alias ARN."""
    try:
        ref = parse_kms_key_ref(key_arn, option)
    except ArnError as exc:
        raise RegionError(str(exc)) from exc
    if ref.region is None:
        raise RegionError(f"{option} '{key_arn}' has no region: give the key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY_ID) rather than a key id or alias name")
    return ref.region


def atlas_region_from_key_arn(key_arn, option="key"):
    """The Atlas region name for the region in a KMS key ARN."""
    region = region_from_key_arn(key_arn, option)
    try:
        return to_atlas_region(region)
    except RegionError as exc:
        raise RegionError(f"{option} '{key_arn}' is in region {region}, which Atlas does not support for AWS KMS; {exc}") from exc
