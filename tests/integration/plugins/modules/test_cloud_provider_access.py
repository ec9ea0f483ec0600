"""cmk.atlas.cloud_provider_access through real ansible-playbook runs against the test bed."""

import json
import re

import pytest
from emulators.atlas.testing import AtlasClient

from ansible_collections.cmk.atlas.plugins.module_utils.policy.document import build_atlas_trust_policy

pytestmark = pytest.mark.integration

GROUP = "660000000000000000000001"  # project "empty" of the empty scenario
ATLAS_ACCOUNT_ARN = "arn:aws:iam::536727724300:root"
UNKNOWN = "(known after apply)"
MODULE = "cmk.atlas.cloud_provider_access"
HEX24 = re.compile(r"^[a-f0-9]{24}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ROLE_FIELDS = (
    "role_id",
    "atlas_aws_account_arn",
    "external_id",
    "iam_assumed_role_arn",
    "authorized_date",
    "created_date",
    "feature_usages",
    "authorized",
)


def play(*tasks):
    return [{"name": "cloud provider access", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": list(tasks)}]


def task(name, register=None, ignore_errors=False, **args):
    entry = {"name": name, MODULE: {"project_id": GROUP, **args}}
    if register:
        entry["register"] = register
    if ignore_errors:
        entry["ignore_errors"] = True
    return entry


def procedure(iam_role_arn, **ensure_args):
    """The two calls the enable procedure makes: ensure a role, then authorize it for the IAM role."""
    return play(
        task("ensure role", register="atlas_role", **ensure_args),
        task("authorize role", role_id="{{ atlas_role.role_id }}", iam_role_arn=iam_role_arn),
    )


def atlas_api(bed):
    return AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])


def api_create_role(bed):
    response = atlas_api(bed).post(f"/groups/{GROUP}/cloudProviderAccess", {"providerName": "AWS"})
    assert response.status_code == 200, response.text
    return response.json()


def api_authorize(bed, role_id, iam_role_arn):
    response = atlas_api(bed).patch(f"/groups/{GROUP}/cloudProviderAccess/{role_id}", {"providerName": "AWS", "iamAssumedRoleArn": iam_role_arn})
    assert response.status_code == 200, response.text
    return response.json()


def create_iam_role(bed, external_id, name="atlas-kms"):
    """The IAM role Atlas assumes, trusting Atlas with ``external_id`` (made straight in moto)."""
    trust = build_atlas_trust_policy(ATLAS_ACCOUNT_ARN, external_id)
    created = bed.aws_client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    return created["Role"]["Arn"]


def atlas_roles(bed):
    return bed.atlas.project_state(GROUP)["roles"]


def atlas_writes(bed):
    return [call for call in bed.write_calls() if call["system"] == "atlas" and call["status"] != 401]


def answers(bed):
    """(operation, status) of every Atlas request, without HTTP digest challenges (401 before the credentials)."""
    return [(entry["operation_id"], entry["status"]) for entry in bed.atlas.request_log() if entry["status"] != 401]


def role_fields(result):
    return {name: result[name] for name in ROLE_FIELDS}


# -- check mode, apply, re-run, diff ------------------------------------------------------------


def test_check_mode_on_an_empty_project_predicts_without_writing(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    plays = play(
        task("ensure role", register="atlas_role"),
        task("authorize role", role_id="{{ atlas_role.role_id }}", iam_role_arn="arn:aws:iam::111111111111:role/atlas-kms"),
        task("authorize a role not made yet", role_id="{{ atlas_role.role_id }}", iam_role_arn=UNKNOWN),
        task("deauthorize a role not made yet", role_id="{{ atlas_role.role_id }}", state="absent"),
    )
    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env, check=True, diff=True).assert_ok()

    ensure = run.task("ensure role")
    assert ensure["changed"] is True
    assert ensure["reused_by"] == "created"
    assert role_fields(ensure) == {
        "role_id": UNKNOWN,
        "atlas_aws_account_arn": UNKNOWN,
        "external_id": UNKNOWN,
        "iam_assumed_role_arn": None,
        "authorized_date": None,
        "created_date": UNKNOWN,
        "feature_usages": [],
        "authorized": False,
    }
    assert ensure["diff"]["before"] == {}
    assert ensure["diff"]["after"] == role_fields(ensure)

    authorize = run.task("authorize role")
    assert authorize["changed"] is True
    assert authorize["reused_by"] == "role_id"
    assert authorize["role_id"] == UNKNOWN
    assert authorize["iam_assumed_role_arn"] == "arn:aws:iam::111111111111:role/atlas-kms"
    assert authorize["authorized"] is True
    assert authorize["authorized_date"] == UNKNOWN
    assert authorize["diff"]["before"]["authorized"] is False
    assert authorize["diff"]["after"]["authorized"] is True

    assert run.task("authorize a role not made yet")["iam_assumed_role_arn"] == UNKNOWN
    assert run.task("deauthorize a role not made yet")["changed"] is True
    assert run.task("deauthorize a role not made yet")["deauthorized_role_ids"] == [UNKNOWN]
    assert bed.write_calls() == []
    assert atlas_roles(bed) == []

    # The real run does what check mode said, and its unknowns are now known.
    run = run_playbook(play(task("ensure role", register="atlas_role")), env=testbed_env).assert_ok()
    applied = run.task("ensure role")
    assert applied["changed"] is True
    assert applied["reused_by"] == "created"
    assert HEX24.match(applied["role_id"])
    assert UUID.match(applied["external_id"])
    assert applied["atlas_aws_account_arn"] == ATLAS_ACCOUNT_ARN
    assert {k: v for k, v in role_fields(applied).items() if role_fields(ensure)[k] != UNKNOWN} == {
        k: v for k, v in role_fields(ensure).items() if v != UNKNOWN
    }
    assert [role["roleId"] for role in atlas_roles(bed)] == [applied["role_id"]]


def test_apply_then_rerun_converges_with_no_writes(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    # First run of the procedure: no IAM role yet, so only the Atlas role.
    run = run_playbook(play(task("ensure role", register="atlas_role")), env=testbed_env, diff=True).assert_ok()
    created = run.task("ensure role")
    assert created["changed"] is True
    assert created["diff"]["before"] == {}
    assert created["diff"]["after"]["role_id"] == created["role_id"]
    assert '"external_id": "{}"'.format(created["external_id"]) in run.stdout  # the diff is shown

    iam_role_arn = create_iam_role(bed, created["external_id"])
    plays = procedure(iam_role_arn, external_id="{{ trusted_external_id }}")
    extra = {"trusted_external_id": created["external_id"]}

    # Check mode predicts the authorization exactly.
    bed.clear_logs()
    check = run_playbook(plays, env=testbed_env, check=True, diff=True, extra_vars=extra).assert_ok()
    assert bed.write_calls() == []
    predicted = check.task("authorize role")
    assert check.task("ensure role")["changed"] is False
    assert check.task("ensure role")["reused_by"] == "external_id"
    assert predicted["changed"] is True
    assert predicted["role_id"] == created["role_id"]
    assert predicted["authorized_date"] == UNKNOWN

    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env, diff=True, extra_vars=extra).assert_ok()
    assert run.changed_tasks() == ["authorize role"]
    authorized = run.task("authorize role")
    assert authorized["reused_by"] == "role_id"
    assert authorized["iam_assumed_role_arn"] == iam_role_arn
    assert authorized["authorized"] is True
    assert {k: v for k, v in role_fields(authorized).items() if k != "authorized_date"} == {
        k: v for k, v in role_fields(predicted).items() if k != "authorized_date"
    }
    assert authorized["diff"]["before"]["iam_assumed_role_arn"] is None
    assert authorized["diff"]["after"]["iam_assumed_role_arn"] == iam_role_arn
    assert [(c["operation"], c["status"]) for c in bed.write_calls()] == [("authorizeGroupCloudProviderAccessRole", 200)]

    # Converged: nothing changes, nothing is written, and -vvv shows no Atlas secret.
    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env, diff=True, extra_vars=extra, verbosity=3).assert_ok()
    assert run.changed_tasks() == []
    assert bed.write_calls() == []
    rerun = run.task("authorize role")
    assert rerun["diff"]["before"] == rerun["diff"]["after"]
    assert bed.api_key["private_key"] not in run.output
    assert len(atlas_roles(bed)) == 1


def test_reuse_rules_pick_existing_roles_without_writing(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    first = api_create_role(bed)
    second = api_create_role(bed)
    authorized = api_create_role(bed)
    iam_role_arn = create_iam_role(bed, authorized["atlasAssumedRoleExternalId"])
    api_authorize(bed, authorized["roleId"], iam_role_arn)
    plays = play(
        task("by role id", role_id=second["roleId"]),
        task("by iam role arn", iam_role_arn=iam_role_arn),
        task("by external id", external_id=second["atlasAssumedRoleExternalId"]),
        task("an unused role"),
    )
    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env).assert_ok()
    assert run.changed_tasks() == []
    assert bed.write_calls() == []
    assert (run.task("by role id")["reused_by"], run.task("by role id")["role_id"]) == ("role_id", second["roleId"])
    assert (run.task("by iam role arn")["reused_by"], run.task("by iam role arn")["role_id"]) == ("iam_role_arn", authorized["roleId"])
    assert (run.task("by external id")["reused_by"], run.task("by external id")["role_id"]) == ("external_id", second["roleId"])
    assert run.task("an unused role")["reused_by"] == "unused_role"
    assert run.task("an unused role")["role_id"] in (first["roleId"], second["roleId"])
    assert len(atlas_roles(bed)) == 3


def test_unused_authorized_role_moves_to_another_iam_role_and_says_so(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    atlas_role = api_create_role(bed)
    old_arn = create_iam_role(bed, atlas_role["atlasAssumedRoleExternalId"], name="atlas-kms-old")
    new_arn = create_iam_role(bed, atlas_role["atlasAssumedRoleExternalId"], name="atlas-kms-new")
    api_authorize(bed, atlas_role["roleId"], old_arn)
    bed.clear_logs()
    run = run_playbook(play(task("move", role_id=atlas_role["roleId"], iam_role_arn=new_arn)), env=testbed_env).assert_ok()
    moved = run.task("move")
    assert moved["changed"] is True
    assert moved["previous_iam_assumed_role_arn"] == old_arn
    assert moved["iam_assumed_role_arn"] == new_arn
    assert any("was authorized for" in warning for warning in moved["warnings"])
    assert [role["iamAssumedRoleArn"] for role in atlas_roles(bed)] == [new_arn]


# -- absent ---------------------------------------------------------------------------------------


def test_absent_deauthorizes_only_the_named_role(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    linked = api_create_role(bed)
    spare = api_create_role(bed)
    iam_role_arn = create_iam_role(bed, linked["atlasAssumedRoleExternalId"])
    api_authorize(bed, linked["roleId"], iam_role_arn)
    plays = play(task("remove", iam_role_arn=iam_role_arn, state="absent"))

    bed.clear_logs()
    check = run_playbook(plays, env=testbed_env, check=True, diff=True).assert_ok()
    predicted = check.task("remove")
    assert predicted["changed"] is True
    assert predicted["deauthorized_role_ids"] == [linked["roleId"]]
    assert predicted["diff"]["before"]["role_id"] == linked["roleId"]
    assert predicted["diff"]["before"]["iam_assumed_role_arn"] == iam_role_arn
    assert predicted["diff"]["after"] == {}
    assert bed.write_calls() == []

    run = run_playbook(plays, env=testbed_env, diff=True).assert_ok()
    assert run.task("remove")["changed"] is True
    assert run.task("remove")["deauthorized_role_ids"] == [linked["roleId"]]
    assert [role["roleId"] for role in atlas_roles(bed)] == [spare["roleId"]]
    assert [c["operation"] for c in atlas_writes(bed)] == ["deauthorizeGroupCloudProviderAccessRole"]

    bed.clear_logs()
    again = run_playbook(plays, env=testbed_env).assert_ok()
    assert again.task("remove")["changed"] is False
    assert again.task("remove")["deauthorized_role_ids"] == []
    assert bed.write_calls() == []


def test_a_role_encryption_at_rest_uses_is_never_taken_away(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    atlas_role = api_create_role(bed)
    iam_role_arn = create_iam_role(bed, atlas_role["atlasAssumedRoleExternalId"])
    api_authorize(bed, atlas_role["roleId"], iam_role_arn)
    bed.atlas.set_encryption_at_rest(
        GROUP, {"enabled": True, "customerMasterKeyID": bed.keys["main"]["key_id"], "region": "US_EAST_1", "roleId": atlas_role["roleId"]}
    )
    other_arn = create_iam_role(bed, atlas_role["atlasAssumedRoleExternalId"], name="atlas-kms-other")
    plays = play(
        task("keep", register="kept", iam_role_arn=iam_role_arn),
        task("deauthorize", ignore_errors=True, role_id=atlas_role["roleId"], state="absent"),
        task("deauthorize by arn", ignore_errors=True, iam_role_arn=iam_role_arn, state="absent"),
        task("move", ignore_errors=True, role_id=atlas_role["roleId"], iam_role_arn=other_arn),
    )
    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env)
    assert run.task("keep")["changed"] is False
    assert run.task("keep")["feature_usages"] == [{"feature_type": "ENCRYPTION_AT_REST", "feature_id": None}]
    assert run.failed_tasks() == ["deauthorize", "deauthorize by arn", "move"]
    for name in ("deauthorize", "deauthorize by arn"):
        assert f"Atlas role {atlas_role['roleId']} is used by ENCRYPTION_AT_REST; deauthorizing it" in run.task(name)["msg"]
    assert "used by ENCRYPTION_AT_REST; authorizing it for " + other_arn in run.task("move")["msg"]
    assert bed.write_calls() == []
    assert atlas_roles(bed)[0]["iamAssumedRoleArn"] == iam_role_arn


# -- bad input ------------------------------------------------------------------------------------

BAD_INPUTS = [
    ("project id not hex", {"project_id": "my-project"}, "project_id 'my-project' is not an Atlas project id; expected 24 hexadecimal digits"),
    (
        "role id is an arn",
        {"role_id": "arn:aws:iam::111111111111:role/atlas-kms"},
        "role_id 'arn:aws:iam::111111111111:role/atlas-kms' is not an Atlas cloud provider access role id",
    ),
    (
        "iam role arn of a user",
        {"iam_role_arn": "arn:aws:iam::111111111111:user/atlas"},
        "iam_role_arn 'arn:aws:iam::111111111111:user/atlas' is not an IAM role ARN",
    ),
    ("iam role arn without account", {"iam_role_arn": "arn:aws:iam:::role/atlas"}, "is not an IAM role ARN; expected arn:aws:iam::ACCOUNT:role/NAME"),
    ("external id too short", {"external_id": "x"}, "external_id 'x' is not an external id"),
    ("negative timeout", {"authorize_timeout": -1}, "authorize_timeout is -1; it must be 0"),
    ("absent without a role", {"state": "absent"}, "state=absent needs role_id, iam_role_arn or external_id"),
    ("placeholder outside check mode", {"role_id": UNKNOWN}, "role_id is '(known after apply)': it comes from an earlier task that ran in check mode"),
    ("role not in project", {"role_id": "0123456789abcdef01234567"}, "role_id 0123456789abcdef01234567 is not an AWS cloud provider access role of project"),
    (
        "external id of no role",
        {"iam_role_arn": "arn:aws:iam::111111111111:role/atlas-kms", "external_id": "3c2f4a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"},
        "external_id 3c2f4a1e-5b6d-4e7f-8a9b-0c1d2e3f4a5b belongs to no AWS cloud provider access role of the project",
    ),
    ("unknown project", {"project_id": "0123456789abcdef01234567"}, "HTTP 404 GROUP_NOT_FOUND"),
    ("bad state", {"state": "gone"}, "value of state must be one of: present, absent"),
]


def test_bad_inputs_fail_clearly_and_write_nothing(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    existing = api_create_role(bed)
    tasks = [task(name, ignore_errors=True, **args) for name, args, _message in BAD_INPUTS]
    bed.clear_logs()
    run = run_playbook(play(*tasks), env=testbed_env)
    assert run.failed_tasks() == [name for name, _args, _message in BAD_INPUTS]
    for name, _args, message in BAD_INPUTS:
        assert message in run.task(name)["msg"], name
    assert bed.write_calls() == []
    assert [role["roleId"] for role in atlas_roles(bed)] == [existing["roleId"]]


# -- faults ---------------------------------------------------------------------------------------


def test_rate_limits_and_unavailability_are_retried(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    bed.atlas.inject_fault("listGroupCloudProviderAccess", status=429, count=1, retry_after=1)
    bed.atlas.inject_fault("createGroupCloudProviderAccess", status=503, count=1)
    bed.atlas.inject_fault("createGroupCloudProviderAccess", status=429, count=1, retry_after=1)
    run = run_playbook(play(task("ensure role")), env=testbed_env).assert_ok()
    created = run.task("ensure role")
    assert created["changed"] is True
    assert len(atlas_roles(bed)) == 1
    assert answers(bed) == [
        ("listGroupCloudProviderAccess", 429),
        ("listGroupCloudProviderAccess", 200),
        ("createGroupCloudProviderAccess", 503),
        ("createGroupCloudProviderAccess", 429),
        ("createGroupCloudProviderAccess", 200),
    ]

    iam_role_arn = create_iam_role(bed, created["external_id"])
    bed.clear_logs()
    bed.atlas.inject_fault("authorizeGroupCloudProviderAccessRole", status=429, count=1, retry_after=1)
    bed.atlas.inject_fault("authorizeGroupCloudProviderAccessRole", status=503, count=1)
    run = run_playbook(play(task("authorize", role_id=created["role_id"], iam_role_arn=iam_role_arn)), env=testbed_env).assert_ok()
    assert run.task("authorize")["authorized"] is True
    assert [(c["operation"], c["status"]) for c in atlas_writes(bed)] == [
        ("authorizeGroupCloudProviderAccessRole", 429),
        ("authorizeGroupCloudProviderAccessRole", 503),
        ("authorizeGroupCloudProviderAccessRole", 200),
    ]


def test_authorize_waits_out_iam_propagation(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    atlas_role = api_create_role(bed)
    bed.atlas.set_propagation_delay(5)
    iam_role_arn = create_iam_role(bed, atlas_role["atlasAssumedRoleExternalId"])
    bed.clear_logs()
    run = run_playbook(play(task("authorize", role_id=atlas_role["roleId"], iam_role_arn=iam_role_arn)), env=testbed_env).assert_ok()
    assert run.task("authorize")["authorized"] is True
    tries = [(entry["status"], entry["error_code"]) for entry in bed.atlas.request_log() if entry["operation_id"] == "authorizeGroupCloudProviderAccessRole"]
    assert tries[0] == (400, "CANNOT_ASSUME_ROLE")
    assert tries[-1] == (200, None)
    assert set(tries[:-1]) == {(400, "CANNOT_ASSUME_ROLE")}


def test_authorize_gives_up_saying_what_the_trust_policy_must_hold(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    atlas_role = api_create_role(bed)
    iam_role_arn = create_iam_role(bed, "4d3e2f1a-0000-4000-8000-000000000000")  # trusts another external id
    bed.clear_logs()
    run = run_playbook(play(task("authorize", role_id=atlas_role["roleId"], iam_role_arn=iam_role_arn, authorize_timeout=3)), env=testbed_env)
    failed = run.task("authorize")
    assert run.failed_tasks() == ["authorize"]
    external_id = atlas_role["atlasAssumedRoleExternalId"]
    assert f"The trust policy of {iam_role_arn} must allow the principal {ATLAS_ACCOUNT_ARN} to call sts:AssumeRole" in failed["msg"]
    assert f'{{"StringEquals": {{"sts:ExternalId": "{external_id}"}}}}' in failed["msg"]
    assert failed["atlas_error"]["error_code"] == "CANNOT_ASSUME_ROLE"
    assert failed["role_id"] == atlas_role["roleId"]
    assert atlas_roles(bed)[0]["authorized"] is False
    assert {c["status"] for c in atlas_writes(bed)} == {400}


def test_a_crash_between_create_and_authorize_leaves_one_role_after_the_rerun(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    iam_role_arn = "arn:aws:iam::111111111111:role/atlas-kms"
    plays = play(task("link", iam_role_arn=iam_role_arn, retries=1))
    # Both tries of the authorization fail: the run stops after the role was created.
    bed.atlas.inject_fault("authorizeGroupCloudProviderAccessRole", status=503, count=2)
    crashed = run_playbook(plays, env=testbed_env)
    assert crashed.failed_tasks() == ["link"]
    failed = crashed.task("link")
    assert "HTTP 503" in failed["msg"]
    assert HEX24.match(failed["role_id"])
    assert [(role["roleId"], role["authorized"]) for role in atlas_roles(bed)] == [(failed["role_id"], False)]

    # The IAM role now trusts the role the failure reported; the same task again finishes the job.
    create_iam_role(bed, failed["external_id"])
    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env).assert_ok()
    linked = run.task("link")
    assert linked["reused_by"] == "unused_role"
    assert linked["role_id"] == failed["role_id"]
    assert [c["operation"] for c in atlas_writes(bed)] == ["authorizeGroupCloudProviderAccessRole"]
    assert [(role["roleId"], role["authorized"], role["iamAssumedRoleArn"]) for role in atlas_roles(bed)] == [(failed["role_id"], True, iam_role_arn)]


def test_without_authorizing_the_first_call_finds_the_authorized_role_on_reruns(run_playbook, clean_testbed, testbed_env):
    """A project whose roles are all authorized: the IAM role ARN, not an unused role, leads back to the role."""
    bed = clean_testbed
    iam_role_arn = "arn:aws:iam::111111111111:role/atlas-kms"
    plays = play(
        task("ensure role", register="atlas_role", iam_role_arn=iam_role_arn, authorize=False),
        task("authorize role", role_id="{{ atlas_role.role_id }}", iam_role_arn=iam_role_arn),
    )
    run = run_playbook(play(plays[0]["tasks"][0]), env=testbed_env).assert_ok()
    created = run.task("ensure role")
    assert (created["changed"], created["reused_by"], created["authorized"]) == (True, "created", False)
    assert [c["operation"] for c in atlas_writes(bed)] == ["createGroupCloudProviderAccess"]
    create_iam_role(bed, created["external_id"])

    run = run_playbook(plays, env=testbed_env).assert_ok()
    assert run.changed_tasks() == ["authorize role"]
    assert run.task("ensure role")["reused_by"] == "unused_role"

    bed.clear_logs()
    for check in (True, False):
        run = run_playbook(plays, env=testbed_env, check=check).assert_ok()
        assert run.changed_tasks() == []
        assert run.task("ensure role")["reused_by"] == "iam_role_arn"
        assert run.task("ensure role")["role_id"] == created["role_id"]
    assert atlas_writes(bed) == []
    assert [role["roleId"] for role in atlas_roles(bed)] == [created["role_id"]]
