import pytest
from unit.fakes import Clock

from ansible_collections.cmk.atlas.plugins.module_utils._module import ModuleInputError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas import clusters as cl
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError, AtlasConnectionError

GROUP = "660000000000000000000012"


def raw_cluster(name, provider="NONE", state="IDLE", paused=False):
    body = {"name": name, "stateName": state, "paused": paused, "groupId": GROUP, "clusterType": "REPLICASET"}
    if provider is not None:
        body["encryptionAtRestProvider"] = provider
    return body


def compact(name, provider="NONE", state="IDLE", paused=False):
    return cl.normalize_cluster(raw_cluster(name, provider, state, paused))


# -- compact form and listing ---------------------------------------------------------------------


def test_normalize_cluster_reads_a_missing_provider_as_none():
    assert cl.normalize_cluster(raw_cluster("A", provider=None, state="UPDATING", paused=True)) == {
        "name": "A",
        "provider": "NONE",
        "state_name": "UPDATING",
        "paused": True,
    }


class FakeAtlas:
    """Scripted Atlas: clusters by name; ``call`` pops per-operation scripts (values or exceptions) first."""

    def __init__(self, clusters=(), ear=None, **scripts):
        self.clusters = {c["name"]: dict(c) for c in clusters}
        self.ear = ear if ear is not None else {"awsKms": {"enabled": True, "valid": True}}
        self.scripts = {name: list(items) for name, items in scripts.items()}
        self.calls = []
        # Name -> states a GET returns next, one per call; then IDLE.
        self.transitions = {}

    def paginate(self, operation_id, items_per_page=100, query=None, **path):
        self.calls.append((operation_id, None, dict(path, items_per_page=items_per_page)))
        return iter([dict(c) for c in self.clusters.values()])

    def call(self, operation_id, body=None, query=None, **path):
        self.calls.append((operation_id, body, path))
        script = self.scripts.get(operation_id)
        if script:
            item = script.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        if operation_id == "getGroupEncryptionAtRest":
            return self.ear
        cluster = self.clusters[path["clusterName"]]
        if operation_id == "updateGroupCluster":
            cluster["encryptionAtRestProvider"] = body["encryptionAtRestProvider"]
            cluster["stateName"] = "UPDATING"
            self.transitions.setdefault(cluster["name"], ["UPDATING"])
            return dict(cluster)
        if operation_id == "getGroupCluster":
            states = self.transitions.get(cluster["name"])
            cluster["stateName"] = states.pop(0) if states else "IDLE"
            return dict(cluster)
        raise AssertionError(operation_id)

    def operations(self):
        return [name for name, _body, _path in self.calls]


def test_list_clusters_pages_through_the_list_operation_at_the_largest_page_size():
    atlas = FakeAtlas([raw_cluster("A", "AWS"), raw_cluster("B")])
    assert cl.list_clusters(atlas, GROUP) == [compact("A", "AWS"), compact("B")]
    assert atlas.calls == [("listGroupClusters", None, {"groupId": GROUP, "items_per_page": 500})]
    assert cl.clusters_using(cl.list_clusters(atlas, GROUP)) == ["A"]
    assert cl.clusters_using(cl.list_clusters(atlas, GROUP), "NONE") == ["B"]


def test_update_provider_sends_only_the_provider():
    atlas = FakeAtlas([raw_cluster("A")])
    assert cl.update_provider(atlas, GROUP, "A", "AWS")["provider"] == "AWS"
    assert atlas.calls == [("updateGroupCluster", {"encryptionAtRestProvider": "AWS"}, {"groupId": GROUP, "clusterName": "A"})]


# -- the project check ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ear", "expected"),
    [
        ({"awsKms": {"enabled": True, "valid": True}}, None),
        ({}, "awsKms.enabled is false"),
        (None, "awsKms.enabled is false"),
        ({"awsKms": {"enabled": False, "valid": False}}, "awsKms.enabled is false"),
        ({"awsKms": {"enabled": True, "valid": False, "customerMasterKeyID": "k-1", "region": "US_EAST_1"}}, "(key k-1, region US_EAST_1)"),
        ({"awsKms": {"enabled": True}}, "awsKms.valid is false"),
    ],
)
def test_aws_kms_problem_names_what_is_wrong(ear, expected):
    problem = cl.aws_kms_problem(ear)
    if expected is None:
        assert problem is None
    else:
        assert expected in problem


def test_require_aws_kms_ready_points_to_the_encryption_at_rest_module():
    atlas = FakeAtlas(ear={"awsKms": {"enabled": False}})
    expected = r"Project 660000000000000000000012 has no AWS KMS .*cmk\.atlas\.encryption_at_rest.*Nothing was changed"
    with pytest.raises(cl.EncryptionAtRestNotReadyError, match=expected):
        cl.require_aws_kms_ready(atlas, GROUP)
    assert issubclass(cl.EncryptionAtRestNotReadyError, ModuleInputError)
    cl.require_aws_kms_ready(FakeAtlas(), GROUP)


# -- planning ------------------------------------------------------------------------------------------


def test_select_clusters_keeps_the_given_order_once_each():
    clusters = [compact("A"), compact("B"), compact("C")]
    assert [c["name"] for c in cl.select_clusters(clusters, ["C", "A", "C"])] == ["C", "A"]
    assert cl.select_clusters(clusters) == clusters


def test_select_clusters_lists_the_project_clusters_when_a_name_is_unknown():
    clusters = [compact("Orders"), compact("Archive")]
    with pytest.raises(cl.ClusterNotFoundError) as caught:
        cl.select_clusters(clusters, ["orders", "Nope", "Nope"], project_id=GROUP)
    assert str(caught.value) == (
        "Project 660000000000000000000012 has no cluster named orders, Nope. Its clusters are: Archive, Orders. "
        "Cluster names are case-sensitive. Nothing was changed."
    )
    with pytest.raises(cl.ClusterNotFoundError, match=r"Its clusters are: \(none\)"):
        cl.select_clusters([], ["A"])


def test_plan_changes_only_differing_running_clusters():
    clusters = [compact("A"), compact("B", "AWS"), compact("C", "AWS", paused=True), compact("D", provider=None)]
    plan = cl.plan_provider(clusters, "AWS")
    assert plan.to_change == ["A", "D"]
    assert plan.skipped_paused == []
    assert plan.to_wait == []
    assert cl.plan_provider(clusters, "NONE", paused_clusters="skip").to_change == ["B"]


def test_plan_fails_on_paused_clusters_that_need_the_change_unless_skipped():
    clusters = [compact("A"), compact("P", paused=True), compact("Q", "AWS", paused=True)]
    with pytest.raises(cl.PausedClustersError, match=r"these need encryptionAtRestProvider AWS: P\. Resume them first, or set paused_clusters: skip"):
        cl.plan_provider(clusters, "AWS")
    plan = cl.plan_provider(clusters, "AWS", paused_clusters="skip")
    assert (plan.to_change, plan.skipped_paused) == (["A"], ["P"])
    # Q is paused but already on AWS: nothing to do, nothing to report.
    assert cl.plan_provider(clusters, "AWS", names=["Q"]).skipped_paused == []


def test_plan_waits_for_clusters_already_on_the_provider_that_atlas_is_changing():
    clusters = [compact("A", "AWS", "UPDATING"), compact("B", "AWS", "REPAIRING"), compact("C", "AWS", "DELETING"), compact("D", "NONE", "UPDATING")]
    plan = cl.plan_provider(clusters, "AWS")
    assert plan.to_wait == ["A", "B"]
    assert plan.to_change == ["D"]


def test_plan_rejects_unknown_choices():
    with pytest.raises(ModuleInputError, match="provider 'AZURE'"):
        cl.plan_provider([], "AZURE")
    with pytest.raises(ModuleInputError, match="paused_clusters 'ignore'"):
        cl.plan_provider([], "AWS", paused_clusters="ignore")


def test_cluster_results_predict_check_mode_and_report_the_real_run():
    clusters = [compact("A"), compact("B", "AWS", "UPDATING"), compact("P", paused=True), compact("Q", "AWS")]
    plan = cl.plan_provider(clusters, "AWS", paused_clusters="skip")
    predicted = cl.cluster_results(plan, "AWS", predicted_state="IDLE")
    assert predicted == [
        {"name": "A", "provider_before": "NONE", "provider": "AWS", "state_name": "IDLE", "paused": False, "changed": True},
        {"name": "B", "provider_before": "AWS", "provider": "AWS", "state_name": "IDLE", "paused": False, "changed": False},
        {"name": "P", "provider_before": "NONE", "provider": "NONE", "state_name": "IDLE", "paused": True, "changed": False},
        {"name": "Q", "provider_before": "AWS", "provider": "AWS", "state_name": "IDLE", "paused": False, "changed": False},
    ]
    no_wait = cl.cluster_results(plan, "AWS", predicted_state="UPDATING")
    assert [entry["state_name"] for entry in no_wait] == ["UPDATING", "UPDATING", "IDLE", "IDLE"]
    real = cl.cluster_results(plan, "AWS", after={"A": compact("A", "AWS", "IDLE"), "B": compact("B", "AWS", "IDLE")})
    assert real == predicted
    assert cl.provider_map(real, "provider_before") == {"A": "NONE", "B": "AWS", "P": "NONE", "Q": "AWS"}
    assert cl.provider_map(real, "provider") == {"A": "AWS", "B": "AWS", "P": "NONE", "Q": "AWS"}


# -- applying and waiting --------------------------------------------------------------------------------


def test_apply_patches_then_polls_until_idle():
    atlas = FakeAtlas([raw_cluster("A"), raw_cluster("B"), raw_cluster("C", "AWS")])
    atlas.transitions = {"A": ["UPDATING", "UPDATING"], "B": ["UPDATING"]}
    clock = Clock()
    encryption = cl.ClusterEncryption(atlas, GROUP, sleep=clock.sleep, clock=clock)
    plan = cl.plan_provider(encryption.clusters(), "AWS")
    after = encryption.apply(plan, "AWS", wait_timeout=60, poll_interval=5)
    assert {name: (c["provider"], c["state_name"]) for name, c in after.items()} == {"A": ("AWS", "IDLE"), "B": ("AWS", "IDLE")}
    assert atlas.operations() == [
        "listGroupClusters",
        "updateGroupCluster",
        "updateGroupCluster",
        "getGroupCluster",
        "getGroupCluster",
        "getGroupCluster",
        "getGroupCluster",
        "getGroupCluster",
    ]
    # First poll: A and B; second: A and B (B now IDLE); third: only A.
    assert [path["clusterName"] for op, _b, path in atlas.calls if op == "getGroupCluster"] == ["A", "B", "A", "B", "A"]
    assert clock.sleeps == [5, 5, 5]


def test_apply_without_wait_returns_atlas_answers():
    atlas = FakeAtlas([raw_cluster("A")])
    encryption = cl.ClusterEncryption(atlas, GROUP, sleep=pytest.fail)
    after = encryption.apply(cl.plan_provider(encryption.clusters(), "AWS"), "AWS", wait=False)
    assert after["A"]["state_name"] == "UPDATING"
    assert "getGroupCluster" not in atlas.operations()


def test_apply_with_nothing_to_change_writes_nothing_and_does_not_sleep():
    atlas = FakeAtlas([raw_cluster("A", "AWS")])
    encryption = cl.ClusterEncryption(atlas, GROUP, sleep=pytest.fail)
    assert encryption.apply(cl.plan_provider(encryption.clusters(), "AWS"), "AWS") == {}
    assert atlas.operations() == ["listGroupClusters"]


def test_wait_also_covers_clusters_atlas_is_already_changing():
    atlas = FakeAtlas([raw_cluster("A", "AWS", "UPDATING")])
    clock = Clock()
    encryption = cl.ClusterEncryption(atlas, GROUP, sleep=clock.sleep, clock=clock)
    after = encryption.apply(cl.plan_provider(encryption.clusters(), "AWS"), "AWS", poll_interval=2)
    assert after["A"]["state_name"] == "IDLE"
    assert atlas.operations() == ["listGroupClusters", "getGroupCluster"]


def test_wait_does_not_take_an_old_provider_for_done():
    atlas = FakeAtlas([raw_cluster("A")])
    # Atlas accepted the change but a GET still shows the old provider, IDLE.
    atlas.scripts["getGroupCluster"] = [raw_cluster("A", "NONE", "IDLE")]
    atlas.transitions = {"A": []}
    clock = Clock()
    encryption = cl.ClusterEncryption(atlas, GROUP, sleep=clock.sleep, clock=clock)
    after = encryption.apply(cl.plan_provider(encryption.clusters(), "AWS"), "AWS", poll_interval=1)
    assert (after["A"]["provider"], after["A"]["state_name"]) == ("AWS", "IDLE")
    assert atlas.operations().count("getGroupCluster") == 2


def test_wait_is_bounded_and_names_the_clusters_still_updating():
    atlas = FakeAtlas([raw_cluster("A"), raw_cluster("B")])
    atlas.transitions = {"A": ["UPDATING"] * 100, "B": ["UPDATING"]}
    clock = Clock()
    encryption = cl.ClusterEncryption(atlas, GROUP, sleep=clock.sleep, clock=clock)
    with pytest.raises(cl.ClusterWaitTimeoutError) as caught:
        encryption.apply(cl.plan_provider(encryption.clusters(), "AWS"), "AWS", wait_timeout=25, poll_interval=10)
    assert caught.value.pending == ["A"]
    assert clock.sleeps == [10, 10, 5]  # the last poll is at the deadline
    assert clock.now == 25
    assert "after 25 s (wait_timeout): A (UPDATING). Atlas goes on with the change; run the task again" in str(caught.value)
    assert caught.value.clusters["B"]["state_name"] == "IDLE"


def conflict(name):
    return AtlasApiError(
        409,
        operation="updateGroupCluster",
        method="PATCH",
        path=f"/api/atlas/v2/groups/{GROUP}/clusters/{name}",
        error_code="CANNOT_UPDATE_PAUSED_CLUSTER",
        detail=f"Cannot update cluster {name} while it is paused or being paused.",
    )


def test_a_refused_update_stops_and_names_what_was_already_changed():
    atlas = FakeAtlas([raw_cluster("A"), raw_cluster("B"), raw_cluster("C")])
    atlas.scripts["updateGroupCluster"] = [raw_cluster("A", "AWS", "UPDATING"), conflict("B")]
    encryption = cl.ClusterEncryption(atlas, GROUP, sleep=pytest.fail)
    plan = cl.plan_provider(encryption.clusters(), "AWS")
    with pytest.raises(cl.ClusterUpdateError) as caught:
        encryption.apply(plan, "AWS")
    error = caught.value
    assert (error.name, error.changed, error.error.error_code) == ("B", ["A"], "CANNOT_UPDATE_PAUSED_CLUSTER")
    text = str(error)
    assert text.startswith("Atlas refused to set encryptionAtRestProvider AWS on cluster B: Atlas API updateGroupCluster")
    assert "busy with another change: resume it or wait until it is IDLE" in text
    assert text.endswith("Already changed in this run: A; running the task again continues with the rest.")
    assert atlas.operations().count("updateGroupCluster") == 2  # C was not tried
    results = cl.cluster_results(plan, "AWS", after=error.clusters, changed=error.changed)
    assert [(r["name"], r["provider"], r["changed"]) for r in results] == [("A", "AWS", True), ("B", "NONE", False), ("C", "NONE", False)]


def test_a_refused_first_update_says_nothing_was_changed():
    atlas = FakeAtlas([raw_cluster("A")])
    atlas.scripts["updateGroupCluster"] = [
        AtlasApiError(400, operation="updateGroupCluster", method="PATCH", path="/x", error_code="ENCRYPTION_AT_REST_PROVIDER_NOT_CONFIGURED")
    ]
    encryption = cl.ClusterEncryption(atlas, GROUP)
    with pytest.raises(cl.ClusterUpdateError, match=r"ENCRYPTION_AT_REST_PROVIDER_NOT_CONFIGURED\. No cluster was changed\.$"):
        encryption.apply(cl.plan_provider(encryption.clusters(), "AWS"), "AWS")


def test_a_lost_answer_says_the_change_may_have_happened():
    atlas = FakeAtlas([raw_cluster("A")])
    atlas.scripts["updateGroupCluster"] = [AtlasConnectionError("Atlas API updateGroupCluster (PATCH /x) timed out", operation="updateGroupCluster")]
    encryption = cl.ClusterEncryption(atlas, GROUP)
    with pytest.raises(cl.ClusterUpdateError) as caught:
        encryption.apply(cl.plan_provider(encryption.clusters(), "AWS"), "AWS")
    assert str(caught.value).endswith("Whether Atlas applied the change to A is unknown; running the task again finds out. No other cluster was changed.")
