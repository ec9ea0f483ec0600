#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: source_ip_info
short_description: Collect the addresses Atlas reaches AWS KMS from, for an aws:SourceIp condition
version_added: 0.1.0
description:
  - Returns the public addresses from which MongoDB Atlas uses a project's AWS KMS key, as one sorted list of CIDR
    blocks without duplicates, ready for an C(IpAddress) C(aws:SourceIp) condition in the IAM role's policy or the
    key policy.
  - The addresses come from two places. The Atlas control plane's B(outbound) addresses in AWS, from
    C(GET /api/atlas/v2/unauth/controlPlaneIPAddresses), per AWS region. The public addresses of the project's
    cluster nodes, whose host names come from the project's processes and are resolved on the host the module
    runs on.
  - Says where each address came from (RV(sources)), and which node host names could not be resolved
    (RV(unresolved)); those are never dropped silently.
  - Reads Atlas only and writes nothing; no AWS access is needed (the AWS connection options are accepted and
    ignored).
author:
  - cmk.atlas maintainers (@cmk-atlas)
options:
  project_id:
    description:
      - ID of the Atlas project (24 hexadecimal digits) whose cluster nodes to include.
    type: str
    required: true
  regions:
    description:
      - AWS regions whose Atlas control-plane outbound addresses to include, as AWS (V(us-east-1)) or Atlas
        (V(US_EAST_1)) region names.
      - By default, every AWS region Atlas lists. Atlas may call KMS from any of its control-plane regions, not only
        the key's region, so a shorter list can make Atlas lose the key when it calls from another region; the
        longer list allows a few more Atlas addresses. Narrow it only when Atlas has told you where it calls from.
      - A region Atlas lists no addresses for is an error.
    type: list
    elements: str
  include_control_plane:
    description:
      - Whether to include the Atlas control-plane outbound addresses.
      - Atlas checks the key from its control plane, so a condition without them makes Atlas report the key invalid.
    type: bool
    default: true
  include_nodes:
    description:
      - Whether to include the public addresses of the project's cluster nodes.
      - When false, Atlas credentials are not needed (the control-plane addresses are public).
    type: bool
    default: true
  hosts_file:
    description:
      - Path of a file in hosts format (C(ADDRESS HOSTNAME [ALIAS...]) per line, C(#) starts a comment) consulted
        before DNS for the node host names. A name found there is not looked up in DNS.
      - Use it to pin addresses, or to resolve host names offline (for example in a test environment) without
        changing the resolver of the host the module runs on.
      - When unset, the environment variable E(CMK_ATLAS_HOSTS_FILE) is used; when that is unset too, only DNS.
      - The file is read on the host the module runs on.
    type: path
  unresolvable:
    description:
      - What to do when a node host name cannot be resolved.
      - V(fail) stops with the names, because a condition without their addresses locks those nodes out of the key.
      - V(warn) returns the addresses found, lists the names in RV(unresolved) and warns.
    type: str
    choices: [fail, warn]
    default: fail
extends_documentation_fragment:
  - cmk.atlas.atlas
  - cmk.atlas.aws.IGNORED
  - cmk.atlas.attributes.ACTION_GROUP
  - cmk.atlas.attributes.INFO_MODULE
notes:
  - The node host names are resolved on the host the module runs on (usually the controller). Where its DNS gives
    other answers than public DNS (split-horizon DNS, a VPN), give the public addresses in O(hosts_file).
  - Node addresses change when Atlas replaces, scales or resumes nodes; run the module again (for example with the
    C(cmk.atlas.verify) playbook) to notice.
  - With private networking to KMS (C(require_private_networking)), Atlas does not reach KMS from these public
    addresses and a source-IP condition does not apply.
seealso:
  - module: cmk.atlas.aws_iam_role
  - module: cmk.atlas.kms_key_policy
  - name: Atlas control plane IP addresses
    description: The Atlas Admin API operation this module reads.
    link: https://mongodb.com/docs/atlas/reference/api-resources-spec/v2/#tag/Root/operation/listControlPlaneIpAddresses
"""

EXAMPLES = r"""
- name: Collect the addresses Atlas uses the key from
  cmk.atlas.source_ip_info:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
  register: atlas_sources

- name: Allow the key only from those addresses
  cmk.atlas.aws_iam_role:
    name: atlas-kms
    atlas_aws_account_arn: "{{ atlas_aws_account_arn }}"
    external_id: "{{ external_id }}"
    kms_key_arns:
      - "{{ key_arn }}"
    source_ips: "{{ atlas_sources.cidrs }}"

- name: Control-plane addresses only, without Atlas credentials
  cmk.atlas.source_ip_info:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    include_nodes: false
    regions: [us-east-1, eu-west-1]
  register: control_plane

- name: Resolve node host names from a file (offline, or pinned addresses)
  cmk.atlas.source_ip_info:
    project_id: 5f1a2b3c4d5e6f7a8b9c0d1e
    hosts_file: /etc/cmk-atlas/atlas-nodes.hosts
    unresolvable: warn
  register: atlas_sources
"""

RETURN = r"""
project_id:
  description: ID of the Atlas project.
  returned: always
  type: str
  sample: 5f1a2b3c4d5e6f7a8b9c0d1e
cidrs:
  description:
    - Every address found, as CIDR blocks (V(/32) for one IPv4 address, V(/128) for one IPv6 address), without
      duplicates, IPv4 before IPv6, in address order.
    - Ready for O(cmk.atlas.aws_iam_role#module:source_ips) and O(cmk.atlas.kms_key_policy#module:source_ips).
  returned: always
  type: list
  elements: str
  sample: ["198.51.100.10/32", "198.51.100.11/32", "203.0.113.21/32"]
sources:
  description: Where each address came from; an address from several places is listed once per place.
  returned: always
  type: list
  elements: dict
  contains:
    cidr:
      description: The address as a CIDR block.
      type: str
      sample: 198.51.100.10/32
    source:
      description: V(control_plane) (Atlas control plane, outbound) or V(node) (a cluster node).
      type: str
      sample: control_plane
    region:
      description: For V(control_plane), the AWS region Atlas lists the address for.
      type: str
      sample: us-east-1
    hostname:
      description: For V(node), the node's host name.
      type: str
      sample: cluster0-shard-00-00.abcde.mongodb.net
    cluster:
      description: For V(node), the cluster the node belongs to, when a cluster's connection string names it.
      type: str
      sample: Cluster0
  sample:
    - {cidr: 198.51.100.10/32, source: control_plane, region: us-east-1}
    - {cidr: 203.0.113.21/32, source: node, hostname: cluster0-shard-00-00.abcde.mongodb.net, cluster: Cluster0}
unresolved:
  description: Node host names that could not be resolved (only with O(unresolvable=warn); V(fail) stops instead).
  returned: always
  type: list
  elements: str
  sample: []
regions:
  description: The AWS regions whose control-plane addresses are included; empty when O(include_control_plane=false).
  returned: always
  type: list
  elements: str
  sample: [eu-west-1, us-east-1]
nodes:
  description: The project's processes (one per node and port) with the addresses their host names resolved to.
  returned: always
  type: list
  elements: dict
  contains:
    hostname:
      description: Host name of the process.
      type: str
      sample: cluster0-shard-00-00.abcde.mongodb.net
    port:
      description: Port of the process.
      type: int
      sample: 27017
    user_alias:
      description: The name Atlas shows for the node, usually the one in the connection string.
      type: str
      sample: cluster0-shard-00-00.abcde.mongodb.net
    cluster:
      description: The cluster whose connection string names the node (or its replica set); null when none does.
      type: str
      sample: Cluster0
    replica_set_name:
      description: Replica set of the process.
      type: str
      sample: atlas-abc123-shard-0
    shard_name:
      description: Shard of the process, for sharded clusters.
      type: str
      sample: null
    type_name:
      description: Type of the process as Atlas reports it.
      type: str
      sample: REPLICA_PRIMARY
    addresses:
      description: The addresses the host name resolved to; empty when it could not be resolved.
      type: list
      elements: str
      sample: [203.0.113.21]
    resolved_name:
      description: The name that gave the addresses (the host name, else the user alias); null when none did.
      type: str
      sample: cluster0-shard-00-00.abcde.mongodb.net
    resolved_via:
      description: V(hosts_file), V(dns) or V(literal) (the host name is an address); null when unresolved.
      type: str
      sample: dns
    error:
      description: Why the host name could not be resolved; null when it was.
      type: str
      sample: null
"""

import os

from ansible_collections.cmk.atlas.plugins.module_utils._module import CmkAtlasModule, ModuleInputError, validate_project_id
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.source_ips import (
    HOSTS_FILE_ENV,
    UNRESOLVABLE_CHOICES,
    UNRESOLVABLE_FAIL,
    Resolver,
    anonymous_client,
    combine,
    control_plane_sources,
    fetch_control_plane,
    fetch_nodes,
    load_hosts_file,
    node_list,
    resolve_nodes,
    unresolved_message,
)

ARGUMENT_SPEC = {
    "project_id": {"type": "str", "required": True},
    "regions": {"type": "list", "elements": "str"},
    "include_control_plane": {"type": "bool", "default": True},
    "include_nodes": {"type": "bool", "default": True},
    "hosts_file": {"type": "path"},
    "unresolvable": {"type": "str", "choices": list(UNRESOLVABLE_CHOICES), "default": UNRESOLVABLE_FAIL},
}


def _hosts_file(params):
    # Read here rather than through an argument-spec fallback, so that an empty variable means unset.
    # The option is expanded by its type (path); the environment variable is taken as given.
    return params["hosts_file"] or os.environ.get(HOSTS_FILE_ENV) or None


def run(module):
    params = module.params
    project_id = validate_project_id(params["project_id"])
    if not params["include_control_plane"] and not params["include_nodes"]:
        raise ModuleInputError("include_control_plane and include_nodes are both false: there is nothing to collect")
    if params["regions"] is not None and not params["include_control_plane"]:
        raise ModuleInputError("regions selects control-plane addresses; it cannot be combined with include_control_plane=false")
    if params["regions"] is not None and not [region for region in params["regions"] if region and region.strip()]:
        raise ModuleInputError("regions is empty; leave it unset for every AWS region Atlas lists")
    hosts_path = _hosts_file(params) if params["include_nodes"] else None
    # Read before any Atlas call, so a bad file fails fast.
    hosts = load_hosts_file(hosts_path) if hosts_path else {}

    # The control-plane list is public: without nodes, no credentials are needed.
    client = module.atlas if params["include_nodes"] else anonymous_client(params, log=module.module.debug)
    control_plane = None
    if params["include_control_plane"]:
        control_plane = control_plane_sources(fetch_control_plane(client), params["regions"])
    nodes = None
    if params["include_nodes"]:
        processes, clusters = fetch_nodes(client, project_id)
        nodes = resolve_nodes(node_list(processes, clusters), Resolver(hosts))
    result = combine(control_plane, nodes)
    result["project_id"] = project_id
    if result["unresolved"]:
        if params["unresolvable"] == UNRESOLVABLE_FAIL:
            module.fail(unresolved_message(project_id, result["unresolved"], result["nodes"]), **result)
        module.warn(unresolved_message(project_id, result["unresolved"], result["nodes"], warn=True))
    module.exit(False, **result)


def main():
    module = CmkAtlasModule(ARGUMENT_SPEC, atlas=True)
    module.run(run)


if __name__ == "__main__":
    main()
