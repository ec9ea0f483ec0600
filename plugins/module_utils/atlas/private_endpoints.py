# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A project's encryption-at-rest private endpoints (AWS PrivateLink to KMS): list them, create one per
region and wait, bounded, until it is ``ACTIVE`` (or report it ``FAILED`` with Atlas's ``errorMessage``),
plan their removal (pure: endpoints in, plan out), request the deletions and wait, bounded, until they
are gone.

Atlas creates an endpoint only while the project requires private networking, refuses to disable
encryption at rest while any of them exists, and refuses to delete one while it is still being provisioned
(``INITIATING``): that answer is repeated until the wait's bound. Every wait reads at 1 s, then every 2 s,
so it ends within 2 s of the moment it can.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections

from ansible_collections.cmk.atlas.plugins.module_utils._poll import poll
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError, AtlasError, ProjectApi, retry_on_error_codes

PROVIDER = "AWS"
ACTIVE = "ACTIVE"
FAILED = "FAILED"
DELETING = "DELETING"
DEFAULT_TIMEOUT = 1800
# A short capped interval, as for the wait for valid: a wait ends within 2 s of the moment it can.
FIRST_INTERVAL = 1.0
MAX_INTERVAL = 2.0
# Atlas refuses the deletion of an endpoint it is still provisioning; it can be deleted once that ends.
DELETE_RETRY_CODES = ("ENCRYPTION_AT_REST_PRIVATE_ENDPOINT_DELETE_BLOCKED_DURING_PROVISIONING",)


class EndpointWaitTimeoutError(AtlasError):
    """Private endpoints were not yet as waited for (gone, or ACTIVE) after the wait's bound."""


class EndpointFailedError(AtlasError):
    """Atlas reports a private endpoint FAILED; the message carries its ``errorMessage``."""


def normalize_endpoint(raw):
    """An endpoint (API form) as ``{id, region_name, status, error_message}``."""
    raw = raw or {}
    return {"id": raw.get("id"), "region_name": raw.get("regionName"), "status": raw.get("status"), "error_message": raw.get("errorMessage")}


def describe(endpoint):
    return f"{endpoint['id']} ({endpoint['region_name']}, {endpoint['status']})"


def failure_text(endpoint):
    """``<id> in <region> is FAILED: <Atlas's errorMessage>``."""
    message = endpoint.get("error_message") or "Atlas gives no errorMessage"
    return f"private endpoint {endpoint['id']} in {endpoint['region_name']} is FAILED: {message}"


RemovalPlan = collections.namedtuple("RemovalPlan", ["to_delete", "to_wait"])
"""``to_delete``: endpoints to request the deletion of; ``to_wait``: every endpoint to wait for until it is gone
(those already being deleted included)."""


def plan_removal(endpoints):
    """Which endpoints a removal deletes and waits for. Writes nothing."""
    to_delete = [endpoint for endpoint in endpoints if endpoint["status"] != DELETING]
    return RemovalPlan(to_delete, list(endpoints))


class PrivateEndpoints(ProjectApi):
    """The AWS encryption-at-rest private endpoints of one project; ``sleep``/``clock``/``log`` go to the waits."""

    def list(self):
        """Every endpoint of the project that still exists, normalised, in Atlas's order."""
        pages = self.client.paginate("listGroupEncryptionAtRestPrivateEndpoints", groupId=self.project_id, cloudProvider=PROVIDER)
        return [normalize_endpoint(raw) for raw in pages]

    def create(self, region_name):
        """Ask Atlas for an endpoint in ``region_name`` (Atlas form); returns it as Atlas answers (``INITIATING``)."""
        body = {"cloudProvider": PROVIDER, "regionName": region_name}
        answer = self.client.call("createGroupEncryptionAtRestPrivateEndpoint", body=body, groupId=self.project_id, cloudProvider=PROVIDER)
        return normalize_endpoint(answer)

    def wait_active(self, endpoint_ids, timeout, option="endpoint_timeout", first=None):
        """Read until every endpoint of ``endpoint_ids`` is ACTIVE; returns the endpoints last listed. ``first``: the
        endpoints as just answered (the create's answers), taken for the first check instead of a read.

        Raises EndpointFailedError as soon as one is FAILED (with Atlas's ``errorMessage``), and
        EndpointWaitTimeoutError after ``timeout`` seconds (``option`` names the bound in the message)."""
        pending = list(endpoint_ids)
        state = {"listed": [], "first": first}

        def active():
            listed = state.pop("first", None)
            if listed is None:
                listed = self.list()
            state["listed"] = listed
            by_id = {endpoint["id"]: endpoint for endpoint in listed}
            failed = [by_id[endpoint_id] for endpoint_id in pending if endpoint_id in by_id and by_id[endpoint_id]["status"] == FAILED]
            if failed:
                raise EndpointFailedError(
                    f"Atlas reports the encryption-at-rest {'; '.join(failure_text(endpoint) for endpoint in failed)}. "
                    "Atlas does not reach the key through it; run again to replace it, or remove its region"
                )
            pending[:] = [endpoint_id for endpoint_id in pending if (by_id.get(endpoint_id) or {}).get("status") != ACTIVE]
            return not pending

        def tell(wait):
            if self._log is not None:
                self._log(f"waiting {wait:.1f} s for private endpoints {', '.join(pending)} of project {self.project_id} to be ACTIVE")

        if not poll(active, timeout, FIRST_INTERVAL, MAX_INTERVAL, sleep=self._sleep, clock=self._clock, log=tell).done:
            by_id = {endpoint["id"]: endpoint for endpoint in state["listed"]}
            left = ", ".join(describe(by_id[endpoint_id]) if endpoint_id in by_id else f"{endpoint_id} (not listed)" for endpoint_id in pending)
            raise EndpointWaitTimeoutError(
                f"encryption-at-rest private endpoints of project {self.project_id} were not ACTIVE after {timeout} s ({option}): {left}. "
                "Atlas goes on provisioning them; run again to wait for them, or raise the timeout"
            )
        return state["listed"]

    def request_deletion(self, endpoint_id, timeout):
        """Ask Atlas to delete the endpoint, repeating the refusal during provisioning for up to ``timeout`` seconds;
        one that is already gone counts as done."""

        def attempt():
            return self.client.call(
                "requestGroupEncryptionAtRestPrivateEndpointDeletion", groupId=self.project_id, cloudProvider=PROVIDER, endpointId=endpoint_id
            )

        try:
            retry_on_error_codes(
                attempt,
                DELETE_RETRY_CODES,
                max(timeout, 0),
                sleep=self._sleep,
                clock=self._clock,
                interval=FIRST_INTERVAL,
                max_interval=MAX_INTERVAL,
                log=self._log,
            )
        except AtlasApiError as error:
            if error.status != 404:
                raise

    def remove(self, plan, timeout=DEFAULT_TIMEOUT, option="endpoint_timeout"):
        """Request the deletions of ``plan.to_delete``, then wait until no endpoint of ``plan.to_wait`` is listed."""
        for endpoint in plan.to_delete:
            self.request_deletion(endpoint["id"], timeout)
        self.wait_gone([endpoint["id"] for endpoint in plan.to_wait], timeout, option)

    def wait_gone(self, endpoint_ids, timeout, option="endpoint_timeout"):
        pending = list(endpoint_ids)

        def gone():
            listed = {endpoint["id"]: endpoint for endpoint in self.list()}
            pending[:] = [endpoint_id for endpoint_id in pending if endpoint_id in listed]
            state["listed"] = listed
            return not pending

        def tell(wait):
            if self._log is not None:
                self._log(f"waiting {wait:.1f} s for private endpoints {', '.join(pending)} of project {self.project_id} to be gone")

        state = {}
        if not poll(gone, timeout, FIRST_INTERVAL, MAX_INTERVAL, sleep=self._sleep, clock=self._clock, log=tell).done:
            left = ", ".join(describe(state["listed"][endpoint_id]) for endpoint_id in pending)
            raise EndpointWaitTimeoutError(
                f"encryption-at-rest private endpoints of project {self.project_id} were still there after {timeout} s ({option}): {left}. "
                "Atlas goes on deleting them; run again to wait for them, or raise the timeout"
            )
