#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cluster_encryption
short_description: Turn encryption at rest with the project's AWS KMS key on or off for Atlas clusters
version_added: 0.1.0
description:
  - Sets the C(encryptionAtRestProvider) of MongoDB Atlas clusters to V(AWS) (encrypt with the project's
    AWS KMS customer master key) or V(NONE), on the clusters named in O(clusters) or on every cluster of
    the project (O(all_clusters=true)).
  - Only clusters whose provider differs are changed; the update sends nothing but the provider.
  - With O(provider=AWS) the project's AWS KMS encryption at rest must be enabled and valid. The module
    checks that first and otherwise fails before changing any cluster; set it up with
    M(cmk.atlas.encryption_at_rest).
  - Atlas does not change paused clusters. A paused cluster that needs the change makes the module fail
    before any change (O(paused_clusters=fail)), or is left as it is and listed in RV(skipped_paused)
    with a warning (O(paused_clusters=skip)). A paused cluster that already has the provider needs nothing.
  - Atlas applies a provider change as a rolling update of the cluster (C(stateName) C(UPDATING)). With
    O(wait=true) the module waits until every changed cluster is C(IDLE) again, and also for selected
    clusters already on O(provider) that Atlas is still changing, for at most O(wait_timeout) seconds.
  - A cluster busy with another change is not waited for before the update; if Atlas refuses the update
    (HTTP 409), the module fails, names the cluster and lists the clusters it already changed.
author:
  - cmk.atlas maintainers (@cmk-atlas)
options:
  project_id:
    description:
      - ID of the Atlas project (24 hexadecimal digits).
    type: str
    required: true
  clusters:
    description:
      - Names of the clusters to change. Every name must be a cluster of the project; otherwise the module
        fails, listing the project's clusters, before any change.
      - Exactly one of O(clusters) and O(all_clusters) is required.
    type: list
    elements: str
  all_clusters:
    description:
      - V(true) changes every cluster of the project, as listed when the task runs.
      - Exactly one of O(clusters) and O(all_clusters=true) is required.
    type: bool
  provider:
    description:
      - The encryption at rest provider the clusters get.
      - V(AWS) encrypts with the project's AWS KMS key; V(NONE) turns customer key management off for the cluster.
      - To disable the project's encryption at rest later, first set V(NONE) on every cluster that uses V(AWS);
        Atlas refuses to disable it while a cluster uses it.
    type: str
    choices: [AWS, NONE]
    default: AWS
  encryption_at_rest_pending:
    description:
      - Only in check mode. V(true) says that an earlier task of the same check-mode run (such as
        M(cmk.atlas.encryption_at_rest)) reported that it would enable or change the project's encryption at rest,
        which therefore is not enabled and valid yet. The module then predicts the clusters' change without the
        project check of O(provider=AWS), which the real run makes.
      - Set it from that task's result, for example V("{{ ansible_check_mode and ear.changed }}").
      - Ignored outside check mode, so the project check always runs before a real change.
    type: bool
    default: false
  paused_clusters:
    description:
      - What to do with paused clusters that need the change, which Atlas refuses while they are paused.
      - V(fail) fails before any change and names them.
      - V(skip) changes the other clusters, leaves the paused ones as they are, lists them in RV(skipped_paused)
        and warns. A later run after they are resumed changes them.
    type: str
    choices: [fail, skip]
    default: fail
  wait:
    description:
      - Whether to wait until the changed clusters are C(IDLE) again.
      - With V(false) the module returns right after Atlas accepted the changes, with C(stateName) C(UPDATING).
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait, in all, for the clusters to be C(IDLE) again. A rolling update of a large
        cluster can take long.
      - When the time is up the module fails and names the clusters still updating; Atlas goes on with the change.
    type: int
    default: 3600
  poll_interval:
    description:
      - Seconds between two reads of a cluster's state while waiting.
    type: float
    default: 2
extends_documentation_fragment:
  - cmk.atlas.atlas
  - cmk.atlas.aws.IGNORED
  - cmk.atlas.attributes.ACTION_GROUP
  - cmk.atlas.attributes.CHECK_MODE_FULL
  - cmk.atlas.attributes.DIFF_MODE_FULL
notes:
  - The changed status is true exactly when the module changes a cluster's provider (or would, in check mode).
    A run with nothing to change sends no write request to Atlas.
  - In check mode, changed clusters are predicted with C(state_name) C(IDLE) when O(wait=true), else C(UPDATING).
    The project check of O(provider=AWS) runs in check mode too, so check mode fails where the real run would,
    unless O(encryption_at_rest_pending=true) says that an earlier check-mode task sets the project up first.
  - "The diff shows the provider of every selected cluster, by cluster name, before and after."
  - Atlas requires an M10 or larger dedicated cluster for customer key management; it answers other clusters
    with an error, which the module reports.
seealso:
  - module: cmk.atlas.encryption_at_rest
  - name: Encryption at rest using customer key management (MongoDB Atlas documentation)
    description: How Atlas encrypts cluster storage with a key from AWS KMS.
    link: https://www.mongodb.com/docs/atlas/security-kms-encryption/
"""

EXAMPLES = r"""
- name: Encrypt two clusters with the project's AWS KMS key
  cmk.atlas.cluster_encryption:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    clusters:
      - Orders
      - Payments

- name: Encrypt every running cluster of the project, leave paused ones for later
  cmk.atlas.cluster_encryption:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    all_clusters: true
    paused_clusters: skip
    wait_timeout: 7200
  register: encryption

- name: Show the clusters still to do once resumed
  ansible.builtin.debug:
    var: encryption.skipped_paused

- name: Turn customer key management off for every cluster, before disabling the project's encryption at rest
  cmk.atlas.cluster_encryption:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    all_clusters: true
    provider: NONE

- name: Start the change without waiting for the rolling update
  cmk.atlas.cluster_encryption:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    clusters: [Archive]
    wait: false
"""

RETURN = r"""
project_id:
  description: ID of the Atlas project.
  returned: always
  type: str
  sample: 5f1a2b3c4d5e6f7a8b9c0d1e
provider:
  description: The provider the selected clusters were set to.
  returned: always
  type: str
  sample: AWS
clusters:
  description:
    - The selected clusters, in the order of O(clusters) (with O(all_clusters), in Atlas's order).
  returned: success, and on a failure after a change or while waiting
  type: list
  elements: dict
  sample:
    - {name: Orders, provider_before: NONE, provider: AWS, state_name: IDLE, paused: false, changed: true}
    - {name: Archive, provider_before: NONE, provider: NONE, state_name: IDLE, paused: true, changed: false}
  contains:
    name:
      description: Name of the cluster.
      type: str
    provider_before:
      description: The cluster's C(encryptionAtRestProvider) before the task (V(NONE) when Atlas sets none).
      type: str
    provider:
      description: The cluster's C(encryptionAtRestProvider) after the task (predicted in check mode).
      type: str
    state_name:
      description:
        - The cluster's C(stateName) as Atlas last returned it, such as C(IDLE) or C(UPDATING).
        - Predicted in check mode for changed clusters.
      type: str
    paused:
      description: Whether the cluster is paused.
      type: bool
    changed:
      description: Whether the task changed the cluster's provider (or would, in check mode).
      type: bool
still_updating:
  description: Names of the clusters that were not C(IDLE) with O(provider) when O(wait_timeout) ran out.
  returned: when the wait timed out (the task fails)
  type: list
  elements: str
  sample: [Orders]
skipped_paused:
  description: Names of the paused clusters that need the change and were left as they are (O(paused_clusters=skip)).
  returned: success
  type: list
  elements: str
  sample: [Archive]
"""

from ansible_collections.cmk.atlas.plugins.module_utils._module import CmkAtlasModule, ModuleInputError, diff_of, validate_project_id
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.clusters import (
    AWS,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WAIT_TIMEOUT,
    IDLE,
    PAUSED_POLICIES,
    PROVIDERS,
    UPDATING,
    ClusterEncryption,
    ClusterUpdateError,
    ClusterWaitTimeoutError,
    cluster_results,
    plan_provider,
    provider_map,
)

ARGUMENT_SPEC = {
    "project_id": {"type": "str", "required": True},
    "clusters": {"type": "list", "elements": "str"},
    "all_clusters": {"type": "bool"},
    "provider": {"type": "str", "choices": list(PROVIDERS), "default": AWS},
    "encryption_at_rest_pending": {"type": "bool", "default": False},
    "paused_clusters": {"type": "str", "choices": list(PAUSED_POLICIES), "default": "fail"},
    "wait": {"type": "bool", "default": True},
    "wait_timeout": {"type": "int", "default": DEFAULT_WAIT_TIMEOUT},
    "poll_interval": {"type": "float", "default": DEFAULT_POLL_INTERVAL},
}


def cluster_names(params):
    """The names of O(clusters), or None for all clusters; ModuleInputError when neither is usable."""
    names = params["clusters"]
    if params["all_clusters"]:
        if names is not None:
            raise ModuleInputError("clusters and all_clusters: true exclude each other; give the cluster names or all_clusters: true, not both.")
        return None
    if names is None:
        raise ModuleInputError("Name the clusters to change in clusters, or set all_clusters: true for every cluster of the project.")
    stripped = [name.strip() for name in names]
    if not stripped or any(not name for name in stripped):
        raise ModuleInputError(f"clusters must list cluster names, such as [Cluster0]; got {names!r}.")
    return stripped


def validate_wait(params):
    if params["wait_timeout"] <= 0:
        raise ModuleInputError(
            f"wait_timeout is {params['wait_timeout']}; it must be a positive number of seconds, such as 3600 (to not wait, set wait: false)."
        )
    if not params["poll_interval"] > 0:
        raise ModuleInputError(f"poll_interval is {params['poll_interval']}; it must be a positive number of seconds, such as 2.")


def run(module):
    params = module.params
    project_id = validate_project_id(params["project_id"])
    names = cluster_names(params)
    validate_wait(params)
    provider = params["provider"]
    wait = params["wait"]

    encryption = ClusterEncryption(module.atlas, project_id, log=module.module.debug)
    # In check mode an earlier task may only have predicted the project's setup; the real run always checks.
    if provider == AWS and not (module.check_mode and params["encryption_at_rest_pending"]):
        encryption.require_aws_kms_ready()
    plan = plan_provider(encryption.clusters(), provider, names=names, paused_clusters=params["paused_clusters"], project_id=project_id)
    changed = bool(plan.to_change)
    result = {"project_id": project_id, "provider": provider}
    if plan.skipped_paused:
        module.warn(
            f"Paused clusters left without encryptionAtRestProvider {provider} (Atlas does not change paused clusters): "
            f"{', '.join(plan.skipped_paused)}. Resume them and run the task again."
        )

    if module.check_mode:
        after = None
        predicted_state = IDLE if wait else UPDATING
    else:
        try:
            after = encryption.apply(plan, provider, wait=wait, wait_timeout=params["wait_timeout"], poll_interval=params["poll_interval"])
        except ClusterUpdateError as error:
            result["clusters"] = cluster_results(plan, provider, after=error.clusters, changed=error.changed)
            module.fail(str(error), changed=bool(error.changed), atlas_error=error.error.as_dict(), **result)
        except ClusterWaitTimeoutError as error:
            result["clusters"] = cluster_results(plan, provider, after=error.clusters)
            module.fail(str(error), changed=changed, still_updating=error.pending, **result)
        predicted_state = None

    result["clusters"] = cluster_results(plan, provider, after=after, predicted_state=predicted_state)
    result["skipped_paused"] = plan.skipped_paused
    header = f"encryptionAtRestProvider of the clusters of project {project_id}"
    diff = diff_of(provider_map(result["clusters"], "provider_before"), provider_map(result["clusters"], "provider"), header, header)
    module.exit(changed, diff=diff, **result)


def main():
    # clusters / all_clusters are checked in run(): all_clusters: false beside clusters is fine there.
    module = CmkAtlasModule(ARGUMENT_SPEC, atlas=True)
    module.run(run)


if __name__ == "__main__":
    main()
