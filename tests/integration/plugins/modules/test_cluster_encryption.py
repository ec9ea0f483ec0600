"""cmk.atlas.cluster_encryption through real ansible-playbook runs against the test bed."""

import pytest

pytestmark = pytest.mark.integration

LEGACY = "660000000000000000000012"  # demo: credentials-based encryption at rest (enabled, valid); Orders, paused Archive, both AWS
PLAIN = "660000000000000000000011"  # demo: no encryption at rest; Cluster0 on NONE
EMPTY = "660000000000000000000001"  # empty: no encryption at rest, no clusters
MODULE = "cmk.atlas.cluster_encryption"
# Small enough for the test bed's 0.5 s transitions.
FAST = {"poll_interval": 0.1, "wait_timeout": 60}


def play(*tasks):
    return [{"name": "cluster encryption", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": list(tasks)}]


def task(name, project_id=LEGACY, ignore_errors=False, **args):
    entry = {"name": name, MODULE: {"project_id": project_id, **args}}
    if ignore_errors:
        entry["ignore_errors"] = True
    return entry


def atlas_writes(bed):
    """Atlas writes with their outcome, without HTTP digest challenges (401 before the credentials)."""
    return [(call["operation"], call["path"].rsplit("/", 1)[-1], call["status"]) for call in bed.write_calls() if call["status"] != 401]


def answers(bed):
    """(operation, status) of every Atlas request, without HTTP digest challenges."""
    return [(entry["operation_id"], entry["status"]) for entry in bed.atlas.request_log() if entry["status"] != 401]


def clusters_state(bed, group=LEGACY):
    return {name: (c["encryptionAtRestProvider"], c["stateName"], c["paused"]) for name, c in bed.atlas.project_state(group)["clusters"].items()}


def add_clusters(bed):
    """Two clusters without customer key management beside Orders and Archive: Payments running, Reports paused."""
    bed.atlas.add_cluster(LEGACY, "Payments")
    bed.atlas.add_cluster(LEGACY, "Reports", paused=True)


def failed(run, name):
    """The result of task ``name``, which must have failed."""
    assert name in run.failed_tasks(), (name, run.output[-3000:])
    return run.task(name)


def entry(name, before, after, state="IDLE", paused=False, changed=False):
    return {"name": name, "provider_before": before, "provider": after, "state_name": state, "paused": paused, "changed": changed}


# -- check mode, apply, re-run, diff -------------------------------------------------------------


@pytest.mark.scenario("demo")
def test_all_clusters_paused_refusal_then_check_apply_and_rerun(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    add_clusters(bed)

    # Default paused_clusters=fail: the paused cluster that needs the change stops everything.
    bed.clear_logs()
    run = run_playbook(play(task("encrypt all", all_clusters=True, **FAST)), env=testbed_env)
    assert run.rc != 0
    refused = failed(run, "encrypt all")
    assert "Atlas does not change paused clusters, and these need encryptionAtRestProvider AWS: Reports." in refused["msg"]
    assert "paused_clusters: skip" in refused["msg"]
    assert bed.write_calls() == []

    plays = play(task("encrypt all", all_clusters=True, paused_clusters="skip", **FAST))
    expected = [
        entry("Archive", "AWS", "AWS", paused=True),
        entry("Orders", "AWS", "AWS"),
        entry("Payments", "NONE", "AWS", changed=True),
        entry("Reports", "NONE", "NONE", paused=True),
    ]

    # Check mode predicts the change exactly and writes nothing.
    bed.clear_logs()
    check = run_playbook(plays, env=testbed_env, check=True, diff=True).assert_ok()
    predicted = check.task("encrypt all")
    assert predicted["changed"] is True
    assert predicted["clusters"] == expected
    assert predicted["skipped_paused"] == ["Reports"]
    assert any("Paused clusters left without encryptionAtRestProvider AWS" in w and "Reports" in w for w in predicted["warnings"])
    assert predicted["diff"]["before"] == {"Archive": "AWS", "Orders": "AWS", "Payments": "NONE", "Reports": "NONE"}
    assert predicted["diff"]["after"] == {"Archive": "AWS", "Orders": "AWS", "Payments": "AWS", "Reports": "NONE"}
    assert bed.write_calls() == []
    assert clusters_state(bed)["Payments"] == ("NONE", "IDLE", False)

    # The real run does what check mode said: one PATCH, then polls until Payments is IDLE.
    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env, diff=True).assert_ok()
    applied = run.task("encrypt all")
    assert applied["changed"] is True
    assert applied["clusters"] == predicted["clusters"]
    assert applied["skipped_paused"] == ["Reports"]
    assert applied["diff"] == predicted["diff"]
    assert "encryptionAtRestProvider of the clusters of project 660000000000000000000012" in run.stdout
    assert '"Payments": "AWS"' in run.stdout  # the diff is shown
    assert atlas_writes(bed) == [("updateGroupCluster", "Payments", 200)]
    assert clusters_state(bed) == {
        "Orders": ("AWS", "IDLE", False),
        "Archive": ("AWS", "IDLE", True),
        "Payments": ("AWS", "IDLE", False),
        "Reports": ("NONE", "IDLE", True),
    }

    # Converged: nothing changes and nothing is written; -vvv shows no Atlas secret.
    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env, diff=True, verbosity=3).assert_ok()
    rerun = run.task("encrypt all")
    assert run.changed_tasks() == []
    assert bed.write_calls() == []
    assert rerun["clusters"] == [{**item, "changed": False, "provider_before": item["provider"]} for item in expected]
    assert rerun["diff"]["before"] == rerun["diff"]["after"]
    assert bed.api_key["private_key"] not in run.output


@pytest.mark.scenario("demo")
def test_wait_polls_until_idle_and_provider_none_turns_it_off(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    plays = play(task("turn off", clusters=["Orders"], provider="NONE", **FAST))

    bed.clear_logs()
    check = run_playbook(plays, env=testbed_env, check=True).assert_ok()
    assert check.task("turn off")["clusters"] == [entry("Orders", "AWS", "NONE", changed=True)]
    assert bed.write_calls() == []

    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env).assert_ok()
    result = run.task("turn off")
    assert result["changed"] is True
    assert result["clusters"] == check.task("turn off")["clusters"]
    # NONE needs no project check; the PATCH is followed by GET polls until the cluster is IDLE.
    log = answers(bed)
    assert ("getGroupEncryptionAtRest", 200) not in log
    operations = [operation for operation, _status in log]
    assert operations[:2] == ["listGroupClusters", "updateGroupCluster"]
    assert set(operations[2:]) == {"getGroupCluster"}
    assert len(operations[2:]) >= 2  # at least one poll saw UPDATING before IDLE (0.5 s transition, 0.1 s polls)
    assert clusters_state(bed)["Orders"] == ("NONE", "IDLE", False)

    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env).assert_ok()
    assert run.changed_tasks() == []
    assert bed.write_calls() == []

    # Back to AWS without waiting: Atlas's answer (UPDATING) is returned, no poll is made.
    bed.clear_logs()
    run = run_playbook(play(task("turn on", clusters=["Orders"], wait=False)), env=testbed_env).assert_ok()
    assert run.task("turn on")["clusters"] == [entry("Orders", "NONE", "AWS", state="UPDATING", changed=True)]
    assert "getGroupCluster" not in [operation for operation, _status in answers(bed)]
    assert atlas_writes(bed) == [("updateGroupCluster", "Orders", 200)]


@pytest.mark.scenario("demo")
def test_check_mode_without_wait_predicts_updating_and_paused_named_cluster_is_refused(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    add_clusters(bed)
    plays = play(task("encrypt", clusters=["Payments", "Orders"], wait=False))
    bed.clear_logs()
    check = run_playbook(plays, env=testbed_env, check=True).assert_ok()
    assert check.task("encrypt")["clusters"] == [entry("Payments", "NONE", "AWS", state="UPDATING", changed=True), entry("Orders", "AWS", "AWS")]
    run = run_playbook(plays, env=testbed_env).assert_ok()
    assert run.task("encrypt")["clusters"] == check.task("encrypt")["clusters"]

    # A paused cluster named explicitly is refused as well; a paused one already on the provider is fine.
    bed.clear_logs()
    run = run_playbook(
        play(
            task("paused needs change", clusters=["Reports"], ignore_errors=True),
            task("paused already on AWS", clusters=["Archive"]),
        ),
        env=testbed_env,
    )
    assert "these need encryptionAtRestProvider AWS: Reports" in failed(run, "paused needs change")["msg"]
    assert run.task("paused already on AWS")["changed"] is False
    assert run.task("paused already on AWS")["clusters"] == [entry("Archive", "AWS", "AWS", paused=True)]
    assert bed.write_calls() == []


# -- refusals before any write ----------------------------------------------------------------------


@pytest.mark.scenario("demo")
def test_project_without_usable_encryption_at_rest_is_refused(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    add_clusters(bed)
    # Atlas can no longer use the key through the legacy user: encryption at rest stays enabled, valid turns false.
    bed.aws_client("iam").delete_user_policy(UserName="atlas-kms-legacy", PolicyName="atlas-kms")
    plays = play(
        task("no encryption at rest", project_id=PLAIN, all_clusters=True, ignore_errors=True),
        task("not valid", clusters=["Payments"], ignore_errors=True),
        task("NONE needs no project check", project_id=PLAIN, all_clusters=True, provider="NONE"),
    )
    for check in (True, False):
        bed.clear_logs()
        run = run_playbook(plays, env=testbed_env, check=check)
        missing = failed(run, "no encryption at rest")
        assert missing["msg"].startswith(f"Project {PLAIN} has no AWS KMS encryption at rest enabled (awsKms.enabled is false)")
        assert "cmk.atlas.encryption_at_rest" in missing["msg"]
        invalid = failed(run, "not valid")
        assert "Atlas reports it is not valid (awsKms.valid is false)" in invalid["msg"]
        assert "Nothing was changed." in invalid["msg"]
        assert run.task("NONE needs no project check")["changed"] is False
        assert bed.write_calls() == []
    assert clusters_state(bed, PLAIN)["Cluster0"] == ("NONE", "IDLE", False)
    assert clusters_state(bed)["Payments"] == ("NONE", "IDLE", False)


def test_empty_project_without_encryption_at_rest_is_refused(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    bed.atlas.add_cluster(EMPTY, "Cluster0")
    bed.clear_logs()
    run = run_playbook(play(task("encrypt", project_id=EMPTY, clusters=["Cluster0"], ignore_errors=True)), env=testbed_env)
    result = failed(run, "encrypt")
    assert "has no AWS KMS encryption at rest enabled" in result["msg"]
    assert answers(bed) == [("getGroupEncryptionAtRest", 200)]
    assert bed.write_calls() == []


@pytest.mark.scenario("demo")
def test_pending_encryption_at_rest_skips_the_project_check_only_in_check_mode(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    plays = play(task("encrypt", project_id=PLAIN, clusters=["Cluster0"], encryption_at_rest_pending=True, ignore_errors=True, **FAST))
    bed.clear_logs()
    run = run_playbook(plays, env=testbed_env, check=True, diff=True).assert_ok()
    predicted = run.task("encrypt")
    assert predicted["changed"] is True
    assert predicted["clusters"] == [entry("Cluster0", "NONE", "AWS", changed=True)]
    assert answers(bed) == [("listGroupClusters", 200)]
    # The real run checks the project all the same, and refuses before any change.
    run = run_playbook(plays, env=testbed_env)
    assert "has no AWS KMS encryption at rest enabled" in failed(run, "encrypt")["msg"]
    assert bed.write_calls() == []
    assert clusters_state(bed, PLAIN)["Cluster0"] == ("NONE", "IDLE", False)


@pytest.mark.scenario("demo")
def test_unknown_cluster_name_is_refused_listing_the_project_clusters(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    bed.clear_logs()
    run = run_playbook(play(task("encrypt", clusters=["Orders", "orders", "Missing"], ignore_errors=True)), env=testbed_env)
    result = failed(run, "encrypt")
    assert result["msg"] == (
        f"Project {LEGACY} has no cluster named orders, Missing. Its clusters are: Archive, Orders. Cluster names are case-sensitive. Nothing was changed."
    )
    assert bed.write_calls() == []


@pytest.mark.scenario("demo")
def test_bad_inputs_fail_clearly_without_calling_atlas(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    cases = {
        "bad project id": ({"project_id": "not-a-project", "all_clusters": True}, "project_id 'not-a-project' is not an Atlas project id"),
        "both": ({"clusters": ["Orders"], "all_clusters": True}, "clusters and all_clusters: true exclude each other"),
        "neither": ({}, "Name the clusters to change in clusters, or set all_clusters: true"),
        "all_clusters false": ({"all_clusters": False}, "Name the clusters to change in clusters, or set all_clusters: true"),
        "empty list": ({"clusters": []}, "clusters must list cluster names"),
        "blank name": ({"clusters": ["Orders", " "]}, "clusters must list cluster names"),
        "bad provider": ({"clusters": ["Orders"], "provider": "AZURE"}, "value of provider must be one of: AWS, NONE, got: AZURE"),
        "bad paused policy": ({"clusters": ["Orders"], "paused_clusters": "resume"}, "value of paused_clusters must be one of: fail, skip"),
        "zero timeout": ({"clusters": ["Orders"], "wait_timeout": 0}, "wait_timeout is 0; it must be a positive number of seconds"),
        "zero interval": ({"clusters": ["Orders"], "poll_interval": 0}, "poll_interval is 0.0; it must be a positive number of seconds"),
    }
    tasks = [task(name, ignore_errors=True, **args) for name, (args, _message) in cases.items()]
    bed.clear_logs()
    run = run_playbook(play(*tasks), env=testbed_env)
    for name, (_args, message) in cases.items():
        result = failed(run, name)
        assert message in result["msg"], (name, result["msg"])
    assert bed.atlas.request_log() == []


# -- faults ------------------------------------------------------------------------------------------


@pytest.mark.scenario("demo")
def test_rate_limits_and_unavailability_are_retried(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    add_clusters(bed)
    bed.atlas.inject_fault("updateGroupCluster", status=503, count=1)
    bed.atlas.inject_fault("getGroupCluster", status=429, count=2, retry_after=0)
    bed.clear_logs()
    run = run_playbook(play(task("encrypt", clusters=["Payments"], **FAST)), env=testbed_env).assert_ok()
    assert run.task("encrypt")["clusters"] == [entry("Payments", "NONE", "AWS", changed=True)]
    log = answers(bed)
    assert [status for operation, status in log if operation == "updateGroupCluster"] == [503, 200]
    assert [status for operation, status in log if operation == "getGroupCluster"][:3] == [429, 429, 200]
    assert clusters_state(bed)["Payments"] == ("AWS", "IDLE", False)


@pytest.mark.scenario("demo")
def test_a_refused_update_is_reported_with_the_cluster_and_atlas_error(run_playbook, clean_testbed, testbed_env):
    bed = clean_testbed
    add_clusters(bed)
    bed.atlas.inject_fault("updateGroupCluster", status=409, count=1, error_code="CANNOT_UPDATE_PAUSED_CLUSTER")
    bed.clear_logs()
    run = run_playbook(play(task("encrypt", clusters=["Payments"], ignore_errors=True, **FAST)), env=testbed_env)
    result = failed(run, "encrypt")
    assert result["changed"] is False
    assert result["msg"].startswith("Atlas refused to set encryptionAtRestProvider AWS on cluster Payments: Atlas API updateGroupCluster")
    assert "HTTP 409 CANNOT_UPDATE_PAUSED_CLUSTER" in result["msg"]
    assert result["msg"].endswith("No cluster was changed.")
    assert result["atlas_error"]["error_code"] == "CANNOT_UPDATE_PAUSED_CLUSTER"
    assert result["clusters"] == [entry("Payments", "NONE", "NONE")]
    assert clusters_state(bed)["Payments"] == ("NONE", "IDLE", False)


@pytest.mark.scenario("demo")
def test_wait_timeout_names_the_clusters_still_updating(run_playbook, clean_testbed, testbed_env, monkeypatch):
    bed = clean_testbed
    add_clusters(bed)
    # Longer than wait_timeout, so the rolling update outlasts the wait (restored after the test).
    monkeypatch.setattr(bed.atlas, "cluster_transition_seconds", 30.0)
    bed.clear_logs()
    run = run_playbook(play(task("encrypt", clusters=["Payments", "Orders"], wait_timeout=1, poll_interval=0.3, ignore_errors=True)), env=testbed_env)
    result = failed(run, "encrypt")
    assert result["changed"] is True
    assert result["still_updating"] == ["Payments"]
    assert "were not IDLE with encryptionAtRestProvider AWS after 1 s (wait_timeout): Payments (UPDATING)" in result["msg"]
    assert result["clusters"] == [entry("Payments", "NONE", "AWS", state="UPDATING", changed=True), entry("Orders", "AWS", "AWS")]
    assert atlas_writes(bed) == [("updateGroupCluster", "Payments", 200)]

    # Running it again sends no write and waits for the update still going on.
    bed.clear_logs()
    run = run_playbook(play(task("encrypt", clusters=["Payments", "Orders"], wait_timeout=1, poll_interval=0.3, ignore_errors=True)), env=testbed_env)
    again = failed(run, "encrypt")
    assert again["changed"] is False
    assert again["still_updating"] == ["Payments"]
    assert bed.write_calls() == []
