"""cmk.atlas.source_ip_info through real ansible-playbook runs against the test bed.

The node host names exist only in the Atlas emulator; the test bed writes them with their public
addresses to a hosts file (``TestBed.write_hosts_file``) that the module reads instead of DNS.
"""

import json

import pytest
from emulators.atlas.testing import AtlasClient, kms_statement, policy, trust_policy

LEGACY = "660000000000000000000012"
PLAIN = "660000000000000000000011"
CONTROL_PLANE_REGIONS = ["ap-southeast-2", "eu-central-1", "eu-west-1", "us-east-1", "us-east-2", "us-west-2"]


def play(*tasks):
    return [{"name": "source ip info", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": list(tasks)}]


def info(name, project_id, **options):
    return {"name": name, "cmk.atlas.source_ip_info": {"project_id": project_id, **options}}


def egress_cidrs(bed):
    return [f"{ip}/32" for ip in bed.atlas_egress_ips]


def node_ips(bed, project_id, clusters=None):
    state = bed.atlas.project_state(project_id)["clusters"]
    return {node["hostname"]: node["public_ip"] for name, cluster in state.items() if clusters is None or name in clusters for node in cluster["nodes"]}


def sort_key(cidr):
    return tuple(int(part) for part in cidr.split("/")[0].split("."))


@pytest.mark.scenario("demo")
def test_control_plane_and_node_addresses_from_the_test_bed(clean_testbed, testbed_env, run_playbook, tmp_path):
    bed = clean_testbed
    env = {**testbed_env, "CMK_ATLAS_HOSTS_FILE": bed.write_hosts_file(str(tmp_path / "nodes.hosts"))}
    nodes = node_ips(bed, LEGACY)
    expected = sorted(set(egress_cidrs(bed)) | {f"{ip}/32" for ip in nodes.values()}, key=sort_key)
    bed.clear_logs()

    for check_mode in (False, True):
        result = run_playbook(play(info("legacy", LEGACY)), env=env, check=check_mode).assert_ok().task("legacy")
        assert result["changed"] is False
        assert result["cidrs"] == expected
        assert result["unresolved"] == []
        assert result["regions"] == CONTROL_PLANE_REGIONS
        control_plane = [s for s in result["sources"] if s["source"] == "control_plane"]
        assert {(s["cidr"], s["region"]) for s in control_plane} == {(c, r) for c in egress_cidrs(bed) for r in CONTROL_PLANE_REGIONS}
        node_sources = {s["hostname"]: (s["cidr"], s["cluster"]) for s in result["sources"] if s["source"] == "node"}
        orders = set(node_ips(bed, LEGACY, ["Orders"]))
        assert node_sources == {host: (f"{ip}/32", "Orders" if host in orders else "Archive") for host, ip in nodes.items()}
        assert sorted(n["hostname"] for n in result["nodes"]) == sorted(nodes)
        assert {n["resolved_via"] for n in result["nodes"]} == {"hosts_file"}
        assert all(n["addresses"] == [nodes[n["hostname"]]] for n in result["nodes"])
    # Read-only: no Atlas write, no AWS call at all.
    assert bed.write_calls() == []
    assert bed.proxy.request_log() == []


@pytest.mark.scenario("demo")
def test_unresolvable_host_names_fail_or_warn_but_are_never_dropped(clean_testbed, testbed_env, run_playbook, tmp_path):
    bed = clean_testbed
    nodes = node_ips(bed, PLAIN)
    missing = sorted(nodes)[0]
    # The option wins over the environment variable; the file lacks one node (which DNS does not know either).
    partial = tmp_path / "partial.hosts"
    partial.write_text("".join(f"{ip} {host}\n" for host, ip in nodes.items() if host != missing))
    env = {**testbed_env, "CMK_ATLAS_HOSTS_FILE": bed.write_hosts_file(str(tmp_path / "all.hosts"))}

    run = run_playbook(play(info("fail", PLAIN, hosts_file=str(partial))), env=env)
    assert run.rc != 0
    assert run.failed_tasks() == ["fail"]
    failed = run.task("fail")
    assert missing in failed["msg"]
    assert "hosts_file" in failed["msg"]
    assert failed["unresolved"] == [missing]

    warned = run_playbook(play(info("warn", PLAIN, hosts_file=str(partial), unresolvable="warn")), env=env).assert_ok().task("warn")
    assert warned["unresolved"] == [missing]
    assert f"{nodes[missing]}/32" not in warned["cidrs"]
    assert any(missing in warning for warning in warned["warnings"])
    (entry,) = [n for n in warned["nodes"] if n["hostname"] == missing]
    assert entry["addresses"] == []
    assert entry["error"]

    full = run_playbook(play(info("env", PLAIN)), env=env).assert_ok().task("env")
    assert full["unresolved"] == []
    assert f"{nodes[missing]}/32" in full["cidrs"]


def test_control_plane_only_needs_no_credentials(clean_testbed, testbed_env, run_playbook):
    bed = clean_testbed
    env = {k: v for k, v in testbed_env.items() if not k.startswith(("MONGODB_ATLAS_PUBLIC", "MONGODB_ATLAS_PRIVATE", "MONGODB_ATLAS_CLIENT"))}
    project = bed.projects["empty"]
    result = run_playbook(play(info("cp", project, include_nodes=False, regions=["US_EAST_1", "eu-west-1"])), env=env).assert_ok().task("cp")
    assert result["cidrs"] == egress_cidrs(bed)
    assert result["regions"] == ["eu-west-1", "us-east-1"]
    assert result["nodes"] == []

    run = run_playbook(play(info("unknown region", project, include_nodes=False, regions=["ap-south-2"])), env=env)
    assert run.rc != 0
    assert "ap-south-2" in run.task("unknown region")["msg"]
    assert "us-east-1" in run.task("unknown region")["msg"]

    # The nodes need the project's processes, which need credentials.
    run = run_playbook(play(info("nodes", project)), env=env)
    assert run.rc != 0
    assert "credentials are missing" in run.task("nodes")["msg"]


def test_options_that_collect_nothing_are_refused(clean_testbed, testbed_env, run_playbook):
    project = clean_testbed.projects["empty"]
    run = run_playbook(play(info("nothing", project, include_nodes=False, include_control_plane=False)), env=testbed_env)
    assert run.rc != 0
    assert "nothing to collect" in run.task("nothing")["msg"]
    run = run_playbook(play(info("bad file", project, hosts_file="/nonexistent/nodes.hosts")), env=testbed_env)
    assert "cannot be read" in run.task("bad file")["msg"]


# -- the addresses against the emulator's key access check -----------------------------------------


def enable_with_role_and_aws_cluster(bed, project_id, key):
    """Role-based encryption at rest with an unconditioned KMS policy, and Cluster0 on provider AWS."""
    api = AtlasClient(bed.atlas_url, bed.api_key["public_key"], bed.api_key["private_key"])
    role = api.post(f"/groups/{project_id}/cloudProviderAccess", {"providerName": "AWS"}).json()
    iam = bed.aws_client("iam")
    trust = trust_policy(role["atlasAWSAccountArn"], role["atlasAssumedRoleExternalId"])
    arn = iam.create_role(RoleName="atlas-kms", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="atlas-kms", PolicyName="cmk-atlas-kms-access", PolicyDocument=json.dumps(policy(kms_statement(key["arn"]))))
    response = api.patch(f"/groups/{project_id}/cloudProviderAccess/{role['roleId']}", {"providerName": "AWS", "iamAssumedRoleArn": arn})
    assert response.status_code == 200, response.text
    aws_kms = {"enabled": True, "customerMasterKeyID": key["key_id"], "region": "US_EAST_1", "roleId": role["roleId"]}
    response = api.patch(f"/groups/{project_id}/encryptionAtRest", {"awsKms": aws_kms})
    assert response.status_code == 200, response.text
    response = api.patch(f"/groups/{project_id}/clusters/Cluster0", {"encryptionAtRestProvider": "AWS"})
    assert response.status_code == 200, response.text
    return role


def restrict_and_read(role, key_arn, project_id, source_ips):
    """Write the KMS policy with ``source_ips`` (a Jinja expression), then read Atlas's verdict."""
    return [
        dict(info("sources", project_id), register="sources"),
        {
            "name": "policy",
            "cmk.atlas.aws_iam_role": {
                "name": "atlas-kms",
                "atlas_aws_account_arn": role["atlasAWSAccountArn"],
                "external_id": role["atlasAssumedRoleExternalId"],
                "kms_key_arns": [key_arn],
                "source_ips": source_ips,
            },
        },
        {"name": "ear", "cmk.atlas.encryption_at_rest_info": {"project_id": project_id}},
    ]


@pytest.mark.scenario("demo")
def test_key_access_check_passes_with_the_addresses_and_fails_without_them(clean_testbed, testbed_env, run_playbook, tmp_path):
    bed = clean_testbed
    key = bed.keys["main"]
    role = enable_with_role_and_aws_cluster(bed, PLAIN, key)
    env = {**testbed_env, "CMK_ATLAS_HOSTS_FILE": bed.write_hosts_file(str(tmp_path / "nodes.hosts"))}
    node_cidrs = sorted(f"{ip}/32" for ip in node_ips(bed, PLAIN).values())

    with_all = run_playbook(play(*restrict_and_read(role, key["arn"], PLAIN, "{{ sources.cidrs }}")), env=env).assert_ok()
    assert with_all.task("sources")["cidrs"] == sorted(egress_cidrs(bed) + node_cidrs, key=sort_key)
    document = bed.aws_client("iam").get_role_policy(RoleName="atlas-kms", PolicyName="cmk-atlas-kms-access")["PolicyDocument"]
    assert sorted(document["Statement"][0]["Condition"]["IpAddress"]["aws:SourceIp"]) == sorted(egress_cidrs(bed) + node_cidrs)
    assert with_all.task("ear")["encryption_at_rest"]["valid"] is True

    # Without the nodes: Atlas's control plane still gets the key, the cluster's nodes do not.
    control_plane_only = "{{ sources.sources | selectattr('source', 'eq', 'control_plane') | map(attribute='cidr') | unique | list }}"
    run = run_playbook(play(*restrict_and_read(role, key["arn"], PLAIN, control_plane_only)), env=env).assert_ok()
    assert run.task("ear")["encryption_at_rest"]["valid"] is False

    # Without the control plane: Atlas's own check fails.
    nodes_only = "{{ sources.sources | selectattr('source', 'eq', 'node') | map(attribute='cidr') | unique | list }}"
    run = run_playbook(play(*restrict_and_read(role, key["arn"], PLAIN, nodes_only)), env=env).assert_ok()
    assert run.task("ear")["encryption_at_rest"]["valid"] is False

    # A node moves: the module sees the new address once the hosts file follows, and the policy with it passes again.
    moved = sorted(node_ips(bed, PLAIN))[1]
    bed.atlas.set_node_public_ip(PLAIN, "Cluster0", moved, "203.0.113.251")
    bed.write_hosts_file(env["CMK_ATLAS_HOSTS_FILE"])
    run = run_playbook(play(*restrict_and_read(role, key["arn"], PLAIN, "{{ sources.cidrs }}")), env=env).assert_ok()
    assert "203.0.113.251/32" in run.task("sources")["cidrs"]
    assert run.task("ear")["encryption_at_rest"]["valid"] is True
