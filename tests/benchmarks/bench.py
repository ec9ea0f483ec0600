"""make bench: wall time, CPU, memory and calls of the cmk.atlas playbooks against the test bed, beside two floors.

Runs, on one test bed started here (tests/emulators), with ansible-playbook from the benchmark
toolchain (--ansible-bin, default .venv-bench/bin, which also has amazon.aws):

- the one-module floor (a play with one ansible.builtin.ping, connection local) and the baseline
  (tests/benchmarks/baseline/enable.yml: amazon.aws and the Atlas Admin API), each paired run for run
  with cmk.atlas.enable: from scratch, re-run (converged), and cmk.atlas.verify after it;
- cmk.atlas.enable --check on an empty project, cmk.atlas.switch and its re-run;
- enable from scratch with a 10 s IAM propagation delay, cmk.atlas and the baseline paired;
- 5, 20 and 100 projects in one inventory with forks 5 and 20: enable from scratch, converged, and
  verify over the 100 converged projects.

Counts come from the test bed's request logs (Atlas emulator and AWS fault proxy) and from a callback
that records every task result; task times from a second callback (callback_plugins/bench_timing.py);
CPU and peak memory from the operating system (wait4 and /proc). The script reports whether the targets
are met but never fails on them; it fails only when a playbook fails.

    .venv/bin/python tests/benchmarks/bench.py [--runs 5] [--quick] [--output docs/performance.md]
"""

import argparse
import datetime
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TESTS = os.path.join(REPO, "tests")
CALLBACK_DIRS = (os.path.join(TESTS, "integration", "callback_plugins"), os.path.join(HERE, "callback_plugins"))
BASELINE = os.path.join(HERE, "baseline", "enable.yml")
sys.path.insert(0, TESTS)

from emulators.testbed import TestBed  # noqa: E402  pylint: disable=wrong-import-position

# Targets of the issue that introduced these rows.
FLOOR_TARGET = 1.5  # converged enable <= 1.5 x the one-module floor
BASELINE_TARGET = 0.5  # converged and fresh enable <= 0.5 x the baseline
VERIFY_TARGET = 1.1  # verify as cheap as a converged enable (10 % for the noise of a shared machine)
WAIT_TARGET = 2.0  # a wait ends at most 2 s after the moment it can succeed
VERIFY_100_TARGET = 90.0  # seconds for verify over 100 converged projects
LINEAR_TOLERANCE = 1.15  # per-project CPU at the largest size within 15 % of the next size: linear
PROPAGATION_DELAY = 10.0
# Actions that run on the controller only: they are tasks, not module invocations.
CONTROLLER_ACTIONS = {
    "ansible.builtin.set_fact",
    "ansible.builtin.debug",
    "ansible.builtin.fail",
    "ansible.builtin.assert",
    "ansible.builtin.validate_argument_spec",
    "ansible.builtin.meta",
    "ansible.builtin.include_tasks",
    "ansible.builtin.import_tasks",
    "ansible.builtin.include_role",
    "set_fact",
    "debug",
    "fail",
    "assert",
    "validate_argument_spec",
    "meta",
}
HEAVY_LIBRARIES = ("boto3", "botocore", "requests")
FOREIGN_PREFIXES = ("ANSIBLE_", "AWS_", "MONGODB_ATLAS_", "BOTO_")
KEY_ALIAS = "alias/atlas-cmk"
FLOOR_PLAYBOOK = """- name: One module, the floor of any playbook run
  hosts: atlas_projects
  connection: local
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""
# What each task of the baseline does, for the report (the playbook's comments say why).
BASELINE_TASKS = (
    ("Read the project's cloud provider access roles and encryption at rest", "two url lookups on the controller (HTTP digest): no module run"),
    ("Resolve the key alias to its ARN", "kms_key_info with pending_deletion: true (3 KMS calls, not 7); only while Atlas has no key through the role"),
    ("Name the key and its region", "set_fact: the key ARN from kms_key_info, or the one Atlas already uses through the role"),
    ("Create an Atlas cloud provider access role unless one is bound to the IAM role", "uri POST; only when no Atlas role is authorized for the IAM role name"),
    ("Remember the Atlas role", "set_fact"),
    ("Create the IAM role Atlas assumes, trusting Atlas's account with the external ID", "iam_role without instance profile or waiter; returns the ARN"),
    ("Let the IAM role use the key", "iam_policy: the inline policy with the three KMS actions on the key"),
    ("Authorize the Atlas role for the IAM role, retrying while IAM propagates", "uri PATCH, every 2 s while Atlas answers 400; for a role not yet authorized"),
    ("Configure encryption at rest with the key through the Atlas role", "uri PATCH; only when the read shows another key, role or none"),
    ("Wait until Atlas reports the key valid", "uri GET every 2 s; only when the last answer did not say valid"),
)


class BenchError(Exception):
    """A playbook failed or the toolchain is missing; the message says which."""


# -- test bed scenarios -------------------------------------------------------------------------------


def projects_scenario(count, name=None):
    """Account R with one key and ``count`` empty projects (p01, p02, ...)."""
    projects = {}
    for number in range(1, count + 1):
        projects[f"p{number:02d}"] = {"id": f"6600000000000000000{100 + number:05d}", "name": f"cmk-bench-{number:02d}"}
    return {
        "name": name or f"scaling{count}",
        "description": f"benchmark: {count} projects without encryption at rest",
        "aws": {"region": "us-east-1", "accounts": {"R": "111111111111"}, "keys": {"main": {"account": "R", "alias": KEY_ALIAS}}},
        "atlas": {"projects": projects},
    }


# -- running ansible-playbook ---------------------------------------------------------------------------


def install_collection(ansible_bin, work):
    """Build the collection from this checkout's tracked and new files and install it under ``work``."""
    source = os.path.join(work, "source")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, check=True, capture_output=True).stdout.split(
        b"\0"
    )
    for name in filter(None, files):
        relative = name.decode()
        origin = os.path.join(REPO, relative)
        if not os.path.exists(origin) or relative.startswith(".venv"):
            continue
        target = os.path.join(source, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(origin, target)
    galaxy = os.path.join(ansible_bin, "ansible-galaxy")
    build = os.path.join(work, "build")
    subprocess.run([galaxy, "collection", "build", source, "--output-path", build], check=True, capture_output=True)
    (tarball,) = [os.path.join(build, n) for n in os.listdir(build) if n.endswith(".tar.gz")]
    collections = os.path.join(work, "collections")
    subprocess.run([galaxy, "collection", "install", tarball, "-p", collections], check=True, capture_output=True)
    return collections


def _children(pid):
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                found += [int(p) for p in handle.read().split()]
    except OSError:
        pass
    return found


def _pss_kib(pid):
    """Proportional set size of one process (shared pages split between their users), else its RSS."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError):
        return 0


class TreeMemory(threading.Thread):
    """Samples the memory of a process and all its descendants (sum of PSS) until stopped; keeps the peak."""

    def __init__(self, pid, interval=0.2):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self.peak_processes = 0
        self._stop_event = threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            tree, todo = [], [self.pid]
            while todo:
                pid = todo.pop()
                tree.append(pid)
                todo += _children(pid)
            total = sum(_pss_kib(pid) for pid in tree)
            if total > self.peak_kib:
                self.peak_kib, self.peak_processes = total, len(tree)
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join()


class Runner:
    """Runs playbooks against the test bed and returns what each run cost."""

    def __init__(self, bed, ansible_bin, collections, work):
        self.bed = bed
        self.ansible_bin = ansible_bin
        self.collections = collections
        self.work = work
        self.count = 0
        self.floor = os.path.join(work, "floor.yml")
        with open(self.floor, "w", encoding="utf-8") as handle:
            handle.write(FLOOR_PLAYBOOK)

    def environment(self, run_dir, results_file, timing_file):
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
        env.update(self.bed.env())
        env.update(
            {
                "ANSIBLE_COLLECTIONS_PATH": self.collections,
                "ANSIBLE_CALLBACK_PLUGINS": os.pathsep.join(CALLBACK_DIRS),
                "ANSIBLE_CALLBACKS_ENABLED": "record_results,bench_timing",
                "ANSIBLE_PYTHON_INTERPRETER": os.path.join(self.ansible_bin, "python"),
                "ANSIBLE_LOCAL_TEMP": os.path.join(run_dir, "tmp"),
                "ANSIBLE_HOME": os.path.join(run_dir, "home"),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "0",
                "CMK_ATLAS_RESULTS_FILE": results_file,
                "CMK_ATLAS_TIMING_FILE": timing_file,
                "PATH": self.ansible_bin + os.pathsep + os.environ.get("PATH", ""),
            }
        )
        return env

    def write_inventory(self, run_dir, hosts):
        path = os.path.join(run_dir, "inventory.yml")
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"atlas_projects": {"hosts": hosts}}, handle, sort_keys=False)
        return path

    def run(self, playbook, hosts, check=False, forks=None, extra_env=None):
        """Run ``playbook`` on ``hosts`` (name -> variables) from a clean log; return the measurement."""
        self.count += 1
        run_dir = os.path.join(self.work, f"run{self.count:03d}")
        os.makedirs(run_dir)
        results_file = os.path.join(run_dir, "results.jsonl")
        timing_file = os.path.join(run_dir, "timing.json")
        args = [os.path.join(self.ansible_bin, "ansible-playbook"), playbook, "-i", self.write_inventory(run_dir, hosts)]
        if check:
            args.append("--check")
        if forks:
            args.extend(["--forks", str(forks)])
        env = self.environment(run_dir, results_file, timing_file)
        env.update({key: value.format(run_dir=run_dir) for key, value in (extra_env or {}).items()})
        self.bed.clear_logs()
        output = os.path.join(run_dir, "output.txt")
        with open(output, "w", encoding="utf-8") as out:
            launched = time.time()
            start = time.perf_counter()
            proc = subprocess.Popen(args, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
            memory = TreeMemory(proc.pid)
            memory.start()
            timer = threading.Timer(1800, proc.kill)
            timer.start()
            # wait4: the CPU time and peak RSS of ansible-playbook and every process it waited for (its workers).
            _pid, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - start
            timer.cancel()
            memory.stop()
            proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            with open(output, encoding="utf-8") as handle:
                text = handle.read()
            raise BenchError("{} failed (rc={}):\n{}".format(" ".join(args), proc.returncode, text[-5000:]))
        results = []
        if os.path.exists(results_file):
            with open(results_file, encoding="utf-8") as handle:
                results = [json.loads(line) for line in handle if line.strip()]
        timing = []
        if os.path.exists(timing_file):
            with open(timing_file, encoding="utf-8") as handle:
                timing = json.load(handle)
        atlas_log, aws_log = self.bed.atlas.request_log(), self.bed.proxy.request_log()
        measurement = measure(seconds, results, atlas_log, aws_log)
        measurement.update(
            {
                "cpu": usage.ru_utime + usage.ru_stime,
                "max_rss_kib": usage.ru_maxrss,
                "peak_pss_kib": memory.peak_kib,
                "peak_processes": memory.peak_processes,
                "phases": phases(launched, launched + seconds, timing, atlas_log, aws_log),
                "run_dir": run_dir,
                "env": env,
                "results": [{"task": r["task"], "status": r["status"]} for r in results],
                "atlas_log": atlas_log,
                "aws_log": aws_log,
            }
        )
        return measurement


def phases(launched, ended, timing, atlas_log, aws_log):
    """The run split into start-up, each task (start to the next start) and the end, with the calls made in each."""
    marks = [("start-up (launch to first task)", launched)]
    marks += [(event["name"], event["time"]) for event in timing if event["kind"] == "task"]
    end = next((event["time"] for event in timing if event["kind"] == "end"), ended)
    marks.append(("end (last task to exit)", end))
    rows = []
    for index, (name, start) in enumerate(marks):
        stop = marks[index + 1][1] if index + 1 < len(marks) else ended
        atlas = sum(1 for e in atlas_log if start <= e["time"] < stop)
        aws = sum(1 for e in aws_log if start <= e["time"] < stop)
        rows.append({"name": name, "seconds": max(0.0, stop - start), "atlas": atlas, "aws": aws})
    return rows


def measure(seconds, results, atlas_log, aws_log):
    modules = Counter()
    for result in results:
        if result["status"] == "skipped" or result["action"] in CONTROLLER_ACTIONS:
            continue
        # A task with until/retries runs its module once per attempt.
        modules[result["action"]] += int(result["result"].get("attempts") or 1)
    atlas_ops = Counter()
    atlas_gets = Counter()
    challenges = 0
    for entry in atlas_log:
        if entry["status"] == 401:
            challenges += 1
            continue
        atlas_ops[(entry["operation_id"] or entry["path"], bool(entry["write"]))] += 1
        if entry["method"] == "GET":
            atlas_gets[entry["path"]] += 1
    aws_ops = Counter()
    for entry in aws_log:
        aws_ops[("{}:{}".format(entry["service"], entry["operation"]), entry["account"], bool(entry["write"]))] += 1
    return {
        "seconds": seconds,
        "modules": sum(modules.values()),
        "module_actions": dict(modules),
        "atlas_reads": sum(n for (op, write), n in atlas_ops.items() if not write),
        "atlas_writes": sum(n for (op, write), n in atlas_ops.items() if write),
        "atlas_challenges": challenges,
        "aws_reads": sum(n for key, n in aws_ops.items() if not key[2]),
        "aws_writes": sum(n for key, n in aws_ops.items() if key[2]),
        "atlas_ops": {"{}{}".format(op, " (write)" if write else ""): n for (op, write), n in atlas_ops.items()},
        "aws_ops": {"{}{}".format(op, " (write)" if write else ""): n for (op, account, write), n in aws_ops.items()},
        "atlas_gets": dict(atlas_gets),
        "aws_reads_by_account": {f"{op} in {account}": n for (op, account, write), n in aws_ops.items() if not write},
        "writes": [f"atlas {op}" for (op, write), n in atlas_ops.items() if write for _call in range(n)]
        + [f"aws {op} in {account}" for (op, account, write), n in aws_ops.items() if write for _call in range(n)],
    }


def authorize_lateness(measurement, delay):
    """Seconds from the moment the authorization could succeed (IAM role created + delay) to the accepted PATCH."""
    created = [e["time"] for e in measurement["aws_log"] if e["operation"] == "CreateRole" and e.get("status") == 200]
    accepted = [e["time"] for e in measurement["atlas_log"] if e["operation_id"] == "authorizeGroupCloudProviderAccessRole" and e["status"] == 200]
    attempts = sum(1 for e in measurement["atlas_log"] if e["operation_id"] == "authorizeGroupCloudProviderAccessRole" and e["status"] != 401)
    if not created or not accepted:
        return None, attempts
    return accepted[0] - (created[0] + delay), attempts


# -- the cases --------------------------------------------------------------------------------------------


def enable_host(bed, project, role_name):
    return {"cmk_atlas_project_id": bed.projects[project], "cmk_atlas_iam_role_name": role_name, "cmk_atlas_kms_key": KEY_ALIAS}


PAIR_SCENARIO = projects_scenario(2, "pair")


def run_cases(runner, bed, runs, has_verify):
    """Every case ``runs`` times. Each round pairs cmk.atlas with the baseline run for run (A B A B) on two projects
    of one test bed, and runs the one-module floor beside them, so that load from elsewhere hits both alike."""
    cases = {}

    def record(name, measurement):
        cases.setdefault(name, []).append(measurement)

    for number in range(runs):
        print(f"round {number + 1}/{runs}", flush=True)
        bed.load(PAIR_SCENARIO)
        ours = {"p01": enable_host(bed, "p01", "atlas-kms-p01")}
        theirs = {"p02": enable_host(bed, "p02", "atlas-kms-p02")}
        record("one-module floor", runner.run(runner.floor, ours))
        record("enable from scratch", runner.run("cmk.atlas.enable", ours))
        record("baseline enable from scratch", runner.run(BASELINE, theirs))
        record("enable re-run (converged)", runner.run("cmk.atlas.enable", ours))
        record("baseline enable re-run (converged)", runner.run(BASELINE, theirs))
        if has_verify:
            record("verify", runner.run("cmk.atlas.verify", ours))
        bed.load("empty")
        empty = {"empty": enable_host(bed, "empty", "atlas-kms-empty")}
        record("enable --check, empty project", runner.run("cmk.atlas.enable", empty, check=True))
        bed.load("demo")
        legacy = {
            "legacy": {
                "cmk_atlas_project_id": bed.projects["legacy"],
                "cmk_atlas_iam_role_name": "atlas-kms-legacy-role",
                "cmk_atlas_confirm_switch": True,
            }
        }
        record("switch", runner.run("cmk.atlas.switch", legacy))
        record("switch re-run (converged)", runner.run("cmk.atlas.switch", legacy))
    return cases


def run_propagation(runner, bed, runs):
    """Enable from scratch while IAM takes PROPAGATION_DELAY seconds to propagate, cmk.atlas and the baseline paired."""
    rows = {"enable from scratch, 10 s IAM propagation": [], "baseline enable from scratch, 10 s IAM propagation": []}
    for number in range(runs):
        print(f"propagation round {number + 1}/{runs}", flush=True)
        bed.load(PAIR_SCENARIO)
        bed.atlas.set_propagation_delay(PROPAGATION_DELAY)
        for name, playbook, project in (
            ("enable from scratch, 10 s IAM propagation", "cmk.atlas.enable", "p01"),
            ("baseline enable from scratch, 10 s IAM propagation", BASELINE, "p02"),
        ):
            measurement = runner.run(playbook, {project: enable_host(bed, project, "atlas-kms-" + project)})
            measurement["late"], measurement["authorize_attempts"] = authorize_lateness(measurement, PROPAGATION_DELAY)
            rows[name].append(measurement)
    return rows


def run_scaling(runner, bed, sizes, forks_list, verify_size):
    rows = []
    for size in sizes:
        for forks in forks_list:
            bed.load(projects_scenario(size))
            hosts = {name: enable_host(bed, name, "atlas-kms-" + name) for name in sorted(bed.projects)}
            print(f"scaling: {size} projects, forks {forks}", flush=True)
            rows.append(("enable from scratch", size, forks, runner.run("cmk.atlas.enable", hosts, forks=forks)))
            rows.append(("enable converged", size, forks, runner.run("cmk.atlas.enable", hosts, forks=forks)))
            if size == verify_size:
                rows.append(("verify converged", size, forks, runner.run("cmk.atlas.verify", hosts, forks=forks)))
    return rows


# -- inside one module run ---------------------------------------------------------------------------------

IMPORT_GROUPS = (
    ("the collection's modules and module_utils", ("ansible_collections.",)),
    ("ansible-core's module_utils (AnsibleModule)", ("ansible.", "ansible")),
    ("boto3 and botocore", ("boto3", "botocore", "s3transfer", "jmespath", "dateutil")),
    ("requests and urllib3", ("requests", "urllib3", "charset_normalizer", "idna", "certifi")),
)


def import_groups(stderr):
    """Self time of every import (python -X importtime), summed by package group, in seconds."""
    totals = Counter()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.split("|")
        name = parts[2].strip()
        group = next(
            (label for label, prefixes in IMPORT_GROUPS if any(name == p or name.startswith(p if p.endswith(".") else p + ".") for p in prefixes)), None
        )
        totals[group or "the standard library and the rest"] += int(parts[0].split(":")[1]) / 1e6
    return totals


PAYLOAD_PROBE = """
import json, sys, time
from ansible.plugins.loader import init_plugin_loader, module_loader
init_plugin_loader()
from ansible.executor import module_common
from ansible.template import Templar
found = {}
for name in sys.argv[1:]:
    path = module_loader.find_plugin_with_context(name).plugin_resolved_path
    start = time.perf_counter()
    built = module_common.modify_module(module_name=name, module_path=path, module_args={}, templar=Templar(loader=None),
        task_vars={"ansible_playbook_python": sys.executable}, remote_is_local=True)
    found[name] = {"seconds": time.perf_counter() - start, "bytes": len(built.b_module_data)}
print(json.dumps(found))
"""


def payload_builds(runner, names):
    """Seconds and bytes of the first build of each module's payload (AnsiballZ), as the controller makes it once a run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    env["ANSIBLE_COLLECTIONS_PATH"] = runner.collections
    env["ANSIBLE_HOME"] = os.path.join(runner.work, "payload-home")
    found = {}
    for name in names:  # one process each: the first build of each is what a run pays
        proc = subprocess.run([os.path.join(runner.ansible_bin, "python"), "-c", PAYLOAD_PROBE, name], env=env, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            found.update(json.loads(proc.stdout))
    return found


def profile_module_runs(runner, bed, runs):
    """Run the module payload of a converged enable (and of the floor's ping) by itself under python -X importtime: where its time goes."""
    bed.load(PAIR_SCENARIO)
    hosts = {"p01": enable_host(bed, "p01", "atlas-kms-p01")}
    runner.run("cmk.atlas.enable", hosts)
    keep = {"ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": "{run_dir}/remote"}
    profiles = {}
    for label, playbook, payload in (
        ("cmk.atlas.key_management (converged enable)", "cmk.atlas.enable", "AnsiballZ_key_management.py"),
        ("ansible.builtin.ping (the floor)", runner.floor, "AnsiballZ_ping.py"),
    ):
        kept = runner.run(playbook, hosts, extra_env=keep)
        found = [os.path.join(root, payload) for root, _dirs, names in os.walk(os.path.join(kept["run_dir"], "remote")) if payload in names]
        if not found:
            continue
        samples = []
        for _attempt in range(runs):
            start = time.perf_counter()
            proc = subprocess.run(
                [os.path.join(runner.ansible_bin, "python"), "-X", "importtime", found[0]],
                env=kept["env"],
                capture_output=True,
                text=True,
                check=False,
                cwd=kept["run_dir"],
            )
            samples.append({"seconds": time.perf_counter() - start, "imports": import_groups(proc.stderr), "rc": proc.returncode})
        profiles[label] = samples
    builds = payload_builds(runner, ["cmk.atlas.key_management", "ansible.builtin.ping"])
    for label, name in (
        ("cmk.atlas.key_management (converged enable)", "cmk.atlas.key_management"),
        ("ansible.builtin.ping (the floor)", "ansible.builtin.ping"),
    ):
        if label in profiles and name in builds:
            for sample in profiles[label]:
                sample["payload"] = builds[name]
    return profiles


# -- imports of the modules ---------------------------------------------------------------------------------

IMPORT_PROBE = """
import importlib, json, sys, time
start = time.perf_counter()
importlib.import_module(sys.argv[1])
elapsed = time.perf_counter() - start
print(json.dumps({"ms": elapsed * 1000, "loaded": [n for n in sys.argv[2:] if n in sys.modules]}))
"""


def check_imports(ansible_bin, collections):
    """Which heavy libraries each module loads when imported without running ``main``."""
    modules_dir = os.path.join(collections, "ansible_collections", "cmk", "atlas", "plugins", "modules")
    python = os.path.join(ansible_bin, "python")
    rows = []
    for filename in sorted(os.listdir(modules_dir)):
        if not filename.endswith(".py") or filename.startswith("_"):
            continue
        name = filename[:-3]
        with open(os.path.join(modules_dir, filename), encoding="utf-8") as handle:
            source = handle.read()
        # The doc fragments say what a module talks to (".IGNORED" marks options it takes but does not use).
        uses = set()
        if "- cmk.atlas.aws\n" in source:
            uses.update(("boto3", "botocore"))
        if "- cmk.atlas.atlas\n" in source:
            uses.add("requests")
        proc = subprocess.run(
            [python, "-c", IMPORT_PROBE, "ansible_collections.cmk.atlas.plugins.modules." + name, *HEAVY_LIBRARIES],
            env={"PYTHONPATH": collections, "PATH": os.environ.get("PATH", "")},
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            rows.append({"module": name, "error": proc.stderr.strip().splitlines()[-1:], "uses": sorted(uses), "loaded": [], "ms": 0.0})
            continue
        probe = json.loads(proc.stdout)
        rows.append({"module": name, "uses": sorted(uses), "loaded": probe["loaded"], "ms": probe["ms"], "error": None})
    for row in rows:
        row["unused_loaded"] = sorted(set(row["loaded"]) - set(row["uses"]))
        row["ok"] = not row["error"] and not row["unused_loaded"]
    return rows


# -- statistics -------------------------------------------------------------------------------------------------


def seconds_of(runs):
    return [r["seconds"] for r in runs]


def median(values):
    return statistics.median(values)


def spread(values, unit=" s", digits=2):
    return f"{median(values):.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def paired_ratios(ours, theirs):
    """Run-for-run ratios of two cases recorded in the same rounds."""
    return [a["seconds"] / b["seconds"] for a, b in zip(ours, theirs)]


def ratio_text(values):
    return f"{median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


# -- findings and report --------------------------------------------------------------------------------------


def findings_of(measurement):
    found = [f"write: {write}" for write in measurement["writes"]]
    found += [f"Atlas GET {path} requested {n} times" for path, n in sorted(measurement["atlas_gets"].items()) if n > 1]
    found += [f"AWS {op} requested {n} times" for op, n in sorted(measurement["aws_reads_by_account"].items()) if n > 1]
    return found


def ops_text(ops):
    return ", ".join(f"{op} x{n}" for op, n in sorted(ops.items())) or "none"


def machine():
    model, cores = "unknown CPU", 0
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("processor"):
                    cores += 1
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kib = int(handle.readline().split()[1])
        memory = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{model}, {cores or os.cpu_count()} logical CPUs{memory}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def ansible_version(ansible_bin):
    out = subprocess.run([os.path.join(ansible_bin, "ansible-playbook"), "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "unknown"


def phase_table(runs):
    """Median seconds per phase over the runs of one case (the phases of the first run name the rows)."""
    names = [p["name"] for p in runs[0]["phases"]]
    lines = ["| Phase | Median | min-max | Atlas calls | AWS calls |", "| --- | ---: | --- | ---: | ---: |"]
    for index, name in enumerate(names):
        values = [r["phases"][index]["seconds"] for r in runs if len(r["phases"]) == len(names)]
        first = runs[0]["phases"][index]
        lines.append(f"| {name} | {median(values) * 1000:.0f} ms | {min(values) * 1000:.0f}-{max(values) * 1000:.0f} ms | {first['atlas']} | {first['aws']} |")
    lines.append(f"| **total** | {median(seconds_of(runs)) * 1000:.0f} ms | {min(seconds_of(runs)) * 1000:.0f}-{max(seconds_of(runs)) * 1000:.0f} ms | | |")
    return lines


def phase_median(runs, predicate):
    """Median over runs of the summed seconds of the phases whose name satisfies ``predicate``."""
    return median([sum(p["seconds"] for p in r["phases"] if predicate(p["name"])) for r in runs])


def is_startup(name):
    return name.startswith("start-up")


MODULE_TASKS = ("Plan and apply customer key management for the project", "Read and judge the project as enable would", "Ping")


def is_module_task(name):
    return name.split(" : ")[-1] in MODULE_TASKS


def explain(cases):
    """Where a converged enable spends the time the one-module floor does not, from the phase medians."""
    ours, floor = cases.get("enable re-run (converged)"), cases.get("one-module floor")
    if not ours or not floor:
        return []
    total_ours, total_floor = median(seconds_of(ours)), median(seconds_of(floor))
    start_ours, start_floor = phase_median(ours, is_startup), phase_median(floor, is_startup)
    module_ours, module_floor = phase_median(ours, is_module_task), phase_median(floor, is_module_task)
    other_ours = total_ours - start_ours - module_ours
    other_floor = total_floor - start_floor - module_floor
    return [
        f"A converged enable takes {total_ours:.2f} s against the floor's {total_floor:.2f} s"
        f" ({total_ours - total_floor:+.2f} s; the target, {FLOOR_TARGET} x the floor, is {FLOOR_TARGET * total_floor:.2f} s). Medians of the phases:",
        "",
        f"- start-up to the first task: {start_ours:.2f} s against {start_floor:.2f} s ({start_ours - start_floor:+.2f} s: the playbook, its two plays,"
        " the role and its argument specs are loaded; the floor has one play and one task);",
        f"- the one module task: {module_ours:.2f} s against the ping task's {module_floor:.2f} s ({module_ours - module_floor:+.2f} s: the module"
        " payload with its module_utils is built, Python imports the module, requests and boto3, creates the clients and makes its calls:"
        " see *Inside one module run* below);",
        f"- every other task and the end: {other_ours:.2f} s against {other_floor:.2f} s ({other_ours - other_floor:+.2f} s: the host-pattern check,"
        " the variable checks (validate_argument_spec and the checks of roles/enable/tasks/checks.yml), the summary and the play recap).",
        *explain_baseline(cases),
    ]


def explain_baseline(cases):
    """The same split for the baseline: its start-up and its module tasks against cmk.atlas's."""
    lines = []
    for ours_name, theirs_name in (
        ("enable re-run (converged)", "baseline enable re-run (converged)"),
        ("enable from scratch", "baseline enable from scratch"),
    ):
        ours, theirs = cases.get(ours_name), cases.get(theirs_name)
        if not ours or not theirs:
            continue
        total_ours, total_theirs = median(seconds_of(ours)), median(seconds_of(theirs))
        start_ours, start_theirs = phase_median(ours, is_startup), phase_median(theirs, is_startup)
        module_ours = phase_median(ours, is_module_task)
        ran = {r["task"] for r in theirs[0]["results"] if r["status"] != "skipped"}
        tasks = [task for task, _what in BASELINE_TASKS if task in ran]
        costly = sorted(((phase_median(theirs, lambda name, t=task: name == t), task) for task in tasks), reverse=True)[:3]
        target = BASELINE_TARGET * total_theirs
        tasks_theirs = total_theirs - start_theirs - phase_median(theirs, lambda n: n.startswith("end"))
        lines.append(
            f"- {ours_name} against the baseline: {total_ours:.2f} s against {total_theirs:.2f} s (target {BASELINE_TARGET} x, {target:.2f} s);"
            f" start-up {start_ours:.2f} s against {start_theirs:.2f} s; cmk.atlas's one module task {module_ours:.2f} s, the baseline's"
            f" {theirs[0]['modules']} module run(s) and {len(tasks)} task(s) {tasks_theirs:.2f} s,"
            " the costliest " + ", ".join(f"{task} {seconds:.2f} s" for seconds, task in costly) + "."
        )
    return lines


def build_report(meta, cases, propagation, scaling, imports, profiles):
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`tests/benchmarks/bench.py`; see [its README](../tests/benchmarks/README.md)). Do not edit by hand.",
        "",
        "- Date: {}".format(meta["date"]),
        "- Machine: {}".format(meta["machine"]),
        "- Load average (1, 5, 15 min) before: {}; after: {}. Other work may have run at the same time.".format(meta["load_before"], meta["load_after"]),
        "- Engine: {} for the collection, the baseline and the floor (`ansible` {} for amazon.aws)".format(meta["ansible"], meta["ansible_package"]),
        "- Rounds: {} for the procedures, {} with IAM propagation, one run per scaling row; every figure is the median with min-max beside it".format(
            meta["runs"], meta["propagation_runs"]
        ),
        "- Test bed: Atlas emulator and moto behind the AWS fault proxy on loopback (`tests/emulators`), no faults; propagation delay only where a row says so",
        "- Wall time of the whole benchmark: {:.0f} s".format(meta["elapsed"]),
        "",
        "Atlas reads and writes count answered requests; a 401 is the HTTP digest challenge that precedes an authenticated request"
        " when the client does not reuse the server's nonce, counted apart. AWS calls are what the fault proxy logged. Module"
        " invocations count every module run, each attempt of a retried task included; set_fact, debug, fail, assert and"
        " validate_argument_spec run on the controller and are not counted.",
        "",
        "## Against the two floors",
        "",
        "Each round runs, one after the other on two projects of one test bed: the one-module floor (a play with one"
        " `ansible.builtin.ping`, connection local, on the same inventory host), cmk.atlas.enable from scratch, the baseline from scratch,"
        " cmk.atlas.enable again (converged), the baseline again (converged), then cmk.atlas.verify. Ratios are taken run for run"
        " within a round, then their median and min-max.",
        "",
        "| Case | Wall time | vs one-module floor | vs baseline (same case) |",
        "| --- | --- | --- | --- |",
    ]
    floor = cases.get("one-module floor", [])
    pairs = (
        ("one-module floor", None),
        ("enable from scratch", "baseline enable from scratch"),
        ("enable re-run (converged)", "baseline enable re-run (converged)"),
        ("verify", "baseline enable re-run (converged)"),
        ("baseline enable from scratch", None),
        ("baseline enable re-run (converged)", None),
    )
    for name, base in pairs:
        if name not in cases:
            continue
        runs = cases[name]
        vs_floor = ratio_text(paired_ratios(runs, floor)) if floor and name != "one-module floor" else "1"
        vs_base = ratio_text(paired_ratios(runs, cases[base])) if base and base in cases else "-"
        lines.append(f"| {name} | {spread(seconds_of(runs))} | {vs_floor} | {vs_base} |")
    lines += ["", "### Why", "", *explain(cases)]
    lines += [
        "",
        "## Procedures",
        "",
        "| Case | Module invocations | Atlas reads | Atlas writes | Atlas 401 | AWS reads | AWS writes | Wall time | CPU | Peak memory |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    for name, runs in cases.items():
        first = runs[0]
        varies = any(
            (r["modules"], r["atlas_reads"], r["atlas_writes"], r["aws_reads"], r["aws_writes"])
            != (first["modules"], first["atlas_reads"], first["atlas_writes"], first["aws_reads"], first["aws_writes"])
            for r in runs
        )
        lines.append(
            "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0f} MiB |".format(
                name,
                " (counts vary between runs; first shown)" if varies else "",
                first["modules"],
                first["atlas_reads"],
                first["atlas_writes"],
                first["atlas_challenges"],
                first["aws_reads"],
                first["aws_writes"],
                spread(seconds_of(runs)),
                spread([r["cpu"] for r in runs]),
                median([r["peak_pss_kib"] for r in runs]) / 1024,
            )
        )
    if not meta["has_verify"]:
        lines += ["", "`cmk.atlas.verify` is not in the collection yet, so it has no row."]
    lines += [
        "",
        "CPU is user plus system time of ansible-playbook and every process it waited for; peak memory is the largest sum, sampled every"
        " 0.2 s, of the proportional set size (shared pages split between the processes sharing them) of ansible-playbook and its descendants.",
        "",
        "### Calls by operation (first run of each case)",
        "",
    ]
    for name, runs in list(cases.items()) + list(propagation.items()):
        first = runs[0]
        lines += [
            f"- **{name}**",
            "  - modules: {}".format(ops_text(first["module_actions"])),
            "  - Atlas: {}".format(ops_text(first["atlas_ops"])),
            "  - AWS: {}".format(ops_text(first["aws_ops"])),
        ]
    lines += [
        "",
        "## The baseline, task by task",
        "",
        "`tests/benchmarks/baseline/enable.yml` is the enable procedure as an experienced user writes it with amazon.aws and the Atlas"
        " Admin API (HTTP digest with the API key), run with the same inventory, environment, `ansible-playbook` and interpreter as"
        " cmk.atlas. It reads Atlas with url lookups (no module run), runs no info module it does not need (no aws_caller_info:"
        " iam_role returns the role's ARN; kms_key_info only while Atlas has no key through the role, with the option that saves"
        " four of its seven KMS calls), matches Atlas roles only on an `iamAssumedRoleArn` that is a string (Atlas answers null"
        " for a role not yet authorized), sets the module options that avoid extra calls (iam_role without instance profile and"
        " waiter), retries the authorization every 2 s and polls `valid` only when the last answer did not say true. Both"
        " sides call AWS through the fault proxy, which adds a few milliseconds per call (measured on loopback: about 4 ms"
        " a call; the HTTP digest challenge costs about 10 ms an Atlas request); the module runs, not the calls, make the time.",
        "",
        "| Task | What it does | From scratch | Converged |",
        "| --- | --- | --- | --- |",
    ]
    for task, what in BASELINE_TASKS:
        cells = []
        for case in ("baseline enable from scratch", "baseline enable re-run (converged)"):
            runs = cases.get(case, [])
            values = [sum(p["seconds"] for p in r["phases"] if p["name"] == task) for r in runs]
            first = [p for p in runs[0]["phases"] if p["name"] == task] if runs else []
            result = [x for x in runs[0].get("results", []) if x.get("task") == task] if runs else []
            skipped = result and all(x["status"] == "skipped" for x in result)
            calls = f", Atlas {first[0]['atlas']}, AWS {first[0]['aws']}" if first else ""
            cells.append((f"skipped, {median(values) * 1000:.0f} ms" if skipped else f"{median(values) * 1000:.0f} ms{calls}") if values else "-")
        lines.append(f"| {task} | {what} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        "## Where the time goes",
        "",
        "Each run split at the start of every task (bench_timing callback): start-up is from launching `ansible-playbook` to its first"
        " task, a task lasts until the next one starts, the end is the play recap and exit. The calls are the requests the test bed"
        " received in that span (first run).",
    ]
    for name in ("one-module floor", "enable re-run (converged)", "enable from scratch", "verify", "baseline enable re-run (converged)"):
        if name in cases:
            lines += ["", f"### {name}", "", *phase_table(cases[name])]
    if propagation:
        lines += [
            "",
            "## Waits: enable from scratch with a 10 s IAM propagation delay",
            "",
            f"The Atlas emulator answers 400 CANNOT_ASSUME_ROLE to the authorization until the IAM role is {PROPAGATION_DELAY:.0f} s old, as real"
            " Atlas does while IAM propagates. *Late* is the time from that moment (CreateRole at the fault proxy plus the delay) to the"
            " accepted authorization; the target is at most 2 s. Paired run for run, cmk.atlas first.",
            "",
            "| Case | Wall time | Late | Authorize attempts | vs baseline |",
            "| --- | --- | --- | ---: | --- |",
        ]
        names = list(propagation)
        for name in names:
            runs = propagation[name]
            late = [r["late"] for r in runs if r["late"] is not None]
            vs = ratio_text(paired_ratios(runs, propagation[names[1]])) if name == names[0] else "-"
            lines.append(
                "| {} | {} | {} | {} | {} |".format(
                    name, spread(seconds_of(runs)), spread(late) if late else "n/a", median([r["authorize_attempts"] for r in runs]), vs
                )
            )
    if scaling:
        lines += [
            "",
            "## Scaling: N projects in one inventory",
            "",
            "One run per row. CPU per project is the CPU time of the whole run divided by the projects; peak memory as above.",
            "",
            "| Case | Projects | Forks | Wall time | Wall / project | CPU / project | Peak memory | Processes at peak | Modules / project"
            " | Atlas calls / project | AWS calls / project |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for case, size, forks, m in scaling:
            lines.append(
                "| {} | {} | {} | {:.1f} s | {:.2f} s | {:.2f} s | {:.0f} MiB | {} | {:.1f} | {:.1f} | {:.1f} |".format(
                    case,
                    size,
                    forks,
                    m["seconds"],
                    m["seconds"] / size,
                    m["cpu"] / size,
                    m["peak_pss_kib"] / 1024,
                    m["peak_processes"],
                    m["modules"] / size,
                    (m["atlas_reads"] + m["atlas_writes"] + m["atlas_challenges"]) / size,
                    (m["aws_reads"] + m["aws_writes"]) / size,
                )
            )
        growth = scaling_growth(scaling)
        if growth:
            small, large = growth[0]["small"], growth[0]["large"]
            lines += [
                "",
                f"### Growth from {small} to {large} projects",
                "",
                f"{large / small:g} times the projects; linear growth multiplies wall time, CPU and the calls by {large / small:g} and leaves the"
                " per-project figures alone. Memory follows the forks, not the projects.",
                "",
                "| Case | Forks | Wall time | CPU | CPU / project | Peak memory |",
                "| --- | ---: | ---: | ---: | ---: | ---: |",
            ]
            for row in growth:
                lines.append(
                    "| {} | {} | x{:.2f} | x{:.2f} | x{:.2f} | x{:.2f} |".format(
                        row["case"], row["forks"], row["wall"], row["cpu"], row["cpu_per_project"], row["memory"]
                    )
                )
        lines += explain_scaling(scaling)
    if profiles:
        lines += [
            "",
            "## Inside one module run",
            "",
            "The module payload (AnsiballZ) that a converged enable and the floor ran, kept and run again by itself under `python -X importtime`"
            " against the same test bed: the whole process, and the self time of its imports summed by package. The payload imports"
            " from its zip, so every module_utils file is compiled from source on every run. What is not import is the run itself:"
            " argument parsing, the clients (boto3 session and clients), the calls and the plan.",
            "",
            "| Part | " + " | ".join(profiles) + " |",
            "| --- |" + " ---: |" * len(profiles),
        ]
        groups = [label for label, _prefixes in IMPORT_GROUPS] + ["the standard library and the rest"]
        cells = {label: [] for label in profiles}
        for label, samples in profiles.items():
            total_imports = median([sum(s["imports"].values()) for s in samples])
            whole = median([s["seconds"] for s in samples])
            cells[label] = [f"{whole * 1000:.0f} ms", f"{total_imports * 1000:.0f} ms"]
            cells[label] += [f"{median([s['imports'].get(g, 0.0) for s in samples]) * 1000:.0f} ms" for g in groups]
            cells[label].append(f"{(whole - total_imports) * 1000:.0f} ms")
            payload = samples[0].get("payload")
            cells[label].append(f"{payload['seconds'] * 1000:.0f} ms, {payload['bytes'] / 1024:.0f} KiB" if payload else "n/a")
        parts = ["the whole module process", "all imports", *("imports: " + g for g in groups), "everything but imports"]
        parts.append("before it, on the controller: building the payload (first build of a run) and its size")
        for index, part in enumerate(parts):
            lines.append(f"| {part} | " + " | ".join(cells[label][index] for label in profiles) + " |")
    lines += [
        "",
        "## Module imports",
        "",
        "Each module imported on its own (its `main` not called); a library it loads without ever using it fails the target."
        " What a module uses follows from its documentation fragments (Atlas: requests; AWS: boto3/botocore).",
        "",
        "| Module | Uses | Loaded at import | Import time | Result |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for row in imports:
        result = "error: {}".format(row["error"]) if row["error"] else ("pass" if row["ok"] else "FAIL: loads " + ", ".join(row["unused_loaded"]))
        lines.append(
            "| {} | {} | {} | {:.0f} ms | {} |".format(row["module"], ", ".join(row["uses"]) or "-", ", ".join(row["loaded"]) or "none", row["ms"], result)
        )
    lines += ["", "## Targets", ""] + ["- {}: **{}** — {}".format(name, "met" if ok else "not met", detail) for name, ok, detail in meta["targets"]]
    lines += [
        "",
        "## Findings",
        "",
        "Every write and every Atlas GET path or AWS read operation requested more than once in a converged run (the proxy log"
        " does not hold the AWS resource, so AWS reads are told apart by operation and account).",
        "",
    ]
    for name, found in meta["findings"].items():
        lines.append("- **{}**{}".format(name, ": none" if not found else ""))
        lines += [f"  - {f}" for f in found]
    return "\n".join(lines) + "\n"


def explain_scaling(scaling):
    """What the CPU per project allows on this machine's cores, for the largest verify row."""
    rows = [(size, forks, m) for case, size, forks, m in scaling if case == "verify converged"]
    if not rows:
        return []
    cores = os.cpu_count() or 1
    lines = [""]
    for size, forks, m in rows:
        least = m["cpu"] / cores
        lines.append(
            f"- verify over {size} projects, forks {forks}: {m['cpu'] / size:.2f} s CPU per project, {m['cpu']:.0f} s in all; on {cores} cores"
            f" no schedule finishes in less than {least:.0f} s (measured: {m['seconds']:.0f} s). Beating the target of {VERIFY_100_TARGET:.0f} s"
            f" at {size} projects takes at most {VERIFY_100_TARGET * cores / size:.2f} s CPU per project."
        )
    return lines


def scaling_growth(scaling):
    """Factors from the second largest to the largest size, per case and forks."""
    sizes = sorted({size for _case, size, _forks, _m in scaling})
    if len(sizes) < 2:
        return []
    small, large = sizes[-2], sizes[-1]
    by_key = {(case, size, forks): m for case, size, forks, m in scaling}
    rows = []
    for case, size, forks, m in scaling:
        if size != large or (case, small, forks) not in by_key:
            continue
        s = by_key[(case, small, forks)]
        rows.append(
            {
                "case": case,
                "forks": forks,
                "small": small,
                "large": large,
                "wall": m["seconds"] / s["seconds"],
                "cpu": m["cpu"] / s["cpu"],
                "cpu_per_project": (m["cpu"] / large) / (s["cpu"] / small),
                "memory": m["peak_pss_kib"] / max(1, s["peak_pss_kib"]),
            }
        )
    return rows


def by_how_much(value, target, lower_is_better=True):
    if (value <= target) if lower_is_better else (value >= target):
        return ""
    return f"; missed by {value - target:.3g} ({(value / target - 1) * 100:.1f} % over)"


def evaluate(cases, propagation, scaling, imports):
    targets = []
    findings = {}
    for name in ("enable re-run (converged)", "switch re-run (converged)", "baseline enable re-run (converged)"):
        if name in cases:
            findings[name] = findings_of(cases[name][0])
    for name in ("enable re-run (converged)", "switch re-run (converged)"):
        if name not in cases:
            continue
        writes = max(len(r["writes"]) for r in cases[name])
        targets.append((f"{name}: zero writes", writes == 0, f"{writes} write(s) at most in a run"))
        repeated = [f for f in findings[name] if not f.startswith("write:")]
        targets.append((f"{name}: each resource read at most once", not repeated, f"{len(repeated)} repeated read(s)"))
    ratio_targets = (
        ("enable re-run (converged)", "one-module floor", FLOOR_TARGET, "the one-module floor"),
        ("enable re-run (converged)", "baseline enable re-run (converged)", BASELINE_TARGET, "the baseline re-run"),
        ("enable from scratch", "baseline enable from scratch", BASELINE_TARGET, "the baseline from scratch"),
        ("verify", "enable re-run (converged)", VERIFY_TARGET, "a converged enable"),
    )
    for ours, theirs, target, label in ratio_targets:
        if ours in cases and theirs in cases:
            ratios = paired_ratios(cases[ours], cases[theirs])
            value = median(ratios)
            targets.append(
                (
                    f"{ours}: wall time <= {target} x {label}",
                    value <= target,
                    f"{median(seconds_of(cases[ours])):.2f} s / {median(seconds_of(cases[theirs])):.2f} s,"
                    f" paired ratio {ratio_text(ratios)}{by_how_much(value, target)}",
                )
            )
    for name, runs in propagation.items():
        if name.startswith("baseline"):
            continue
        late = [r["late"] for r in runs if r["late"] is not None]
        if late:
            worst = max(late)
            targets.append(
                (
                    f"{name}: the authorization lands within {WAIT_TARGET:.0f} s of the moment it can succeed",
                    worst <= WAIT_TARGET,
                    f"late by {spread(late)}, worst {worst:.2f} s{by_how_much(worst, WAIT_TARGET)}",
                )
            )
    for case, size, forks, m in scaling:
        if case == "verify converged" and size >= 100:
            targets.append(
                (
                    f"verify over {size} converged projects, forks {forks}: <= {VERIFY_100_TARGET:.0f} s",
                    m["seconds"] <= VERIFY_100_TARGET,
                    f"{m['seconds']:.1f} s{by_how_much(m['seconds'], VERIFY_100_TARGET)}",
                )
            )
    for row in scaling_growth(scaling):
        targets.append(
            (
                "{} from {} to {} projects, forks {}: linear (CPU per project within {:.0f} %)".format(
                    row["case"], row["small"], row["large"], row["forks"], (LINEAR_TOLERANCE - 1) * 100
                ),
                row["cpu_per_project"] <= LINEAR_TOLERANCE,
                "CPU per project x{:.2f}, wall time x{:.2f} for x{:g} projects{} (one run per row: load from elsewhere shows as growth)".format(
                    row["cpu_per_project"], row["wall"], row["large"] / row["small"], by_how_much(row["cpu_per_project"], LINEAR_TOLERANCE)
                ),
            )
        )
    bad = [row["module"] for row in imports if not row["ok"]]
    targets.append(
        (
            "modules import boto3 or requests only when they use them",
            not bad,
            "offending: " + ", ".join(bad) if bad else f"{len(imports)} modules checked",
        )
    )
    return targets, findings


def load_average():
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds of the procedure cases (wall time is their median)")
    parser.add_argument("--propagation-runs", type=int, default=3, help="rounds with the 10 s IAM propagation delay")
    parser.add_argument("--quick", action="store_true", help="one round of each, scaling on 2 and 5 projects with forks 5 only; for development")
    parser.add_argument("--output", help="write the Markdown report here (e.g. docs/performance.md)")
    parser.add_argument("--ansible-bin", default=os.path.join(REPO, ".venv-bench", "bin"), help="bin directory with ansible-playbook and amazon.aws")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (inventories, results, output)")
    parser.add_argument("--save-raw", help="also write every measurement to this file (pickle), for --from-raw")
    parser.add_argument("--from-raw", help="write the report from measurements saved with --save-raw, running nothing")
    args = parser.parse_args(argv)
    if args.from_raw:
        with open(args.from_raw, "rb") as handle:
            raw = pickle.load(handle)  # a file this script wrote
        meta, cases, propagation, scaling, imports, _profiles = raw
        meta["targets"], meta["findings"] = evaluate(cases, propagation, scaling, imports)
        return write_report(build_report(*raw), args.output)
    began = time.perf_counter()
    runs = 1 if args.quick else args.runs
    propagation_runs = 1 if args.quick else args.propagation_runs
    sizes, forks_list = ((2, 5), (5,)) if args.quick else ((5, 20, 100), (5, 20))
    ansible_bin = os.path.abspath(args.ansible_bin)
    if not os.path.exists(os.path.join(ansible_bin, "ansible-playbook")):
        raise BenchError(f"no ansible-playbook in {ansible_bin}: run make bench (it installs tests/benchmarks/requirements.txt into .venv-bench)")
    package = (
        subprocess.run(
            [os.path.join(ansible_bin, "python"), "-c", "import importlib.metadata as m; print(m.version('ansible'))"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        or "not installed"
    )
    work = tempfile.mkdtemp(prefix="cmk-atlas-bench-")
    try:
        print("building and installing the collection", flush=True)
        collections = install_collection(ansible_bin, work)
        has_verify = os.path.exists(os.path.join(collections, "ansible_collections", "cmk", "atlas", "playbooks", "verify.yml"))
        imports = check_imports(ansible_bin, collections)
        load_before = load_average()
        with TestBed("empty") as bed:
            runner = Runner(bed, ansible_bin, collections, work)
            cases = run_cases(runner, bed, runs, has_verify)
            propagation = run_propagation(runner, bed, propagation_runs)
            scaling = run_scaling(runner, bed, sizes, forks_list, sizes[-1] if has_verify else None)
            profiles = profile_module_runs(runner, bed, 1 if args.quick else 3)
        targets, findings = evaluate(cases, propagation, scaling, imports)
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "load_before": load_before,
            "load_after": load_average(),
            "ansible": ansible_version(ansible_bin),
            "ansible_package": package,
            "runs": runs,
            "propagation_runs": propagation_runs,
            "has_verify": has_verify,
            "targets": targets,
            "findings": findings,
            "elapsed": time.perf_counter() - began,
        }
        raw = (meta, cases, propagation, scaling, imports, profiles)
        if args.save_raw:
            with open(args.save_raw, "wb") as handle:
                pickle.dump(raw, handle)
        report = build_report(*raw)
    finally:
        if args.keep:
            print("work directory kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return write_report(report, args.output)


def write_report(report, output):
    print(report)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(report)
        print("written to " + output)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
