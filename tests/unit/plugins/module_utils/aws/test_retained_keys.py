import datetime

from ansible_collections.cmk.atlas.plugins.module_utils.aws import retained_keys

KEY_ARN = "arn:aws:kms:eu-west-2:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE_ARN = "arn:aws:iam::111111111111:role/atlas/atlas-by-hand"
ROLE_ID = "5f0000000000000000000abc"
MOMENT = datetime.datetime(2026, 12, 1, 10, 30, 5, tzinfo=datetime.timezone.utc)


def test_a_retained_role_is_recorded_pending_then_with_its_time():
    tag = retained_keys.retained_role_tag(ROLE_ID)
    assert tag == "cmk-atlas:retained-role:" + ROLE_ID
    assert retained_keys.role_tag_value(ROLE_ARN) == "replacing " + ROLE_ARN
    assert retained_keys.role_tag_value(ROLE_ARN, MOMENT) == "2026-12-01T10:30:05Z " + ROLE_ARN
    [pending] = retained_keys.retained_roles({tag: retained_keys.role_tag_value(ROLE_ARN)})
    assert (pending.role_arn, pending.atlas_role_id, pending.rotated_out, pending.tag) == (ROLE_ARN, ROLE_ID, None, tag)
    [recorded] = retained_keys.retained_roles({tag: retained_keys.role_tag_value(ROLE_ARN, MOMENT)})
    assert recorded.rotated_out == MOMENT


def test_keys_and_roles_are_read_apart_and_other_tags_are_ignored():
    tags = {
        retained_keys.retained_tag(KEY_ARN): retained_keys.tag_value(KEY_ARN, MOMENT),
        retained_keys.retained_role_tag(ROLE_ID): retained_keys.role_tag_value(ROLE_ARN, MOMENT),
        "cmk-atlas:retained-role:broken": "not a record",
        "cmk-atlas:retained-role:key": "2026-12-01T10:30:05Z " + KEY_ARN,
        "Team": "platform",
    }
    assert [key.key_arn for key in retained_keys.retained_keys(tags)] == [KEY_ARN]
    assert [role.role_arn for role in retained_keys.retained_roles(tags)] == [ROLE_ARN]
    assert retained_keys.retained_key_arns(tags) == [KEY_ARN]


def test_the_recorded_time_is_rounded_up_to_the_second():
    assert retained_keys.record_time(MOMENT) == MOMENT
    assert retained_keys.record_time(MOMENT.replace(microsecond=1)) == MOMENT + datetime.timedelta(seconds=1)
    assert retained_keys.record_time().tzinfo is not None
