"""cmk.atlas.kms_key_policy through real ansible-playbook runs against the test bed."""

import json

import pytest

from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import normalize_policy

UNKNOWN = "(known after apply)"
ROLE = "arn:aws:iam::111111111111:role/atlas-kms"
ROLE_SID = "MongoDBAtlasKeyAccessaws111111111111X2FatlasX2Dkms"  # the role ARN, injectively
ACCESS_ACTIONS = {"kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"}
MISSING_KEY_ID = "11111111-2222-3333-4444-555555555555"


def play(*tasks):
    return [{"name": "key policy", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": list(tasks)}]


def task(name, ignore_errors=False, **args):
    result = {"name": name, "cmk.atlas.kms_key_policy": args}
    if ignore_errors:
        result["ignore_errors"] = True
    return result


def key_policy(bed, name="main"):
    key = bed.keys[name]
    kms = bed.aws_client("kms", account=key["account"], region=key["region"])
    return json.loads(kms.get_key_policy(KeyId=key["key_id"], PolicyName="default")["Policy"])


def statement_by_sid(policy, sid):
    matches = [statement for statement in policy["Statement"] if statement.get("Sid") == sid]
    assert len(matches) == 1, policy
    return matches[0]


def aws_writes(bed):
    calls = bed.write_calls()
    assert [call for call in calls if call["system"] != "aws"] == []
    return [(call["operation"], call["account"], call["status"]) for call in calls]


# -- the lifecycle ---------------------------------------------------------------------------


def test_check_mode_predicts_apply_writes_once_and_rerun_writes_nothing(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    account = bed.accounts["R"]
    original = key_policy(bed)
    grant = task("grant", key_id=key["alias"], principals=[ROLE])

    check = run_playbook(play(grant), env=testbed_env, check=True, diff=True).assert_ok()
    predicted = check.task("grant")
    assert predicted["changed"] is True
    assert aws_writes(bed) == []
    assert key_policy(bed) == original
    assert predicted["sid"] == ROLE_SID
    assert predicted["diff"]["before"] == normalize_policy(original)
    assert predicted["diff"]["after"] == predicted["policy"]
    assert predicted["diff"]["before_header"] == f"key policy of {key['arn']}"
    # The diff shows the added statement and nothing else.
    assert f'+            "Sid": "{ROLE_SID}"' in check.output
    assert '-            "Sid": "Enable IAM User Permissions"' not in check.output

    bed.clear_logs()
    applied = run_playbook(play(grant), env=testbed_env).assert_ok().task("grant")
    assert applied["changed"] is True
    assert aws_writes(bed) == [("PutKeyPolicy", account, 200)]
    stored = key_policy(bed)
    assert normalize_policy(stored) == predicted["policy"] == applied["policy"]
    assert stored["Statement"][0] == original["Statement"][0]
    assert (stored["Version"], stored["Id"]) == (original["Version"], original["Id"])
    statement = statement_by_sid(stored, ROLE_SID)
    assert statement == applied["statement"] == predicted["statement"]
    assert statement["Principal"] == {"AWS": ROLE}
    assert set(statement["Action"]) == ACCESS_ACTIONS
    assert statement["Resource"] == "*"
    assert "Condition" not in statement
    assert (applied["key_arn"], applied["key_id"], applied["key_state"], applied["sid"]) == (key["arn"], key["key_id"], "Enabled", ROLE_SID)

    # Every way of naming the key finds the same statement: nothing to do, nothing written.
    bed.clear_logs()
    references = {"id": key["key_id"], "arn": key["arn"], "alias": key["alias"], "alias arn": key["alias_arn"]}
    again = [task(f"again by {form}", key_id=reference, principals=[ROLE]) for form, reference in references.items()]
    rerun = run_playbook(play(*again), env=testbed_env).assert_ok()
    assert rerun.changed_tasks() == []
    assert aws_writes(bed) == []
    rerun_check = run_playbook(play(*again[:1]), env=testbed_env, check=True, diff=True).assert_ok()
    assert rerun_check.changed_tasks() == []
    assert aws_writes(bed) == []
    assert key_policy(bed) == stored


def test_absent_removes_only_its_statement(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    original = key_policy(bed)
    other = {"Sid": "AppUse", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:role/app"}, "Action": "kms:Decrypt", "Resource": "*"}
    ours = {"Sid": ROLE_SID, "Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"], "Resource": "*"}
    seeded = dict(original, Statement=[*original["Statement"], ours, other])
    bed.aws_client("kms").put_key_policy(KeyId=key["key_id"], PolicyName="default", Policy=json.dumps(seeded))
    remove = task("remove", key_id=key["arn"], principals=[ROLE], state="absent")

    check = run_playbook(play(remove), env=testbed_env, check=True, diff=True).assert_ok().task("remove")
    assert check["changed"] is True
    assert check["statement"] is None
    assert check["diff"]["after"] == check["policy"] == normalize_policy(dict(original, Statement=[*original["Statement"], other]))
    assert aws_writes(bed) == []

    applied = run_playbook(play(remove), env=testbed_env).assert_ok().task("remove")
    assert applied["changed"] is True
    assert aws_writes(bed) == [("PutKeyPolicy", bed.accounts["R"], 200)]
    assert key_policy(bed) == dict(original, Statement=[*original["Statement"], other])

    bed.clear_logs()
    by_sid = task("remove by sid", key_id=key["alias"], sid=ROLE_SID, state="absent")
    rerun = run_playbook(play(remove, by_sid), env=testbed_env).assert_ok()
    assert rerun.changed_tasks() == []
    assert aws_writes(bed) == []


def test_projects_sharing_a_key_get_a_statement_each(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    other_role = "arn:aws:iam::333333333333:role/atlas-kms"
    tasks = [
        task("project one", key_id=key["alias"], principals=[ROLE]),
        task("project two, same role name in another account", key_id=key["alias"], principals=[other_role]),
        task("an account", key_id=key["alias"], principals=["444444444444"]),
        task("two roles, one sid", key_id=key["alias"], sid="AtlasAnalytics", principals=[ROLE, "arn:aws:iam::111111111111:role/reporting"]),
        task("project one from source IPs only", key_id=key["alias"], principals=[ROLE], source_ips=["203.0.113.0/24", "198.51.100.10"]),
    ]
    run = run_playbook(play(*tasks), env=testbed_env).assert_ok()
    assert len(run.changed_tasks()) == 5
    assert [call[0] for call in aws_writes(bed)] == ["PutKeyPolicy"] * 5
    stored = key_policy(bed)
    sids = [statement.get("Sid") for statement in stored["Statement"]]
    assert sids == [
        "Enable IAM User Permissions",
        ROLE_SID,
        "MongoDBAtlasKeyAccessaws333333333333X2FatlasX2Dkms",
        "MongoDBAtlasKeyAccess444444444444",
        "AtlasAnalytics",
    ]
    assert statement_by_sid(stored, "MongoDBAtlasKeyAccess444444444444")["Principal"] == {"AWS": "arn:aws:iam::444444444444:root"}
    assert statement_by_sid(stored, ROLE_SID)["Condition"] == {"IpAddress": {"aws:SourceIp": ["198.51.100.10/32", "203.0.113.0/24"]}}

    bed.clear_logs()
    rerun = run_playbook(play(*tasks[1:]), env=testbed_env).assert_ok()
    assert rerun.changed_tasks() == []
    assert aws_writes(bed) == []


# -- check mode with values an earlier step creates -------------------------------------------


def test_placeholder_principal_is_predicted_in_check_mode_and_refused_otherwise(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    original = key_policy(bed)
    tasks = [
        {"name": "role from an earlier step", "ansible.builtin.set_fact": {"atlas_role_arn": f"arn:aws:iam::111111111111:role/{UNKNOWN}"}},
        task("grant", key_id=key["alias"], principals=["{{ atlas_role_arn }}"]),
    ]
    check = run_playbook(play(*tasks), env=testbed_env, check=True, diff=True).assert_ok().task("grant")
    assert check["changed"] is True
    assert check["sid"] == f"MongoDBAtlasKeyAccess{UNKNOWN}"
    assert check["statement"]["Principal"] == {"AWS": f"arn:aws:iam::111111111111:role/{UNKNOWN}"}
    assert statement_by_sid(check["policy"], check["sid"])["Principal"] == {"AWS": f"arn:aws:iam::111111111111:role/{UNKNOWN}"}
    assert aws_writes(bed) == []

    real = run_playbook(play(*tasks), env=testbed_env)
    assert real.failed_tasks() == ["grant"]
    assert "principals is '(known after apply)': it comes from an earlier task that ran in check mode" in real.task("grant")["msg"]
    assert aws_writes(bed) == []
    assert key_policy(bed) == original


def test_disabled_key_warns_and_still_gets_the_statement(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    bed.aws_client("kms").disable_key(KeyId=key["key_id"])
    result = run_playbook(play(task("grant", key_id=key["alias"], principals=[ROLE])), env=testbed_env).assert_ok().task("grant")
    assert result["changed"] is True
    assert result["key_state"] == "Disabled"
    assert any(f"KMS key {key['arn']} ({key['alias']}) is disabled" in warning for warning in result["warnings"])
    statement_by_sid(key_policy(bed), ROLE_SID)


# -- bad input: a clear error, nothing written ------------------------------------------------


def test_a_statement_with_our_sid_for_another_principal_is_left_alone(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    original = key_policy(bed)
    someone_else = "arn:aws:iam::111111111111:role/someone-else"
    taken = {"Sid": ROLE_SID, "Effect": "Allow", "Principal": {"AWS": someone_else}, "Action": "kms:Decrypt", "Resource": "*"}
    seeded = dict(original, Statement=[*original["Statement"], taken])
    bed.aws_client("kms").put_key_policy(KeyId=key["key_id"], PolicyName="default", Policy=json.dumps(seeded))
    bed.clear_logs()

    tasks = [
        task("grant", ignore_errors=True, key_id=key["alias"], principals=[ROLE]),
        task("remove", ignore_errors=True, key_id=key["alias"], principals=[ROLE], state="absent"),
    ]
    run = run_playbook(play(*tasks), env=testbed_env)
    assert run.failed_tasks() == ["grant", "remove"]
    for name in ("grant", "remove"):
        message = run.task(name)["msg"]
        assert f"the key policy of {key['arn']} has a statement with Sid '{ROLE_SID}' for {someone_else}" in message, message
        assert "nothing was written" in message
    assert aws_writes(bed) == []
    assert key_policy(bed) == seeded


def test_bad_input_fails_clearly_and_writes_nothing(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    kms = bed.aws_client("kms")
    pending = kms.create_key()["KeyMetadata"]
    kms.schedule_key_deletion(KeyId=pending["KeyId"], PendingWindowInDays=7)
    use_only = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "UseOnly", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Encrypt", "Resource": "*"}],
    }
    locked = kms.create_key(Policy=json.dumps(use_only), BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    foreign_key = f"arn:aws:kms:us-east-1:222222222222:key/{MISSING_KEY_ID}"
    before = key_policy(bed)
    grant = {"key_id": key["alias"], "principals": [ROLE]}
    cases = {
        "malformed key": (dict(grant, key_id="not-a-key"), "key_id 'not-a-key' is not a KMS key reference; expected a key id"),
        "AWS managed key": (dict(grant, key_id="alias/aws/ebs"), "key_id 'alias/aws/ebs' names an AWS managed key (alias/aws/ebs)"),
        "missing key": (dict(grant, key_id=MISSING_KEY_ID), f"key_id '{MISSING_KEY_ID}': no such KMS key in account 111111111111, region us-east-1"),
        "missing alias": (dict(grant, key_id="alias/missing"), "key_id 'alias/missing': no such KMS alias in account 111111111111, region us-east-1"),
        "key pending deletion": (dict(grant, key_id=pending["Arn"]), f"KMS key {pending['Arn']} is PendingDeletion (deletion on "),
        "region contradicts the key ARN": (dict(grant, key_id=key["arn"], region="eu-west-1"), "is in region us-east-1, but region is eu-west-1"),
        "key of another account": (dict(grant, key_id=foreign_key), f"key_id '{foreign_key}' is a key in AWS account 222222222222"),
        "malformed role": (dict(grant, principals=["arn:aws:iam::1234:role/x"]), "principals entry 'arn:aws:iam::1234:role/x' is not a principal"),
        "IAM user": (dict(grant, principals=["arn:aws:iam::111111111111:user/bob"]), "it is an IAM user, but Atlas reaches the key through an IAM role"),
        "no principals": ({"key_id": key["alias"]}, "state is present but all of the following are missing: principals"),
        "two principals, no sid": (dict(grant, principals=[ROLE, "444444444444"]), "sid is required when principals names 2 principals"),
        "bad source IP": (dict(grant, source_ips=["10.0.0.300"]), "source_ips entry '10.0.0.300' is not an IP address or CIDR block"),
        "sid of the admin statement": (
            dict(grant, sid="Enable IAM User Permissions"),
            "already has a statement with Sid 'Enable IAM User Permissions' that grants more than key access",
        ),
        "removing the admin statement": (
            {"key_id": key["alias"], "sid": "Enable IAM User Permissions", "state": "absent"},
            "already has a statement with Sid 'Enable IAM User Permissions' that grants more than key access",
        ),
        "nobody could manage the key": (dict(grant, key_id=locked["KeyId"]), "afterwards no principal would be allowed kms:PutKeyPolicy"),
        "absent without sid or principals": (
            {"key_id": key["alias"], "state": "absent"},
            "state is absent but any of the following are missing: sid, principals",
        ),
    }
    tasks = [task(name, ignore_errors=True, **args) for name, (args, _message) in cases.items()]
    run = run_playbook(play(*tasks), env=testbed_env)
    assert run.failed_tasks() == list(cases)
    for name, (_args, message) in cases.items():
        assert message in run.task(name)["msg"], name
    assert aws_writes(bed) == []
    assert key_policy(bed) == before


# -- a key in another account ----------------------------------------------------------------


@pytest.mark.scenario("cross_account")
def test_cross_account_key_is_changed_with_the_owners_credentials(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    key_admin = bed.roles["key_admin"]["arn"]
    original = key_policy(bed)
    secret = bed.operator["secret_access_key"]

    without = run_playbook(play(task("grant", ignore_errors=True, key_id=key["arn"], principals=[ROLE])), env=testbed_env)
    message = without.task("grant")["msg"]
    assert message.startswith(f"key_id '{key['arn']}' is a key in AWS account 222222222222, but the AWS credentials act in account 111111111111")
    assert "assume_role_arn: arn:aws:iam::222222222222:role/ROLE_NAME" in message
    assert aws_writes(bed) == []

    credentials = {
        "access_key": "{{ lookup('ansible.builtin.env', 'AWS_ACCESS_KEY_ID') }}",
        "secret_key": "{{ lookup('ansible.builtin.env', 'AWS_SECRET_ACCESS_KEY') }}",
        "assume_role_arn": key_admin,
    }
    tasks = [
        task("role in R", key_id=key["arn"], principals=[ROLE], **credentials),
        task("account R, key by alias in K", key_id=key["alias"], principals=[bed.accounts["R"]], **credentials),
    ]
    run = run_playbook(play(*tasks), env=testbed_env, verbosity=3, diff=True).assert_ok()
    assert run.changed_tasks() == ["role in R", "account R, key by alias in K"]
    assert aws_writes(bed) == [("PutKeyPolicy", bed.accounts["K"], 200)] * 2
    stored = key_policy(bed)
    assert stored["Statement"][0] == original["Statement"][0]
    assert statement_by_sid(stored, ROLE_SID)["Principal"] == {"AWS": ROLE}
    assert statement_by_sid(stored, "MongoDBAtlasKeyAccess111111111111")["Principal"] == {"AWS": "arn:aws:iam::111111111111:root"}
    assert secret not in run.output
    assert secret not in json.dumps(run.results)

    bed.clear_logs()
    rerun = run_playbook(play(*tasks), env=testbed_env).assert_ok()
    assert rerun.changed_tasks() == []
    assert aws_writes(bed) == []


# -- only where needed ------------------------------------------------------------------------


def test_only_if_needed_leaves_a_delegating_key_policy_alone_and_grants_another_account(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    original = key_policy(bed)
    foreign = "arn:aws:iam::333333333333:role/atlas-kms"
    tasks = [
        task("same account", key_id=key["alias"], principals=[ROLE], only_if_needed=True),
        task("other account", key_id=key["alias"], principals=[foreign], only_if_needed=True),
    ]
    check = run_playbook(play(*tasks), env=testbed_env, check=True, diff=True).assert_ok()
    # The default key policy lets account R's IAM policies grant the key: no statement for R's role.
    same = check.task("same account")
    assert (same["changed"], same["statement_needed"], same["statement"]) == (False, False, None)
    assert same["key_arn"] == key["arn"]
    assert same["policy"] == normalize_policy(original)
    other = check.task("other account")
    assert (other["changed"], other["statement_needed"]) == (True, True)
    assert aws_writes(bed) == []

    run = run_playbook(play(*tasks), env=testbed_env).assert_ok()
    assert run.changed_tasks() == ["other account"]
    assert aws_writes(bed) == [("PutKeyPolicy", bed.accounts["R"], 200)]
    stored = key_policy(bed)
    assert statement_by_sid(stored, "MongoDBAtlasKeyAccessaws333333333333X2FatlasX2Dkms")["Principal"] == {"AWS": foreign}
    assert [statement for statement in stored["Statement"] if statement.get("Sid") == ROLE_SID] == []

    # The statement it added stays managed, also once the key policy would delegate otherwise.
    bed.clear_logs()
    rerun = run_playbook(play(*tasks), env=testbed_env).assert_ok()
    assert rerun.changed_tasks() == []
    assert rerun.task("other account")["statement_needed"] is True
    assert aws_writes(bed) == []


@pytest.mark.scenario("cross_account")
def test_only_if_needed_without_the_key_owner_warns_and_changes_nothing(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    tasks = [
        task("unread", key_id=key["arn"], principals=[ROLE], only_if_needed=True),
        task("alias of K", key_id=f"arn:aws:kms:us-east-1:{bed.accounts['K']}:{key['alias']}", principals=[ROLE], only_if_needed=True, ignore_errors=True),
        task("with the owner", key_id=key["arn"], principals=[ROLE], only_if_needed=True, assume_role_arn=bed.roles["key_admin"]["arn"]),
    ]
    run = run_playbook(play(*tasks), env=testbed_env)
    unread = run.task("unread")
    assert (unread["changed"], unread["statement_needed"], unread["key_arn"], unread["policy"]) == (False, None, key["arn"], None)
    assert f"The key policy of {key['arn']} (account 222222222222) was not checked" in unread["warnings"][0]
    assert "alias of another AWS account" in run.task("alias of K")["msg"]
    owner = run.task("with the owner")
    assert (owner["changed"], owner["statement_needed"]) == (True, True)
    assert aws_writes(bed) == [("PutKeyPolicy", bed.accounts["K"], 200)]


# -- transient faults are retried; others are reported ----------------------------------------


def test_throttling_and_server_errors_are_retried(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    bed.proxy.fail("DescribeKey", 429, count=1)
    bed.proxy.fail("GetKeyPolicy", 503, count=2)
    bed.proxy.fail("PutKeyPolicy", "throttling", count=2)
    result = run_playbook(play(task("grant", key_id=key["alias"], principals=[ROLE])), env=testbed_env).assert_ok().task("grant")
    assert result["changed"] is True
    log = bed.proxy.request_log()
    assert [(entry["operation"], entry["status"]) for entry in log if entry["fault"]] == [
        ("DescribeKey", 429),
        ("GetKeyPolicy", 503),
        ("GetKeyPolicy", 503),
        ("PutKeyPolicy", 400),
        ("PutKeyPolicy", 400),
    ]
    assert [entry["status"] for entry in log if entry["operation"] == "PutKeyPolicy" and not entry["fault"]] == [200]
    statement_by_sid(key_policy(bed), ROLE_SID)


def test_access_denied_is_reported_with_its_code(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    key = bed.keys["main"]
    original = key_policy(bed)
    bed.proxy.fail("PutKeyPolicy", "AccessDeniedException", count=1, message="User is not authorized to perform: kms:PutKeyPolicy")
    run = run_playbook(play(task("grant", ignore_errors=True, key_id=key["alias"], principals=[ROLE])), env=testbed_env)
    result = run.task("grant")
    assert run.failed_tasks() == ["grant"]
    assert result["msg"] == "AWS kms:PutKeyPolicy failed: AccessDeniedException: User is not authorized to perform: kms:PutKeyPolicy"
    assert result["aws_error"]["code"] == "AccessDeniedException"
    assert aws_writes(bed) == [("PutKeyPolicy", bed.accounts["R"], 400)]
    assert key_policy(bed) == original
