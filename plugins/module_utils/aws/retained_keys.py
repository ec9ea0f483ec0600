# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Retained keys and roles: keys a project was rotated away from, kept in the IAM role's KMS policy, and
IAM roles it was moved away from, kept authorized, for the snapshots and point-in-time windows Atlas may
still restore with them (Atlas restores a snapshot with the key and the role recorded when it was taken).

The record is stateless, one tag on the IAM role per key: ``cmk-atlas:retained:<key id>`` =
``<when it was rotated out, ISO 8601 UTC to the second> <key ARN>`` (at most 19 + 36 characters of
key and 21 + an ARN of value: within IAM's 128 and 256). While a rotation runs the value is
``rotating <key ARN>``: the key is retained, and its rotation time is written once Atlas reports the
new key valid (so the recorded time is never earlier than the real one).

A replaced role is recorded the same way on the project's new IAM role: ``cmk-atlas:retained-role:<Atlas
role id>`` = ``<when it was replaced> <IAM role ARN>`` (``replacing <IAM role ARN>`` while the move runs).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import datetime

RETAINED_TAG_PREFIX = "cmk-atlas:retained:"
RETAINED_ROLE_TAG_PREFIX = "cmk-atlas:retained-role:"
ROTATING = "rotating"
REPLACING = "replacing"
# IAM's limit on a tag value.
MAX_TAG_VALUE = 256
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

RetainedKey = collections.namedtuple("RetainedKey", ["key_arn", "key_id", "rotated_out", "tag"])
"""``rotated_out`` is an aware datetime (seconds), or None while the rotation is not recorded yet."""

RetainedRole = collections.namedtuple("RetainedRole", ["role_arn", "atlas_role_id", "rotated_out", "tag"])
"""An IAM role (and its Atlas role) the project was moved away from; ``rotated_out``: when, or None while the move
is not recorded yet."""


def key_id_of(key_arn):
    return key_arn.rsplit("/", 1)[-1]


def retained_tag(key_arn):
    return RETAINED_TAG_PREFIX + key_id_of(key_arn)


def format_time(moment):
    return moment.astimezone(datetime.timezone.utc).strftime(TIME_FORMAT)


def parse_time(text):
    """An ISO 8601 UTC time (``...Z``, fractions allowed) as an aware datetime truncated to the second, or None."""
    if not isinstance(text, str) or not text:
        return None
    value = text.strip().replace("Z", "+00:00")
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc).replace(microsecond=0)


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def record_time(moment=None):
    """The time to record that a key or role was left (default: now), rounded up to the second: an upper bound,
    so every snapshot at or before it counts as taken under what was left."""
    moment = moment or now()
    return moment.replace(microsecond=0) + datetime.timedelta(seconds=1 if moment.microsecond else 0)


def tag_value(key_arn, rotated_out=None, pending=ROTATING):
    return f"{format_time(rotated_out) if rotated_out is not None else pending} {key_arn}"


def retained_role_tag(atlas_role_id):
    return RETAINED_ROLE_TAG_PREFIX + atlas_role_id


def role_tag_value(role_arn, replaced=None):
    return tag_value(role_arn, replaced, pending=REPLACING)


def _records(tags, prefix, service, pending):
    """(tag name, ARN, time or None while pending) of every record under ``prefix`` naming an ARN of ``service``,
    by ARN (tags in another form are ignored)."""
    found = {}
    for name, value in (tags or {}).items():
        parts = str(value).split(" ")
        if name.lower().startswith(prefix) and len(parts) == 2 and f":{service}:" in parts[1]:
            stamp, arn = parts
            found[arn] = (name, arn, None if stamp == pending else parse_time(stamp))
    return [found[arn] for arn in sorted(found)]


def retained_keys(tags):
    """The retained keys the IAM role's tags record, sorted by key ARN."""
    return [RetainedKey(arn, key_id_of(arn), moment, name) for name, arn, moment in _records(tags, RETAINED_TAG_PREFIX, "kms", ROTATING)]


def retained_roles(tags):
    """The retained roles the IAM role's tags record, sorted by IAM role ARN."""
    records = _records(tags, RETAINED_ROLE_TAG_PREFIX, "iam", REPLACING)
    return [RetainedRole(arn, name[len(RETAINED_ROLE_TAG_PREFIX) :], moment, name) for name, arn, moment in records]


def retained_key_arns(tags):
    """The key ARNs every procedure keeps in the role's KMS policy besides the project's key."""
    return [key.key_arn for key in retained_keys(tags)]
