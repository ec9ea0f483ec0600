import socket

import pytest

from ansible_collections.cmk.atlas.plugins.module_utils._module import ModuleInputError
from ansible_collections.cmk.atlas.plugins.module_utils.atlas import source_ips as si
from ansible_collections.cmk.atlas.plugins.module_utils.atlas.client import AtlasConfigError

GROUP = "660000000000000000000012"
EGRESS = ["198.51.100.10/32", "198.51.100.11/32"]


def control_plane_body(aws=None):
    aws = {"us-east-1": EGRESS, "eu-west-1": ["198.51.100.11/32", "198.51.100.12"]} if aws is None else aws
    return {"inbound": {"aws": {"us-east-1": ["192.0.2.1/32"]}}, "outbound": {"aws": aws, "azure": {"eastus": ["192.0.2.9/32"]}, "gcp": {}}}


def process(hostname, port=27017, replica_set="atlas-abc-shard-0", alias=None, type_name="REPLICA_SECONDARY"):
    body = {"hostname": hostname, "port": port, "replicaSetName": replica_set, "typeName": type_name, "id": f"{hostname}:{port}", "groupId": GROUP}
    if alias:
        body["userAlias"] = alias
    return body


def cluster(name, hosts, replica_set="atlas-abc-shard-0"):
    standard = "mongodb://" + ",".join(f"{h}:27017" for h in hosts) + f"/?ssl=true&authSource=admin&replicaSet={replica_set}"
    return {"name": name, "connectionStrings": {"standard": standard, "standardSrv": f"mongodb+srv://{name.lower()}.abc.mongodb.net"}}


class FakeDns:
    """getaddrinfo stand-in: name -> addresses, anything else fails like an unknown name."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.asked = []

    def __call__(self, host, port, family=0, type_=0, *rest):
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for address in self.answers[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, 0, 0, 0) if family == socket.AF_INET6 else (address, 0)
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return out


# -- addresses ----------------------------------------------------------------------------------


def test_sort_cidrs_dedupes_widens_single_addresses_and_puts_ipv4_first():
    values = ["2001:db8::1", "203.0.113.5", "198.51.100.10/32", "198.51.100.10", "10.0.0.0/8", "203.0.113.7/24"]
    assert si.sort_cidrs(values) == ["10.0.0.0/8", "198.51.100.10/32", "203.0.113.0/24", "203.0.113.5/32", "2001:db8::1/128"]


def test_sort_cidrs_names_a_bad_entry():
    with pytest.raises(si.SourceIpError, match="not an IP address"):
        si.sort_cidrs(["198.51.100.10", "nope"], where="test")


def test_region_key_accepts_both_spellings():
    assert si.region_key("US_EAST_1") == si.region_key(" us-east-1 ") == "us-east-1"


# -- control plane ----------------------------------------------------------------------------------


def test_control_plane_takes_every_aws_outbound_region_by_default_and_nothing_else():
    sources, regions = si.control_plane_sources(control_plane_body())
    assert regions == ["eu-west-1", "us-east-1"]
    assert sources == [
        {"cidr": "198.51.100.11/32", "source": "control_plane", "region": "eu-west-1"},
        {"cidr": "198.51.100.12/32", "source": "control_plane", "region": "eu-west-1"},
        {"cidr": "198.51.100.10/32", "source": "control_plane", "region": "us-east-1"},
        {"cidr": "198.51.100.11/32", "source": "control_plane", "region": "us-east-1"},
    ]
    # Inbound and other providers' addresses stay out.
    assert not {s["cidr"] for s in sources} & {"192.0.2.1/32", "192.0.2.9/32"}


def test_control_plane_narrowed_to_regions_in_either_spelling():
    sources, regions = si.control_plane_sources(control_plane_body(), ["US_EAST_1", "us-east-1"])
    assert regions == ["us-east-1"]
    assert [s["cidr"] for s in sources] == EGRESS


def test_control_plane_region_atlas_does_not_list_is_an_error():
    with pytest.raises(si.SourceIpError, match=r"'ap-south-2'.*it lists: eu-west-1, us-east-1"):
        si.control_plane_sources(control_plane_body(), ["ap-south-2"])
    assert issubclass(si.SourceIpError, ModuleInputError)


@pytest.mark.parametrize("body", [{}, control_plane_body(aws={}), control_plane_body(aws={"us-east-1": []})])
def test_control_plane_without_addresses_is_an_error(body):
    with pytest.raises(si.SourceIpError, match="lock Atlas out"):
        si.control_plane_sources(body)


def test_anonymous_client_needs_no_credentials_but_refuses_authenticated_calls():
    client = si.anonymous_client({"base_url": "http://127.0.0.1:1/", "timeout": 5, "retries": 0, "validate_certs": True})
    assert client.base_url == "http://127.0.0.1:1"
    assert client.redact("text") == "text"
    with pytest.raises(AtlasConfigError, match="credentials are missing"):
        client.auth_method.requests_auth(client)


def test_fetch_control_plane_calls_the_unauthenticated_operation():
    calls = []

    class Client:
        def call(self, operation_id, **kwargs):
            calls.append(operation_id)
            return control_plane_body()

    assert si.fetch_control_plane(Client())["outbound"]["aws"]
    assert calls == ["listControlPlaneIpAddresses"]


# -- hosts file and resolver -----------------------------------------------------------------------


def test_parse_hosts_reads_names_aliases_comments_and_repeats():
    text = """
# test bed nodes
203.0.113.21  cluster0-shard-00-00.abc.mongodb.net  alias.example   # primary
203.0.113.22\tCluster0-Shard-00-01.abc.mongodb.net.
2001:db8::5 cluster0-shard-00-00.abc.mongodb.net
fe80::1%eth0 linklocal.example
198.51.100.1
"""
    hosts = si.parse_hosts(text)
    assert hosts["cluster0-shard-00-00.abc.mongodb.net"] == ["203.0.113.21", "2001:db8::5"]
    assert hosts["alias.example"] == ["203.0.113.21"]
    assert hosts["cluster0-shard-00-01.abc.mongodb.net"] == ["203.0.113.22"]
    assert hosts["linklocal.example"] == ["fe80::1"]
    assert len(hosts) == 4


def test_parse_hosts_names_the_bad_line():
    with pytest.raises(si.SourceIpError, match=r"nodes.hosts line 2: '203.0.113.300'"):
        si.parse_hosts("203.0.113.1 a\n203.0.113.300 b\n", where="nodes.hosts")


def test_load_hosts_file(tmp_path):
    path = tmp_path / "nodes.hosts"
    path.write_text("203.0.113.21 node-a\n")
    assert si.load_hosts_file(str(path)) == {"node-a": ["203.0.113.21"]}
    with pytest.raises(si.SourceIpError, match="cannot be read"):
        si.load_hosts_file(str(tmp_path / "missing"))


def test_resolver_prefers_the_hosts_file_and_never_asks_dns_for_its_names():
    dns = FakeDns({"node-a": ["192.0.2.99"], "node-b": ["203.0.113.22", "203.0.113.22", "2001:db8::2"]})
    resolver = si.Resolver({"node-a": ["203.0.113.21"]}, getaddrinfo=dns)
    assert resolver.resolve("NODE-A.") == (["203.0.113.21"], "hosts_file", None)
    assert resolver.resolve("node-b") == (["203.0.113.22", "2001:db8::2"], "dns", None)
    assert resolver.resolve("node-b") == (["203.0.113.22", "2001:db8::2"], "dns", None)
    assert dns.asked == ["node-b"]  # cached, and node-a never went to DNS


def test_resolver_literal_addresses_and_failures():
    resolver = si.Resolver(getaddrinfo=FakeDns())
    assert resolver.resolve("203.0.113.9") == (["203.0.113.9"], "literal", None)
    assert resolver.resolve("[2001:db8::9]") == (["2001:db8::9"], "literal", None)
    addresses, via, error = resolver.resolve("ghost.invalid")
    assert (addresses, via) == ([], "dns")
    assert "not known" in error


def test_resolver_treats_an_empty_answer_as_unresolved():
    resolver = si.Resolver(getaddrinfo=lambda *args: [])
    assert resolver.resolve("empty.example") == ([], "dns", "no addresses")


# -- nodes --------------------------------------------------------------------------------------


def test_connection_string_hosts():
    assert si.connection_string_hosts("mongodb://a.x:27017,B.x:27018,[2001:db8::1]:27017/?replicaSet=rs0&ssl=true") == (
        ["a.x", "b.x", "2001:db8::1"],
        "rs0",
    )
    assert si.connection_string_hosts("mongodb://user:pw@a.x:27017/admin") == (["a.x"], None)
    assert si.connection_string_hosts("mongodb+srv://c.x") == ([], None)
    assert si.connection_string_hosts(None) == ([], None)


def test_node_list_finds_the_cluster_by_host_alias_or_replica_set():
    processes = [
        process("b-00.abc.mongodb.net"),
        process("internal-01.abc.mongodb.net", alias="b-01.abc.mongodb.net"),
        process("b-config-00.abc.mongodb.net", replica_set="atlas-b-config-0"),
        process("a-00.xyz.mongodb.net", replica_set="atlas-a-shard-0", type_name="REPLICA_PRIMARY"),
        process("stray.abc.mongodb.net", replica_set="unknown-rs"),
        {"port": 27017},  # no host name: nothing to resolve
    ]
    clusters = [
        cluster("Beta", ["b-00.abc.mongodb.net", "b-01.abc.mongodb.net"], replica_set="atlas-b-config-0"),
        cluster("Alpha", ["other.xyz.mongodb.net"], replica_set="atlas-a-shard-0"),
    ]
    nodes = si.node_list(processes, clusters)
    assert [(n["hostname"], n["cluster"]) for n in nodes] == [
        ("stray.abc.mongodb.net", None),
        ("a-00.xyz.mongodb.net", "Alpha"),
        ("b-00.abc.mongodb.net", "Beta"),
        ("b-config-00.abc.mongodb.net", "Beta"),
        ("internal-01.abc.mongodb.net", "Beta"),
    ]
    assert nodes[1]["type_name"] == "REPLICA_PRIMARY"
    assert nodes[1]["replica_set_name"] == "atlas-a-shard-0"


def test_resolve_nodes_reports_unresolved_names_and_tries_the_alias():
    nodes = si.node_list(
        [
            process("n0.abc.mongodb.net"),
            process("n0.abc.mongodb.net", port=27016),
            process("internal-1.abc.mongodb.net", alias="n1.abc.mongodb.net"),
            process("ghost.abc.mongodb.net"),
        ],
        [cluster("C", ["n0.abc.mongodb.net", "n1.abc.mongodb.net", "ghost.abc.mongodb.net"])],
    )
    resolver = si.Resolver({"n0.abc.mongodb.net": ["203.0.113.20"]}, getaddrinfo=FakeDns({"n1.abc.mongodb.net": ["203.0.113.21"]}))
    resolved, sources, unresolved = si.resolve_nodes(nodes, resolver)
    assert unresolved == ["ghost.abc.mongodb.net"]
    by_name = {(n["hostname"], n["port"]): n for n in resolved}
    assert by_name[("internal-1.abc.mongodb.net", 27017)]["resolved_name"] == "n1.abc.mongodb.net"
    assert by_name[("internal-1.abc.mongodb.net", 27017)]["resolved_via"] == "dns"
    assert by_name[("n0.abc.mongodb.net", 27016)]["resolved_via"] == "hosts_file"
    ghost = by_name[("ghost.abc.mongodb.net", 27017)]
    assert (ghost["addresses"], ghost["resolved_name"], ghost["resolved_via"]) == ([], None, None)
    assert "not known" in ghost["error"]
    assert sorted({(s["cidr"], s["hostname"]) for s in sources}) == [
        ("203.0.113.20/32", "n0.abc.mongodb.net"),
        ("203.0.113.21/32", "internal-1.abc.mongodb.net"),
    ]


# -- together ---------------------------------------------------------------------------------------


def test_combine_gives_one_sorted_list_and_every_origin():
    control_plane = si.control_plane_sources(control_plane_body(), ["us-east-1"])
    nodes = si.resolve_nodes(
        si.node_list([process("n0.x"), process("n1.x")], [cluster("C", ["n0.x", "n1.x"])]),
        si.Resolver({"n0.x": ["203.0.113.20"], "n1.x": ["198.51.100.10"]}, getaddrinfo=FakeDns()),
    )
    result = si.combine(control_plane, nodes)
    assert result["cidrs"] == ["198.51.100.10/32", "198.51.100.11/32", "203.0.113.20/32"]
    assert result["sources"] == [
        {"cidr": "198.51.100.10/32", "source": "control_plane", "region": "us-east-1"},
        {"cidr": "198.51.100.10/32", "source": "node", "hostname": "n1.x", "cluster": "C"},
        {"cidr": "198.51.100.11/32", "source": "control_plane", "region": "us-east-1"},
        {"cidr": "203.0.113.20/32", "source": "node", "hostname": "n0.x", "cluster": "C"},
    ]
    assert result["regions"] == ["us-east-1"]
    assert result["unresolved"] == []
    assert len(result["nodes"]) == 2


def test_combine_with_one_part_only():
    assert si.combine(None, None) == {"cidrs": [], "sources": [], "unresolved": [], "nodes": [], "regions": []}
    only_cp = si.combine(si.control_plane_sources(control_plane_body(), ["us-east-1"]), None)
    assert only_cp["cidrs"] == EGRESS
    assert only_cp["nodes"] == []


def test_unresolved_message_names_hosts_reasons_and_the_way_out():
    nodes = [{"hostname": "ghost.x", "error": "Name or service not known"}, {"hostname": "other.x", "error": None}]
    message = si.unresolved_message(GROUP, ["ghost.x", "other.x"], nodes)
    assert "2 cluster node host names could not be resolved: ghost.x (Name or service not known); other.x." in message
    assert "hosts_file" in message
    assert "CMK_ATLAS_HOSTS_FILE" in message
    assert "unresolvable to warn" in message
    assert "not in cidrs" in si.unresolved_message(GROUP, ["ghost.x"], nodes, warn=True)
