"""cmk.atlas.rotate: a role-based project moves to a new key; the old one stays reachable as a retained key
until nothing Atlas may restore needs it."""

import datetime
import json

import pytest

from .conftest import assert_refused, cross_account_project, successful_writes

pytestmark = pytest.mark.integration

ENABLE = "cmk.atlas.enable"
ROTATE = "cmk.atlas.rotate"
VERIFY = "cmk.atlas.verify"
TASK = "cmk.atlas.rotate : Plan and apply customer key management for the project"
ENABLE_TASK = "cmk.atlas.enable : Plan and apply customer key management for the project"
VERIFY_TASK = "cmk.atlas.verify : Report the project"
FAST = {"cmk_atlas_connection": {"retries": 1, "timeout": 10}, "cmk_atlas_authorize_timeout": 5, "cmk_atlas_valid_timeout": 5}
ROLE = "atlas-kms-plain"
POLICY = "cmk-atlas-kms-access"


def variables(bed, key_arn, **more):
    return {"cmk_atlas_project_id": bed.projects["plain"], "cmk_atlas_iam_role_name": ROLE, "cmk_atlas_kms_key": key_arn, **FAST, **more}


def enabled_with_a_second_key(bed, run_playbook, testbed_env, write_inventory):
    """Enable "plain" with the main key; return (old key ARN, new key ARN)."""
    old = bed.keys["main"]["arn"]
    run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({"plain": variables(bed, old)})).assert_ok()
    new = bed.aws_client("kms").create_key(Description="the next Atlas key")["KeyMetadata"]["Arn"]
    return old, new


def inline_resources(bed):
    document = bed.aws_client("iam").get_role_policy(RoleName=ROLE, PolicyName=POLICY)["PolicyDocument"]
    resource = document["Statement"][0]["Resource"]
    return sorted(resource if isinstance(resource, list) else [resource])


def role_tags(bed):
    return {tag["Key"]: tag["Value"] for tag in bed.aws_client("iam").list_role_tags(RoleName=ROLE)["Tags"]}


def refused(run, *texts):
    return assert_refused(run, TASK, *texts)


@pytest.mark.scenario("demo")
def test_rotate_grants_the_new_key_first_and_keeps_the_old_one_retained(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["plain"]
    old, new = enabled_with_a_second_key(bed, run_playbook, testbed_env, write_inventory)
    inventory = write_inventory({"plain": variables(bed, new)})

    # Check mode predicts the real run and writes nothing.
    bed.clear_logs()
    check = run_playbook(ROTATE, env=testbed_env, inventory=inventory, check=True, diff=True).assert_ok()
    assert successful_writes(bed) == []
    predicted = check.task(TASK)["changes"]
    assert predicted and any("encryption at rest" in change for change in predicted), predicted

    bed.clear_logs()
    run = run_playbook(ROTATE, env=testbed_env, inventory=inventory, diff=True).assert_ok()
    assert run.task(TASK)["changes"] == predicted
    assert run.changed_tasks() == check.changed_tasks()

    # The role may use the new key before Atlas is given it.
    atlas = [entry for entry in bed.atlas.request_log() if entry["operation_id"] == "updateGroupEncryptionAtRest" and entry["status"] == 200]
    grants = [entry for entry in bed.proxy.request_log() if entry["operation"] == "PutRolePolicy" and entry["status"] == 200]
    assert len(atlas) == 1 and grants, (atlas, grants)
    assert grants[0]["time"] < atlas[0]["time"]

    ear = bed.atlas.project_state(group)["encryptionAtRest"]
    assert ear["enabled"] and ear["customerMasterKeyID"] == new
    assert run.task(TASK)["encryption_at_rest"]["valid"] is True

    # The old key is retained: still in the inline policy, its rotation recorded on the role.
    assert inline_resources(bed) == sorted([old, new])
    tag = role_tags(bed)["cmk-atlas:retained:" + old.rsplit("/", 1)[1]]
    stamp, arn = tag.split(" ")
    assert arn == old
    rotated = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - rotated).total_seconds()) < 300
    assert run.task(TASK)["retained_keys"][0]["key_arn"] == old

    # Converged: rotate again, and enable with the new key, write nothing and keep the retained key.
    for playbook in (ROTATE, ENABLE):
        bed.clear_logs()
        again = run_playbook(playbook, env=testbed_env, inventory=inventory).assert_ok()
        assert again.changed_tasks() == [] and bed.write_calls() == [], (playbook, bed.write_calls())
    assert inline_resources(bed) == sorted([old, new])
    assert "may do more than Atlas needs" not in " ".join(again.task(ENABLE_TASK).get("warnings", []))

    # Verify reports it retained, not as drift.
    report = run_playbook(VERIFY, env=testbed_env, inventory=inventory).assert_ok().task(VERIFY_TASK)["msg"]
    assert report["in_sync"] is True, report
    assert [entry["key_arn"] for entry in report["retained_keys"]] == [old]
    assert report["permissions_beyond_kms"] == []


@pytest.mark.scenario("demo")
@pytest.mark.parametrize("cluster", ["replica_set", "sharded_deleted_with_retained_backups"])
def test_retiring_is_refused_while_a_snapshot_from_before_the_rotation_exists(run_playbook, clean_testbed, testbed_env, write_inventory, cluster):
    bed = clean_testbed
    group = bed.projects["plain"]
    old, new = enabled_with_a_second_key(bed, run_playbook, testbed_env, write_inventory)
    taken = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(hours=2)
    name = "Cluster0"
    if cluster != "replica_set":
        name = "Shards1"
        bed.atlas.add_cluster(group, name, cluster_type="SHARDED", backup_enabled=True)
    bed.atlas.add_snapshot(group, name, taken.timestamp())
    if cluster != "replica_set":
        bed.atlas.delete_cluster(group, name, retain_backups=True)
    run_playbook(ROTATE, env=testbed_env, inventory=write_inventory({"plain": variables(bed, new)})).assert_ok()

    inventory = write_inventory({"plain": variables(bed, new, cmk_atlas_retire_keys=[old])})
    for check in (True, False):
        bed.clear_logs()
        refused(run_playbook(ROTATE, env=testbed_env, inventory=inventory, check=check), old, name, taken.strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert successful_writes(bed) == []
    assert inline_resources(bed) == sorted([old, new])


@pytest.mark.scenario("demo")
def test_a_retained_key_is_retired_once_no_snapshot_needs_it(run_playbook, clean_testbed, testbed_env, write_inventory):
    bed = clean_testbed
    group = bed.projects["plain"]
    old, new = enabled_with_a_second_key(bed, run_playbook, testbed_env, write_inventory)
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    bed.atlas.add_snapshot(group, "Cluster0", before.timestamp())
    run_playbook(ROTATE, env=testbed_env, inventory=write_inventory({"plain": variables(bed, new)})).assert_ok()
    # A snapshot taken after the rotation is under the new key: it does not hold the old one.
    bed.atlas.add_snapshot(group, "Cluster0", (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)).timestamp())
    inventory = write_inventory({"plain": variables(bed, new, cmk_atlas_retire_keys=[old])})
    refused(run_playbook(ROTATE, env=testbed_env, inventory=inventory), "Cluster0")
    # The cluster goes, and its snapshots with it: nothing Atlas may restore needs the old key.
    bed.atlas.delete_cluster(group, "Cluster0")
    bed.clear_logs()
    check = run_playbook(ROTATE, env=testbed_env, inventory=inventory, check=True).assert_ok()
    assert successful_writes(bed) == []
    run = run_playbook(ROTATE, env=testbed_env, inventory=inventory).assert_ok()
    assert run.task(TASK)["changes"] == check.task(TASK)["changes"]
    assert inline_resources(bed) == [new]
    assert not any(key.startswith("cmk-atlas:retained:") for key in role_tags(bed))
    assert bed.atlas.project_state(group)["encryptionAtRest"]["customerMasterKeyID"] == new
    bed.clear_logs()
    run_playbook(ROTATE, env=testbed_env, inventory=inventory).assert_ok()
    assert bed.write_calls() == []


@pytest.mark.scenario("demo")
@pytest.mark.parametrize("case", ["disabled", "pending_deletion", "not_granted"])
def test_a_broken_current_key_is_reported_not_rotated(run_playbook, clean_testbed, testbed_env, write_inventory, case):
    bed = clean_testbed
    old, new = enabled_with_a_second_key(bed, run_playbook, testbed_env, write_inventory)
    kms = bed.aws_client("kms")
    expected = [old]
    if case == "disabled":
        kms.disable_key(KeyId=old.rsplit("/", 1)[1])
        expected.append("disabled")
    elif case == "pending_deletion":
        kms.schedule_key_deletion(KeyId=old.rsplit("/", 1)[1], PendingWindowInDays=7)
        expected.append("PendingDeletion")
    else:
        bed.aws_client("iam").delete_role_policy(RoleName=ROLE, PolicyName=POLICY)
        expected.append("not valid")
    inventory = write_inventory({"plain": variables(bed, new)})
    for check in (True, False):
        bed.clear_logs()
        refused(run_playbook(ROTATE, env=testbed_env, inventory=inventory, check=check), "current key", *expected)
        assert successful_writes(bed) == []
    assert bed.atlas.project_state(bed.projects["plain"])["encryptionAtRest"]["customerMasterKeyID"] == old


@pytest.mark.scenario("cross_account")
def test_a_cross_account_rotation_broken_part_way_is_resumed_and_grants_the_new_key_in_its_own_account(
    run_playbook, clean_testbed, testbed_env, write_inventory
):
    bed = clean_testbed
    group = bed.projects["cross"]
    old = bed.keys["main"]["arn"]
    cross = cross_account_project(bed, **FAST)
    run_playbook(ENABLE, env=testbed_env, inventory=write_inventory({"cross": dict(cross, cmk_atlas_kms_key=old)})).assert_ok()
    # The next key, in the key account K, with its default key policy: the role of account R needs a statement there.
    new = bed.aws_client("kms", account="K").create_key(Description="the next shared Atlas key")["KeyMetadata"]["Arn"]
    inventory = write_inventory({"cross": dict(cross, cmk_atlas_kms_key=new)})

    # Atlas refuses the key change once (a transient 503 twice): nothing of Atlas changed, the grants are in place.
    bed.atlas.inject_fault("updateGroupEncryptionAtRest", status=503, count=2)
    bed.clear_logs()
    broken = run_playbook(ROTATE, env=testbed_env, inventory=inventory, extra_vars={"cmk_atlas_connection": {"retries": 0, "timeout": 10}})
    assert broken.rc != 0 and broken.failed_tasks() == [TASK], broken.output[-3000:]
    message = broken.task(TASK)["msg"]
    assert message.startswith("set encryption at rest of project"), message
    assert "put key-policy statement" in message and "Run again to continue from there" in message
    assert bed.atlas.project_state(group)["encryptionAtRest"]["customerMasterKeyID"] == old

    bed.clear_logs()
    resumed = run_playbook(ROTATE, env=testbed_env, inventory=inventory).assert_ok().task(TASK)
    assert [change.split(" ")[0] for change in resumed["changes"]] == ["set", "record"], resumed["changes"]
    assert resumed["rotated"] is True and [key["key_arn"] for key in resumed["retained_keys"]] == [old]
    assert bed.atlas.project_state(group)["encryptionAtRest"]["customerMasterKeyID"] == new
    # The statement on the new key is in account K's key policy, naming the role of account R.
    policy = json.loads(bed.aws_client("kms", account="K").get_key_policy(KeyId=new, PolicyName="default")["Policy"])
    role_arn = resumed["iam_role_arn"]
    assert any(role_arn in json.dumps(statement.get("Principal")) for statement in policy["Statement"]), policy

    bed.clear_logs()
    assert run_playbook(ROTATE, env=testbed_env, inventory=inventory).assert_ok().task(TASK)["changes"] == []
    assert successful_writes(bed) == []
