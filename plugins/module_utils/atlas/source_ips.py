# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The addresses Atlas reaches AWS KMS from, for an ``aws:SourceIp`` condition.

Two origins: the Atlas control plane's outbound addresses in AWS (an unauthenticated Atlas call)
and the public addresses of the project's cluster nodes (host names from the project's processes,
resolved through an optional hosts file first, then the system resolver). Everything here is pure
except ``Resolver`` (which calls ``getaddrinfo``) and the two ``fetch_*`` helpers (Atlas reads).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
import socket

from ansible_collections.cmk.atlas.plugins.module_utils._module import ModuleInputError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import (
    DEFAULT_BASE_URL,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    AtlasClient,
    AtlasConfigError,
    validate_base_url,
)

CONTROL_PLANE = "control_plane"
NODE = "node"
UNRESOLVABLE_FAIL = "fail"
UNRESOLVABLE_WARN = "warn"
UNRESOLVABLE_CHOICES = (UNRESOLVABLE_FAIL, UNRESOLVABLE_WARN)
HOSTS_FILE_ENV = "CMK_ATLAS_HOSTS_FILE"
VIA_LITERAL = "literal"
VIA_HOSTS_FILE = "hosts_file"
VIA_DNS = "dns"
LIST_PAGE_SIZE = 500

# "mongodb://h1:27017,h2:27017/?replicaSet=rs0" -> the host list and the options.
_CONNECTION_STRING = re.compile(r"^mongodb://(?:[^@/]*@)?(?P<hosts>[^/?]*)(?:/[^?]*)?(?:\?(?P<options>.*))?$")


class SourceIpError(ModuleInputError):
    """The addresses cannot be collected as asked (unknown region, unreadable hosts file, ...)."""


# -- addresses ----------------------------------------------------------------------------------


def to_network(value, where):
    """``value`` (an address or CIDR block) as an ip_network; a single address becomes /32 or /128."""
    text = str(value).strip() if value is not None else ""
    try:
        # Host bits set (203.0.113.5/24) name the same block as its network address; keep the block.
        return ipaddress.ip_network(text.split("%", 1)[0], strict=False)
    except ValueError:
        raise SourceIpError(f"{where}: {value!r} is not an IP address or CIDR block") from None


def _network_sort_key(network):
    return (network.version, network.network_address, network.prefixlen)


def sort_cidrs(values, where="address"):
    """Unique CIDR strings, IPv4 before IPv6, in address order."""
    networks = {to_network(value, where) for value in values}
    return [str(network) for network in sorted(networks, key=_network_sort_key)]


def region_key(name):
    """A region name compared in one spelling: ``US_EAST_1`` and ``us-east-1`` are the same region."""
    return str(name).strip().lower().replace("_", "-")


# -- the control plane ----------------------------------------------------------------------------


class _NoCredentials:
    """Stands in for an authentication method where only unauthenticated operations are called."""

    NAME = "none"

    def secret_values(self):
        return []

    def requests_auth(self, client):
        raise AtlasConfigError("Atlas credentials are missing: this call needs public_key and private_key, or client_id and client_secret.")

    def renew_after_unauthorized(self, client):
        return False

    def unauthorized_hint(self):
        return None


def anonymous_client(params, log=None):
    """A client for unauthenticated operations only, so reading the control-plane addresses needs no credentials."""
    timeout = params.get("timeout")
    retries = params.get("retries")
    validate_certs = params.get("validate_certs")
    return AtlasClient(
        validate_base_url(params.get("base_url") or DEFAULT_BASE_URL),
        _NoCredentials(),
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        retries=DEFAULT_RETRIES if retries is None else retries,
        validate_certs=True if validate_certs is None else validate_certs,
        log=log,
    )


def fetch_control_plane(client):
    return client.call("listControlPlaneIpAddresses") or {}


def control_plane_sources(body, regions=None):
    """``(sources, regions)``: one ``{cidr, source, region}`` per outbound AWS address and region.

    ``regions`` (either spelling) narrows the regions; by default every AWS region Atlas lists,
    since Atlas may call KMS from any of them. A region Atlas does not list is an error rather
    than an empty contribution, so a typo cannot shrink the list unnoticed.
    """
    outbound = ((body or {}).get("outbound") or {}).get("aws") or {}
    listed = {}
    for name, addresses in outbound.items():
        listed.setdefault(region_key(name), (name, []))[1].extend(addresses or [])
    if regions:
        wanted = []
        for region in regions:
            key = region_key(region)
            if key not in listed:
                known = ", ".join(sorted(listed)) or "none"
                raise SourceIpError(f"regions: Atlas lists no control-plane outbound addresses for AWS region {region!r}; it lists: {known}")
            if key not in wanted:
                wanted.append(key)
    else:
        wanted = list(listed)
    sources = []
    for key in sorted(wanted):
        name, addresses = listed[key]
        for cidr in sort_cidrs(addresses, where=f"control-plane outbound address for {name}"):
            sources.append({"cidr": cidr, "source": CONTROL_PLANE, "region": key})
    if not sources:
        raise SourceIpError(
            "Atlas lists no control-plane outbound addresses in AWS"
            + (f" for the regions {', '.join(sorted(wanted))}" if wanted else "")
            + "; a source-IP condition without them would lock Atlas out of the key"
        )
    return sources, sorted(wanted)


# -- host names -------------------------------------------------------------------------------------


def _host_key(name):
    return str(name).strip().rstrip(".").lower()


def parse_hosts(text, where="hosts file"):
    """Name -> addresses from hosts(5) text: ``ADDRESS NAME [ALIAS...]``, ``#`` starts a comment.

    A name on several lines gets every address. An entry that is not an address fails with its line
    number: a hosts file given for this purpose should not be half read.
    """
    hosts = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        address = fields[0].split("%", 1)[0]
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError:
            raise SourceIpError(f"{where} line {number}: {fields[0]!r} is not an IP address; expected 'ADDRESS HOSTNAME [ALIAS...]'") from None
        for name in fields[1:]:
            entries = hosts.setdefault(_host_key(name), [])
            if address not in entries:
                entries.append(address)
    return hosts


def load_hosts_file(path):
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeError) as exc:
        raise SourceIpError(f"hosts_file {path}: cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_hosts(text, where=f"hosts_file {path}")


class Resolver:
    """Host name -> addresses: an IP literal as it is, then the hosts file, then ``getaddrinfo``.

    A name in the hosts file is not looked up in DNS, as with /etc/hosts, so a test bed or a
    pinned address never depends on the network. Answers are cached per name.
    """

    def __init__(self, hosts=None, getaddrinfo=None):
        self.hosts = hosts or {}
        self._getaddrinfo = getaddrinfo or socket.getaddrinfo
        self._cache = {}

    def resolve(self, name):
        """``(addresses, via, error)``: addresses sorted (empty when unresolvable), how, and why not."""
        key = _host_key(name)
        if key not in self._cache:
            self._cache[key] = self._resolve(key)
        return self._cache[key]

    def _resolve(self, key):
        try:
            return [str(ipaddress.ip_address(key.strip("[]")))], VIA_LITERAL, None
        except ValueError:
            pass
        if key in self.hosts:
            return sort_addresses(self.hosts[key]), VIA_HOSTS_FILE, None
        try:
            infos = self._getaddrinfo(key, None, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            return [], VIA_DNS, str(exc) or type(exc).__name__
        addresses = sort_addresses(info[4][0] for info in infos if info and len(info) > 4 and info[4])
        if not addresses:
            return [], VIA_DNS, "no addresses"
        return addresses, VIA_DNS, None


def sort_addresses(values):
    found = set()
    for value in values:
        try:
            found.add(ipaddress.ip_address(str(value).split("%", 1)[0]))
        except ValueError:
            continue
    return [str(address) for address in sorted(found, key=lambda a: (a.version, a))]


# -- cluster nodes --------------------------------------------------------------------------------


def fetch_nodes(client, project_id):
    """``(processes, clusters)`` of the project, every page."""
    processes = list(client.paginate("listGroupProcesses", items_per_page=LIST_PAGE_SIZE, groupId=project_id))
    clusters = list(client.paginate("listGroupClusters", items_per_page=LIST_PAGE_SIZE, groupId=project_id))
    return processes, clusters


def _strip_port(item):
    """``host`` of ``host:port``, ``[v6]:port`` or a bare host."""
    if item.startswith("["):
        return item[1 : item.find("]")] if "]" in item else item[1:]
    return item.rsplit(":", 1)[0] if item.count(":") == 1 else item


def connection_string_hosts(connection_string):
    """``(host names, replica set)`` of a ``mongodb://`` connection string; ``([], None)`` for anything else."""
    match = _CONNECTION_STRING.match(connection_string or "")
    if not match:
        return [], None
    names = []
    for item in match.group("hosts").split(","):
        host = _strip_port(item.strip())
        if host:
            names.append(_host_key(host))
    replica_set = None
    for option in (match.group("options") or "").split("&"):
        parts = option.partition("=")
        if parts[0].lower() == "replicaset" and parts[2]:
            replica_set = parts[2]
    return names, replica_set


def cluster_index(clusters):
    """``(by host name, by replica set name)`` -> cluster name, from the clusters' standard connection strings."""
    by_host, by_replica_set = {}, {}
    for cluster in clusters or []:
        name = cluster.get("name")
        hosts, replica_set = connection_string_hosts((cluster.get("connectionStrings") or {}).get("standard"))
        for host in hosts:
            by_host.setdefault(host, name)
        if replica_set:
            by_replica_set.setdefault(replica_set, name)
    return by_host, by_replica_set


def node_list(processes, clusters):
    """One entry per process: host name, port, replica set, shard, type and cluster (null when no cluster names it)."""
    by_host, by_replica_set = cluster_index(clusters)
    nodes = []
    for process in processes or []:
        hostname = process.get("hostname")
        if not hostname:
            continue
        alias = process.get("userAlias")
        replica_set = process.get("replicaSetName")
        cluster = by_host.get(_host_key(hostname)) or (by_host.get(_host_key(alias)) if alias else None) or by_replica_set.get(replica_set)
        nodes.append(
            {
                "hostname": hostname,
                "port": process.get("port"),
                "user_alias": alias,
                "replica_set_name": replica_set,
                "shard_name": process.get("shardName"),
                "type_name": process.get("typeName"),
                "cluster": cluster,
            }
        )
    return sorted(nodes, key=lambda node: (node["cluster"] or "", _host_key(node["hostname"]), node["port"] or 0))


def resolve_nodes(nodes, resolver):
    """``(nodes, sources, unresolved)``: each node with ``addresses``/``resolved_name``/``resolved_via``/``error``.

    The process host name is tried first, then its user alias (the name in the connection string)
    when that differs. ``unresolved`` lists the host names neither gave an address for.
    """
    resolved, sources, unresolved = [], [], []
    for node in nodes:
        names = [node["hostname"]]
        if node.get("user_alias") and _host_key(node["user_alias"]) != _host_key(node["hostname"]):
            names.append(node["user_alias"])
        addresses, via, error, used = [], None, None, None
        for name in names:
            addresses, via, error = resolver.resolve(name)
            if addresses:
                used = name
                break
        entry = dict(node, addresses=addresses, resolved_name=used, resolved_via=via if addresses else None, error=None if addresses else error)
        resolved.append(entry)
        if not addresses:
            if node["hostname"] not in unresolved:
                unresolved.append(node["hostname"])
            continue
        for cidr in sort_cidrs(addresses, where=f"address of {used}"):
            sources.append({"cidr": cidr, "source": NODE, "hostname": node["hostname"], "cluster": node["cluster"]})
    return resolved, sources, sorted(unresolved, key=_host_key)


# -- together ---------------------------------------------------------------------------------------


def _dedupe_sources(sources):
    seen, unique = set(), []
    for source in sources:
        key = (source["cidr"], source["source"], source.get("region"), source.get("hostname"), source.get("cluster"))
        if key not in seen:
            seen.add(key)
            unique.append(source)
    order = {CONTROL_PLANE: 0, NODE: 1}
    return sorted(
        unique,
        key=lambda s: (_network_sort_key(to_network(s["cidr"], "cidr")), order.get(s["source"], 2), s.get("region") or "", s.get("hostname") or ""),
    )


def combine(control_plane=None, nodes=None):
    """The result of the module from the parts collected: ``cidrs``, ``sources``, ``unresolved``, ``nodes``, ``regions``.

    ``control_plane`` is ``(sources, regions)`` from ``control_plane_sources``; ``nodes`` is
    ``(nodes, sources, unresolved)`` from ``resolve_nodes``; either may be None (not collected).
    """
    cp_sources, regions = control_plane or ([], [])
    node_entries, node_sources, unresolved = nodes or ([], [], [])
    sources = _dedupe_sources(list(cp_sources) + list(node_sources))
    return {
        "cidrs": sort_cidrs(source["cidr"] for source in sources),
        "sources": [{key: value for key, value in source.items() if value is not None} for source in sources],
        "unresolved": list(unresolved),
        "nodes": list(node_entries),
        "regions": list(regions),
    }


def unresolved_message(project_id, unresolved, nodes, warn=False):
    errors = {}
    for node in nodes:
        if node["hostname"] in unresolved and node.get("error"):
            errors.setdefault(node["hostname"], node["error"])
    listed = "; ".join(f"{name} ({errors[name]})" if name in errors else name for name in unresolved)
    text = (
        f"Project {project_id}: {len(unresolved)} cluster node host name{'s' if len(unresolved) != 1 else ''} could not be resolved: {listed}. "
        "A source-IP condition without their addresses would lock those nodes out of the key. "
    )
    if warn:
        return text + "Their addresses are not in cidrs."
    return text + (
        f"Give them addresses in hosts_file (or environment variable {HOSTS_FILE_ENV}), fix name resolution on this host, "
        "or set unresolvable to warn to go on without them."
    )
