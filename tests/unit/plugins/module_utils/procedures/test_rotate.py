"""The retire rule of cmk.atlas.rotate: a retained key is held while anything Atlas may restore could need it."""

import datetime

from ansible_collections.cmk.atlas.plugins.module_utils.aws.retained_keys import RetainedKey, RetainedRole, retained_keys, tag_value
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.rotate import holders

UTC = datetime.timezone.utc
ARN = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROTATED = datetime.datetime(2024, 6, 11, 10, 0, 0, tzinfo=UTC)
NOW = ROTATED + datetime.timedelta(days=30)


def key(rotated_out=ROTATED):
    return RetainedKey(ARN, ARN.rsplit("/", 1)[1], rotated_out, "cmk-atlas:retained:" + ARN.rsplit("/", 1)[1])


def cluster(name="Cluster0", deleted=False, pit=False):
    return {"name": name, "cluster_type": "REPLICASET", "deleted": deleted, "backup_enabled": True, "pit_enabled": pit}


def snapshot(created, name="Cluster0", status="completed"):
    return {"cluster": name, "id": "snap1", "created_at": created, "status": status, "type": "replicaSet"}


def test_nothing_to_restore_releases_the_key():
    assert holders(key(), [cluster()], [], NOW) == []


def test_a_snapshot_from_before_the_rotation_holds_it_and_is_named_with_its_date():
    held = holders(key(), [cluster()], [snapshot(ROTATED - datetime.timedelta(days=1))], NOW)
    assert len(held) == 1 and "Cluster0" in held[0] and "2024-06-10T10:00:00Z" in held[0]


def test_the_rotation_second_itself_holds_the_key_and_fractions_do_not_matter():
    assert holders(key(), [cluster()], [snapshot(ROTATED + datetime.timedelta(microseconds=900000))], NOW)
    assert holders(key(), [cluster()], [snapshot(ROTATED + datetime.timedelta(seconds=1))], NOW) == []


def test_a_failed_snapshot_does_not_hold_it_one_without_a_time_does():
    assert holders(key(), [cluster()], [snapshot(ROTATED - datetime.timedelta(days=1), status="failed")], NOW) == []
    assert holders(key(), [cluster()], [snapshot(None)], NOW)


def test_a_deleted_cluster_with_retained_backups_is_named_as_such():
    held = holders(key(), [cluster("Old", deleted=True)], [snapshot(ROTATED - datetime.timedelta(hours=1), name="Old")], NOW)
    assert "cluster Old (deleted, backups retained)" in held[0]


def test_continuous_backup_holds_the_key_while_its_window_reaches_back_before_the_rotation():
    pit = [cluster(pit=True)]
    assert holders(key(), pit, [], ROTATED + datetime.timedelta(days=6), pit_window_days=7)
    assert holders(key(), pit, [], ROTATED + datetime.timedelta(days=7), pit_window_days=7)
    assert holders(key(), pit, [], ROTATED + datetime.timedelta(days=7, seconds=1), pit_window_days=7) == []
    assert holders(key(), pit, [], ROTATED + datetime.timedelta(days=20), pit_window_days=30)


def test_an_unrecorded_rotation_holds_the_key():
    held = holders(key(rotated_out=None), [cluster()], [], NOW)
    assert "not recorded" in held[0]


def test_a_retained_role_is_held_by_the_same_rule():
    role_arn = "arn:aws:iam::111111111111:role/atlas-by-hand"
    role = RetainedRole(role_arn, "5f0000000000000000000abc", ROTATED, "cmk-atlas:retained-role:5f0000000000000000000abc")
    assert holders(role, [cluster()], [], NOW) == []
    assert "Cluster0" in holders(role, [cluster()], [snapshot(ROTATED - datetime.timedelta(days=1))], NOW)[0]
    assert holders(role, [cluster(pit=True)], [], ROTATED + datetime.timedelta(days=3))
    [pending] = holders(role._replace(rotated_out=None), [cluster()], [], NOW)
    assert f"moved away from role {role_arn} is not recorded" in pending


def test_the_tags_round_trip():
    tags = {"cmk-atlas:retained:1234abcd-12ab-34cd-56ef-1234567890ab": tag_value(ARN, ROTATED), "team": "orders"}
    assert retained_keys(tags) == [key()]
    pending = retained_keys({"cmk-atlas:retained:x": tag_value(ARN)})
    assert pending[0].key_arn == ARN and pending[0].rotated_out is None
    assert len("cmk-atlas:retained:" + "mrk-" + "0" * 32) <= 128
    assert len(tag_value("arn:aws-us-gov:kms:us-gov-west-1:111111111111:key/mrk-" + "0" * 32, ROTATED)) <= 256
