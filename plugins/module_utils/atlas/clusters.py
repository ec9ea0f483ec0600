# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atlas clusters and their ``encryptionAtRestProvider``.

List and read a project's clusters in one compact form, check that the project's AWS KMS
encryption at rest can serve clusters, plan which clusters a provider change touches (pure:
clusters in, plan out, so check mode and the real run decide alike), patch them, and wait,
bounded, until they are ``IDLE`` again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections

from ansible_collections.cmk.atlas.plugins.module_utils._module import ModuleInputError
from ansible_collections.cmk.atlas.plugins.module_utils._poll import poll
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasApiError, AtlasError, ProjectApi

AWS = "AWS"
NONE = "NONE"
PROVIDERS = (AWS, NONE)
IDLE = "IDLE"
UPDATING = "UPDATING"
# A deleting cluster never comes back to IDLE; waiting for it would only run into the timeout.
NEVER_IDLE_STATES = frozenset(("DELETING", "DELETED"))
PAUSED_FAIL = "fail"
PAUSED_SKIP = "skip"
PAUSED_POLICIES = (PAUSED_FAIL, PAUSED_SKIP)
DEFAULT_WAIT_TIMEOUT = 3600
# The wait ends within 2 s of the cluster being IDLE; at most 30 reads a minute per cluster.
DEFAULT_POLL_INTERVAL = 2.0
LIST_PAGE_SIZE = 500
# The version-specific fields are left out; these are the ones every listed version returns.
CLUSTER_FIELDS = ("name", "provider", "state_name", "paused")


class ClusterNotFoundError(ModuleInputError):
    """A named cluster is not in the project."""


class PausedClustersError(ModuleInputError):
    """Paused clusters would need a change, which Atlas refuses while they are paused."""


class EncryptionAtRestNotReadyError(ModuleInputError):
    """The project's AWS KMS encryption at rest is not enabled and valid, so clusters cannot use it."""


class ClusterWaitTimeoutError(AtlasError):
    """Clusters were not ``IDLE`` again within the wait timeout; ``clusters`` has their last state."""

    def __init__(self, message, pending, clusters):
        super().__init__(message)
        self.pending = list(pending)
        self.clusters = clusters


class ClusterUpdateError(AtlasError):
    """Atlas refused to change one cluster; ``error`` is its answer, ``changed`` the clusters changed before."""

    def __init__(self, message, name, error, changed, clusters):
        super().__init__(message)
        self.name = name
        self.error = error
        self.changed = list(changed)
        self.clusters = clusters


# -- the compact form ---------------------------------------------------------------------------


def normalize_cluster(raw):
    """A cluster (API form) as ``{name, provider, state_name, paused}``.

    Atlas leaves ``encryptionAtRestProvider`` out for clusters that never had one: that is ``NONE``.
    """
    raw = raw or {}
    return {
        "name": raw.get("name"),
        "provider": raw.get("encryptionAtRestProvider") or NONE,
        "state_name": raw.get("stateName"),
        "paused": bool(raw.get("paused")),
    }


def list_clusters(client, project_id):
    """Every cluster of the project, in the compact form, in Atlas's order."""
    return [normalize_cluster(raw) for raw in client.paginate("listGroupClusters", items_per_page=LIST_PAGE_SIZE, groupId=project_id)]


def get_cluster(client, project_id, name):
    return normalize_cluster(client.call("getGroupCluster", groupId=project_id, clusterName=name))


def update_provider(client, project_id, name, provider):
    """PATCH only ``encryptionAtRestProvider``, so nothing else of the cluster can change with it."""
    body = {"encryptionAtRestProvider": provider}
    return normalize_cluster(client.call("updateGroupCluster", body=body, groupId=project_id, clusterName=name))


def clusters_using(clusters, provider=AWS):
    """Names of the clusters (compact form) whose provider is ``provider``."""
    return [cluster["name"] for cluster in clusters if cluster["provider"] == provider]


# -- the project's side ---------------------------------------------------------------------------


def aws_kms_problem(encryption_at_rest):
    """Why clusters cannot use the project's AWS KMS settings (a GET of its encryption at rest), or None."""
    aws_kms = (encryption_at_rest or {}).get("awsKms") or {}
    if not aws_kms.get("enabled"):
        return "has no AWS KMS encryption at rest enabled (awsKms.enabled is false)"
    if aws_kms.get("valid") is not True:
        key = aws_kms.get("customerMasterKeyID")
        region = aws_kms.get("region")
        where = f" (key {key}{', region ' + region if region else ''})" if key else ""
        return (
            f"has AWS KMS encryption at rest enabled{where}, but Atlas reports it is not valid (awsKms.valid is false): "
            "Atlas cannot use the key with the configured role or credentials"
        )
    return None


def require_aws_kms_ready(client, project_id):
    """Raise EncryptionAtRestNotReadyError unless the project's AWS KMS encryption at rest is enabled and valid."""
    problem = aws_kms_problem(client.call("getGroupEncryptionAtRest", groupId=project_id))
    if problem:
        raise EncryptionAtRestNotReadyError(
            f"Project {project_id} {problem}, so its clusters cannot use encryptionAtRestProvider AWS. "
            "Configure the project first with cmk.atlas.encryption_at_rest (key, region and an authorized role that may use the key) "
            "until it is enabled and valid. Nothing was changed."
        )


# -- planning -------------------------------------------------------------------------------------

ClusterPlan = collections.namedtuple("ClusterPlan", ["selected", "to_change", "skipped_paused", "to_wait"])
"""What a provider change does: ``selected`` the clusters in scope (compact form, in order),
``to_change`` the names to PATCH, ``skipped_paused`` paused clusters left as they are, and
``to_wait`` clusters already on the provider that Atlas is still changing (waited for too)."""


def in_transition(cluster):
    """True while Atlas is changing the cluster in a way that ends in IDLE."""
    return cluster["state_name"] not in (IDLE, None) and cluster["state_name"] not in NEVER_IDLE_STATES


def _names(names):
    return ", ".join(names) if names else "(none)"


def select_clusters(clusters, names=None, project_id=None):
    """The clusters named (in the order given, each once), or all when ``names`` is None."""
    if names is None:
        return list(clusters)
    by_name = {cluster["name"]: cluster for cluster in clusters}
    missing = []
    selected = []
    for name in names:
        if name in by_name:
            if by_name[name] not in selected:
                selected.append(by_name[name])
        elif name not in missing:
            missing.append(name)
    if missing:
        where = f"Project {project_id}" if project_id else "The project"
        raise ClusterNotFoundError(
            f"{where} has no cluster named {_names(missing)}. Its clusters are: {_names(sorted(by_name))}. "
            "Cluster names are case-sensitive. Nothing was changed."
        )
    return selected


def plan_provider(clusters, provider, names=None, paused_clusters=PAUSED_FAIL, project_id=None):
    """Decide which clusters get ``provider``. Writes nothing.

    A paused cluster already on ``provider`` needs nothing. One that needs the change is refused
    (``paused_clusters=fail``: PausedClustersError before any write) or skipped (``skip``).
    """
    if provider not in PROVIDERS:
        raise ModuleInputError(f"provider {provider!r} is not supported; use one of {', '.join(PROVIDERS)}")
    if paused_clusters not in PAUSED_POLICIES:
        raise ModuleInputError(f"paused_clusters {paused_clusters!r} is not supported; use one of {', '.join(PAUSED_POLICIES)}")
    selected = select_clusters(clusters, names, project_id)
    differing = [cluster for cluster in selected if cluster["provider"] != provider]
    paused = [cluster["name"] for cluster in differing if cluster["paused"]]
    if paused and paused_clusters == PAUSED_FAIL:
        raise PausedClustersError(
            f"Atlas does not change paused clusters, and these need encryptionAtRestProvider {provider}: {_names(paused)}. "
            "Resume them first, or set paused_clusters: skip to change only the running clusters. Nothing was changed."
        )
    to_change = [cluster["name"] for cluster in differing if not cluster["paused"]]
    to_wait = [cluster["name"] for cluster in selected if cluster["provider"] == provider and not cluster["paused"] and in_transition(cluster)]
    return ClusterPlan(selected, to_change, paused, to_wait)


def cluster_results(plan, provider, after=None, predicted_state=None, changed=None):
    """One result entry per selected cluster: ``{name, provider_before, provider, state_name, paused, changed}``.

    ``after`` maps names to the clusters as Atlas last returned them (real run). Changed clusters
    missing from it are predicted (check mode) with ``provider`` and ``predicted_state``; with
    ``predicted_state`` IDLE, clusters the real run would wait for are predicted IDLE too.
    ``changed`` names the clusters changed when that is not all of ``plan.to_change`` (a run that
    stopped at a refusal).
    """
    after = after or {}
    changed_names = plan.to_change if changed is None else changed
    results = []
    for cluster in plan.selected:
        name = cluster["name"]
        now = after.get(name)
        if now is None:
            now = dict(cluster)
            if name in changed_names:
                now.update(provider=provider, state_name=predicted_state)
            elif name in plan.to_wait and predicted_state == IDLE:
                now["state_name"] = IDLE
        results.append(
            {
                "name": name,
                "provider_before": cluster["provider"],
                "provider": now["provider"],
                "state_name": now["state_name"],
                "paused": now["paused"],
                "changed": name in changed_names,
            }
        )
    return results


def provider_map(results, key):
    """``{cluster name: provider}`` for the diff; ``key`` is ``provider_before`` or ``provider``."""
    return {entry["name"]: entry[key] for entry in results}


# -- writing and waiting --------------------------------------------------------------------------


class ClusterEncryption(ProjectApi):
    """Apply a ClusterPlan to a project through ``client`` (an AtlasClient).

    ``sleep``/``clock`` are the time source for the wait (tests replace them); ``log`` gets progress lines.
    """

    def clusters(self):
        return list_clusters(self.client, self.project_id)

    def require_aws_kms_ready(self):
        require_aws_kms_ready(self.client, self.project_id)

    def apply(self, plan, provider, wait=True, wait_timeout=DEFAULT_WAIT_TIMEOUT, poll_interval=DEFAULT_POLL_INTERVAL):
        """PATCH the clusters of ``plan.to_change`` in order, then (``wait``) wait until they are ``IDLE``.

        Returns ``{name: cluster}`` as Atlas last returned them. Stops at the first refusal with a
        ClusterUpdateError that names the clusters changed before it.
        """
        latest = {}
        done = []
        for name in plan.to_change:
            try:
                latest[name] = update_provider(self.client, self.project_id, name, provider)
            except AtlasError as error:
                raise ClusterUpdateError(self._refusal_message(name, provider, error, done), name, error, done, latest) from None
            done.append(name)
        if wait:
            # Clusters Atlas was already changing are waited for too: until they are IDLE, the provider may not be in effect.
            for name in plan.to_wait:
                latest.setdefault(name, next(c for c in plan.selected if c["name"] == name))
            self.wait_until_idle(latest, [*plan.to_change, *plan.to_wait], provider, wait_timeout, poll_interval)
        return latest

    def _refusal_message(self, name, provider, error, done):
        text = f"Atlas refused to set encryptionAtRestProvider {provider} on cluster {name}: {error}"
        if getattr(error, "status", None) == 409:
            text += (
                ". Atlas refuses changes to a cluster that is paused, being paused or busy with another change: "
                "resume it or wait until it is IDLE, then run the task again"
            )
        if not isinstance(error, AtlasApiError):
            # No answer came: Atlas may have applied the change all the same.
            text += f". Whether Atlas applied the change to {name} is unknown; running the task again finds out"
        if done:
            text += f". Already changed in this run: {_names(done)}; running the task again continues with the rest"
        else:
            text += f". No {'other ' if not isinstance(error, AtlasApiError) else ''}cluster was changed"
        return text + "."

    def wait_until_idle(self, latest, names, provider, timeout, interval):
        """Poll ``getGroupCluster`` until every cluster of ``names`` is IDLE on ``provider``; update ``latest``.

        Raises ClusterWaitTimeoutError naming the clusters still busy after ``timeout`` seconds.
        """

        def settled(name):
            cluster = latest[name]
            # A GET right after the PATCH may still show the old provider; only the new one with IDLE counts.
            return cluster["state_name"] == IDLE and cluster["provider"] == provider

        pending = [name for name in names if not settled(name)]
        state = {"first": True}

        def idle():
            if not state.pop("first", False):
                for name in pending:
                    latest[name] = get_cluster(self.client, self.project_id, name)
            pending[:] = [name for name in pending if not settled(name)]
            return not pending

        def tell(wait):
            self._debug(f"waiting {wait:.1f} s for clusters {', '.join(pending)} to be IDLE")

        if not poll(idle, timeout, interval, sleep=self._sleep, clock=self._clock, log=tell).done:
            states = ", ".join(f"{name} ({latest[name]['state_name']})" for name in pending)
            raise ClusterWaitTimeoutError(
                f"Clusters of project {self.project_id} were not IDLE with encryptionAtRestProvider {provider} after "
                f"{timeout} s (wait_timeout): {states}. Atlas goes on with the change; run the task again to wait "
                "for it, or raise wait_timeout.",
                pending,
                latest,
            )
        return latest
