"""The encryption-at-rest private endpoint calls and their waits, against a scripted Atlas and a fake clock."""

import pytest
from unit.fakes import Clock

from ansible_collections.cmk.atlas.plugins.module_utils.atlas import private_endpoints as pe


class ScriptedAtlas:
    """Answers each list with the next of ``pages`` (the last one repeats); records the calls."""

    def __init__(self, pages, created=None):
        self.pages = list(pages)
        self.created = created
        self.calls = []

    def paginate(self, operation, **path):
        self.calls.append(operation)
        return self.pages.pop(0) if len(self.pages) > 1 else self.pages[0]

    def call(self, operation, body=None, **path):
        self.calls.append((operation, body, path))
        return self.created


def raw(endpoint_id, status, region="EU_WEST_2", error=None):
    found = {"id": endpoint_id, "regionName": region, "status": status, "cloudProvider": "AWS"}
    if error:
        found["errorMessage"] = error
    return found


def api(atlas, clock):
    return pe.PrivateEndpoints(atlas, "p1", sleep=clock.sleep, clock=clock)


def test_normalize_keeps_atlas_s_error_message():
    assert pe.normalize_endpoint(raw("e1", "FAILED", error="boom")) == {"id": "e1", "region_name": "EU_WEST_2", "status": "FAILED", "error_message": "boom"}


def test_create_sends_the_provider_and_the_region_in_atlas_form():
    atlas = ScriptedAtlas([[]], created=raw("e1", "INITIATING"))
    created = api(atlas, Clock()).create("EU_WEST_2")
    assert created["status"] == "INITIATING"
    assert atlas.calls == [
        ("createGroupEncryptionAtRestPrivateEndpoint", {"cloudProvider": "AWS", "regionName": "EU_WEST_2"}, {"groupId": "p1", "cloudProvider": "AWS"})
    ]


def test_wait_active_takes_the_first_answer_then_reads_at_one_then_every_two_seconds():
    clock = Clock()
    atlas = ScriptedAtlas([[raw("e1", "INITIATING")], [raw("e1", "INITIATING")], [raw("e1", "ACTIVE")]])
    listed = api(atlas, clock).wait_active(["e1"], 60, first=[pe.normalize_endpoint(raw("e1", "INITIATING"))])
    assert listed[0]["status"] == "ACTIVE"
    assert clock.sleeps == [1.0, 2.0, 2.0]


def test_wait_active_reports_a_failed_endpoint_at_once_with_its_message():
    clock = Clock()
    atlas = ScriptedAtlas([[raw("e1", "FAILED", error="Quota exceeded for VPC endpoints")]])
    with pytest.raises(pe.EndpointFailedError, match="e1 in EU_WEST_2 is FAILED: Quota exceeded for VPC endpoints"):
        api(atlas, clock).wait_active(["e1"], 60)
    assert clock.sleeps == []


def test_wait_active_is_bounded_and_names_its_option():
    clock = Clock()
    atlas = ScriptedAtlas([[raw("e1", "INITIATING")]])
    with pytest.raises(pe.EndpointWaitTimeoutError, match=r"not ACTIVE after 5 s \(cmk_atlas_endpoint_timeout\): e1 \(EU_WEST_2, INITIATING\)"):
        api(atlas, clock).wait_active(["e1"], 5, "cmk_atlas_endpoint_timeout")
    assert clock.now == 5.0


def test_wait_gone_reads_every_two_seconds_and_names_its_option():
    clock = Clock()
    atlas = ScriptedAtlas([[raw("e1", "DELETING")]])
    with pytest.raises(pe.EndpointWaitTimeoutError, match=r"still there after 7 s \(endpoint_timeout\)"):
        api(atlas, clock).wait_gone(["e1"], 7, "endpoint_timeout")
    assert clock.sleeps == [1.0, 2.0, 2.0, 2.0]
