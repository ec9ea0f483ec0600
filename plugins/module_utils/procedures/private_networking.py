# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Private networking for encryption at rest with AWS KMS: ``awsKms.requirePrivateNetworking`` and the
project's encryption-at-rest private endpoints (AWS PrivateLink to KMS, one per region), planned and applied
in the order Atlas documents.

Turning it on: the project's encryption-at-rest PATCH sets ``requirePrivateNetworking: true`` first (Atlas
creates endpoints only then), an endpoint is created in every listed region that has none and waited for
until ``ACTIVE`` (a ``FAILED`` one is reported with Atlas's ``errorMessage``; a re-run replaces it), the
endpoints of regions no longer listed are deleted once the listed ones are ACTIVE, and only then does the
run wait for Atlas to report the key ``valid``: with private networking required Atlas reaches KMS through
the endpoints. Turning it off: every endpoint is deleted and waited for until gone, then the PATCH sets
``requirePrivateNetworking: false``.

``plan_private_networking`` is pure (the flag and endpoints read, the options in; the plan with its problems
out), so check mode and the real run take the same decisions; ``plan_for`` reads what it needs, puts the plan's
problems, warnings and steps on a procedure's plan and returns the ``Networking`` that applies them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections

from ansible_collections.cmk.atlas.plugins.module_utils._module import UNKNOWN, diff_of
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.private_endpoints import (
    ACTIVE,
    DEFAULT_TIMEOUT,
    DELETING,
    FAILED,
    RemovalPlan,
    failure_text,
)
from ansible_collections.cmk.atlas.plugins.module_utils.aws.regions import RegionError, to_atlas_region, to_aws_region
from ansible_collections.cmk.atlas.plugins.module_utils.procedures.engine import Problem

NetworkingPlan = collections.namedtuple(
    "NetworkingPlan",
    ["before", "after", "change", "implied", "regions", "create", "replace", "wait", "remove", "wait_gone", "endpoints", "problems", "warnings"],
)
"""What private networking becomes.

``before``/``after``: ``requirePrivateNetworking`` as read and as planned; ``change``: the value the PATCH sends
(None: not sent); ``implied``: the regions imply the flag; ``regions``: the listed regions in Atlas form (None:
the endpoints are not managed); ``create``: regions to create an endpoint in; ``replace``: FAILED endpoints of
listed regions, deleted and created again; ``wait``: endpoints of listed regions still being provisioned;
``remove``: endpoints to delete; ``wait_gone``: every endpoint waited for until it is gone (``remove``, ``replace``
and, when private networking goes off, those Atlas is deleting already); ``endpoints``: as read."""


def _region(region_name):
    """An Atlas region name as users write it (eu-west-2); unknown names as they are."""
    try:
        return to_aws_region(region_name)
    except RegionError:
        return region_name


def _listing(regions):
    return ", ".join(_region(region) for region in regions)


def _endpoint_listing(endpoints):
    return ", ".join(f"{endpoint['id']} ({_region(endpoint['region_name'])}, {endpoint['status']})" for endpoint in endpoints)


def plan_private_networking(current_flag, endpoints, wanted, regions, var, source_ips=None, managed_source_ips=None, timeout=DEFAULT_TIMEOUT):
    """Plan private networking. Writes nothing, reads nothing.

    ``current_flag``: ``requirePrivateNetworking`` as read (None counts as false); ``endpoints``: the project's AWS
    encryption-at-rest private endpoints (``normalize_endpoint``); ``wanted``: the flag asked for (None: not given);
    ``regions``: the AWS regions listed (None: not given); ``var``: the names messages speak of (``Variables``);
    ``source_ips``/``managed_source_ips``: an ``aws:SourceIp`` list given, or collected from Atlas; ``timeout``: the
    endpoint wait's bound.
    """
    problems, warnings = [], []
    listed = None
    if regions is not None:
        listed = []
        for region in regions:
            try:
                atlas = to_atlas_region(region, var.private_endpoint_regions)
            except RegionError as error:
                problems.append(
                    Problem(var.private_endpoint_regions, str(error), "list AWS regions such as eu-west-2, where Atlas runs the project's clusters")
                )
                continue
            if atlas not in listed:
                listed.append(atlas)
    if timeout < 0:
        problems.append(
            Problem(var.endpoint_timeout, f"it is {timeout}; it must be 0 (check once) or more seconds", "Atlas can take minutes: 1800 is the default")
        )
    implied = wanted is None and bool(regions)
    if wanted is False and regions:
        problems.append(
            Problem(
                var.require_private_networking,
                f"it is false while {var.private_endpoint_regions} lists {', '.join(regions)}; Atlas creates encryption-at-rest private endpoints "
                "only while the project requires private networking",
                f"set {var.require_private_networking}: true (or leave it unset: the regions imply it), or leave {var.private_endpoint_regions} "
                "empty to turn private networking off",
            )
        )
    flag = wanted if wanted is not None else (True if regions else None)
    before = bool(current_flag)
    after = before if flag is None else bool(flag)
    change = after if after != before else None
    if after and (source_ips or managed_source_ips):
        problems.append(
            Problem(
                var.manage_source_ips if managed_source_ips else var.source_ips,
                "aws:SourceIp conditions and private networking exclude each other: over private networking Atlas's requests to KMS come through "
                "its private endpoints, no longer from public addresses, so a source-IP condition would deny them",
                f"leave {var.source_ips} unset and {var.manage_source_ips} false with private networking, or turn private networking off",
            )
        )

    endpoints = list(endpoints or [])
    going = [endpoint for endpoint in endpoints if endpoint["status"] == DELETING]
    live = [endpoint for endpoint in endpoints if endpoint["status"] != DELETING]
    create, replace, wait, remove, wait_gone = [], [], [], [], []
    if not after and (before or wanted is False):
        # Off: every endpoint goes, and the run waits until Atlas lists none, before the flag is set to false.
        remove = live
        wait_gone = live + going
    elif after and listed is not None:
        by_region = {endpoint["region_name"]: endpoint for endpoint in live}
        for region in listed:
            endpoint = by_region.get(region)
            if endpoint is None:
                create.append(region)
            elif endpoint["status"] == FAILED:
                replace.append(endpoint)
                warnings.append(f"The encryption-at-rest {failure_text(endpoint)}; this run deletes it and creates it again")
            elif endpoint["status"] != ACTIVE:
                wait.append(endpoint)
        remove = [endpoint for endpoint in live if endpoint["region_name"] not in listed]
        wait_gone = replace + remove
    elif after:
        for endpoint in live:
            if endpoint["status"] == FAILED:
                warnings.append(
                    f"The encryption-at-rest {failure_text(endpoint)}; list its region in {var.private_endpoint_regions} to replace it, "
                    "or leave it out of a given list to delete it"
                )
    return NetworkingPlan(before, after, change, implied, listed, create, replace, wait, remove, wait_gone, endpoints, problems, warnings)


def planned_endpoints(plan):
    """The endpoints once the plan is applied (new ones ACTIVE, their ids known after apply), in region order."""
    kept = [endpoint for endpoint in plan.endpoints if endpoint["status"] != DELETING]
    if not plan.after:
        return [] if plan.wait_gone else sorted(kept, key=lambda endpoint: endpoint["region_name"])
    if plan.regions is None:
        return sorted(kept, key=lambda endpoint: endpoint["region_name"])
    by_region = {endpoint["region_name"]: endpoint for endpoint in kept}
    found = []
    for region in plan.regions:
        endpoint = by_region.get(region)
        if endpoint is not None and endpoint["status"] == ACTIVE:
            found.append(endpoint)
        else:
            provisioned = endpoint is not None and endpoint["status"] != FAILED
            found.append({"id": endpoint["id"] if provisioned else UNKNOWN, "region_name": region, "status": ACTIVE, "error_message": None})
    return sorted(found, key=lambda endpoint: endpoint["region_name"])


def endpoint_results(endpoints):
    """Endpoints as the module returns them: ``id``, ``region`` (AWS form), ``region_name`` (Atlas form), ``status``, ``error_message``."""
    return [
        {
            "id": endpoint["id"],
            "region": _region(endpoint["region_name"]),
            "region_name": endpoint["region_name"],
            "status": endpoint["status"],
            "error_message": endpoint.get("error_message"),
        }
        for endpoint in sorted(endpoints, key=lambda endpoint: endpoint["region_name"] or "")
    ]


def endpoint_view(endpoints):
    """What --diff shows of the endpoints: the status by region (AWS form)."""
    return {_region(endpoint["region_name"]): endpoint["status"] for endpoint in endpoints if endpoint["status"] != DELETING}


class Networking:
    """The planned private networking of one run and the writes that apply it.

    ``api``: a PrivateEndpoints; ``timeout``: the bound of every endpoint wait, ``option`` its name in messages.
    ``before_patch``/``after_patch``: (description, apply) of the steps that go before the project's encryption-at-rest
    PATCH (turning it off) and after it (turning it on)."""

    def __init__(self, plan, api, timeout, option):
        self.plan = plan
        self.api = api
        self.timeout = timeout
        self.option = option
        self.before_patch, self.after_patch = [], []
        if not plan.after:
            if plan.wait_gone:
                what = "delete" if plan.remove else "wait for the deletion of"
                self.before_patch.append(
                    (f"{what} encryption-at-rest private endpoints {_endpoint_listing(plan.wait_gone)} and wait until they are gone", self._remove)
                )
            return
        if plan.replace:
            self.after_patch.append(
                (
                    f"delete the FAILED encryption-at-rest private endpoints {_endpoint_listing(plan.replace)} and wait until they are gone",
                    self._remove_failed,
                )
            )
        created = [*plan.create, *(endpoint["region_name"] for endpoint in plan.replace)]
        if created or plan.wait:
            parts = []
            if created:
                parts.append(f"create encryption-at-rest private endpoints in {_listing(sorted(created))}")
            if plan.wait:
                parts.append(f"wait for the encryption-at-rest private endpoints {_endpoint_listing(plan.wait)}")
            self.after_patch.append((" and ".join(parts) + " until they are ACTIVE", self._ensure))
        if plan.remove:
            self.after_patch.append(
                (
                    f"delete encryption-at-rest private endpoints of regions no longer listed: {_endpoint_listing(plan.remove)} and wait until they are gone",
                    self._remove_unlisted,
                )
            )

    @property
    def changed(self):
        return bool(self.before_patch or self.after_patch)

    # -- apply ------------------------------------------------------------------------------------

    def _delete(self, endpoints):
        for endpoint in endpoints:
            if endpoint["status"] != DELETING:
                self.api.request_deletion(endpoint["id"], self.timeout)
        self.api.wait_gone([endpoint["id"] for endpoint in endpoints], self.timeout, self.option)

    def _remove(self):
        self.api.remove(RemovalPlan(self.plan.remove, self.plan.wait_gone), self.timeout, self.option)

    def _remove_failed(self):
        self._delete(self.plan.replace)

    def _ensure(self):
        created = [self.api.create(region) for region in [*self.plan.create, *(endpoint["region_name"] for endpoint in self.plan.replace)]]
        ids = [endpoint["id"] for endpoint in created + self.plan.wait]
        self.api.wait_active(ids, self.timeout, self.option, first=created if not self.plan.wait else None)

    def _remove_unlisted(self):
        self._delete(self.plan.remove)

    # -- results ----------------------------------------------------------------------------------

    def results(self, applied):
        """The endpoints after the run: read again when the run changed them, else as planned (check mode) or read."""
        if applied and self.changed:
            return endpoint_results([endpoint for endpoint in self.api.list() if endpoint["status"] != DELETING])
        return endpoint_results(planned_endpoints(self.plan))

    def diff(self, project_id):
        plan = self.plan
        if not (plan.endpoints or plan.after or plan.regions is not None):
            return None
        header = f"encryption-at-rest private endpoints (project {project_id})"
        before = {"require_private_networking": plan.before, "private_endpoints": endpoint_view(plan.endpoints)}
        after = {"require_private_networking": plan.after, "private_endpoints": endpoint_view(planned_endpoints(plan))}
        if plan.implied and plan.change:
            header += ": requirePrivateNetworking is implied by the regions listed"
        return diff_of(before, after, header, header)


def plan_for(access):
    """The private networking of a procedure run (enable, switch, rotate, verify): reads the endpoints when private networking
    is or is to be on, plans, and puts the plan's problems, warnings and the steps that go before the encryption-at-rest PATCH
    (turning it off) on ``access.plan``. The steps that follow the PATCH are ``Networking.after_patch``."""
    params = access.params
    var = access.var
    wanted = params.get("require_private_networking")
    regions = params.get("private_endpoint_regions")
    timeout = params.get("endpoint_timeout")
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    current_flag = access.current.get("require_private_networking")
    api = access.encryption.private_endpoints()
    endpoints = getattr(access, "endpoints", None)
    if endpoints is None:
        endpoints = api.list() if current_flag or wanted is not None or regions is not None else []
        access.endpoints = endpoints
    plan = plan_private_networking(
        current_flag,
        endpoints,
        wanted,
        regions,
        var,
        source_ips=access.source_ips,
        managed_source_ips=access.required_source_ips,
        timeout=timeout,
    )
    for problem in plan.problems:
        access.plan.problem(*problem)
    access.plan.warnings.extend(plan.warnings)
    networking = Networking(plan, api, timeout, var.endpoint_timeout)
    for description, apply in networking.before_patch:
        access.plan.step(description, apply)
    return networking
