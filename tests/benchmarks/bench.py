"""make bench: calls and wall time of the cmk.atlas playbooks against the test bed, beside a hand-written baseline.

Runs, on one test bed started here (tests/emulators), with ansible-playbook from the benchmark
toolchain (--ansible-bin, default .venv-bench/bin, which also has amazon.aws):

- cmk.atlas.enable from scratch and re-run (converged), cmk.atlas.switch and its re-run,
  enable --check on an empty project, cmk.atlas.verify when the collection has it;
- tests/benchmarks/baseline/enable.yml (amazon.aws + ansible.builtin.uri) from scratch and re-run;
- enable on 1, 5 and 20 projects in one inventory with forks 1 and 5.

Counts come from the test bed's request logs (Atlas emulator and AWS fault proxy) and from a
callback that records every task result. Wall time is the median of --runs runs. The script
reports whether the targets are met but never fails on them; it fails only when a playbook fails.

    .venv/bin/python tests/benchmarks/bench.py [--runs 5] [--quick] [--output docs/performance.md]
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TESTS = os.path.join(REPO, "tests")
CALLBACK_DIR = os.path.join(TESTS, "integration", "callback_plugins")
BASELINE = os.path.join(HERE, "baseline", "enable.yml")
sys.path.insert(0, TESTS)

from emulators.testbed import TestBed  # noqa: E402  pylint: disable=wrong-import-position

TARGET_RATIO = 0.6
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


class BenchError(Exception):
    """A playbook failed or the toolchain is missing; the message says which."""


# -- test bed scenarios -------------------------------------------------------------------------------


def scaling_scenario(count):
    """Account R with one key and ``count`` empty projects (p01, p02, ...)."""
    projects = {}
    for number in range(1, count + 1):
        projects[f"p{number:02d}"] = {"id": f"6600000000000000000{100 + number:05d}", "name": f"cmk-bench-{number:02d}"}
    return {
        "name": f"scaling{count}",
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


class Runner:
    """Runs playbooks against the test bed and returns what each run cost."""

    def __init__(self, bed, ansible_bin, collections, work):
        self.bed = bed
        self.ansible_bin = ansible_bin
        self.collections = collections
        self.work = work
        self.count = 0

    def environment(self, run_dir, results_file):
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
        env.update(self.bed.env())
        env.update(
            {
                "ANSIBLE_COLLECTIONS_PATH": self.collections,
                "ANSIBLE_CALLBACK_PLUGINS": CALLBACK_DIR,
                "ANSIBLE_CALLBACKS_ENABLED": "record_results",
                "ANSIBLE_PYTHON_INTERPRETER": os.path.join(self.ansible_bin, "python"),
                "ANSIBLE_LOCAL_TEMP": os.path.join(run_dir, "tmp"),
                "ANSIBLE_HOME": os.path.join(run_dir, "home"),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "0",
                "CMK_ATLAS_RESULTS_FILE": results_file,
                "PATH": self.ansible_bin + os.pathsep + os.environ.get("PATH", ""),
            }
        )
        return env

    def write_inventory(self, run_dir, hosts):
        path = os.path.join(run_dir, "inventory.yml")
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"atlas_projects": {"hosts": hosts}}, handle, sort_keys=False)
        return path

    def run(self, playbook, hosts, check=False, forks=None):
        """Run ``playbook`` on ``hosts`` (name -> variables) from a clean log; return the measurement."""
        self.count += 1
        run_dir = os.path.join(self.work, f"run{self.count:03d}")
        os.makedirs(run_dir)
        results_file = os.path.join(run_dir, "results.jsonl")
        args = [os.path.join(self.ansible_bin, "ansible-playbook"), playbook, "-i", self.write_inventory(run_dir, hosts)]
        if check:
            args.append("--check")
        if forks:
            args.extend(["--forks", str(forks)])
        env = self.environment(run_dir, results_file)
        self.bed.clear_logs()
        start = time.perf_counter()
        proc = subprocess.run(args, cwd=run_dir, env=env, capture_output=True, text=True, timeout=1800, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise BenchError("{} failed (rc={}):\n{}".format(" ".join(args), proc.returncode, (proc.stdout + proc.stderr)[-5000:]))
        results = []
        if os.path.exists(results_file):
            with open(results_file, encoding="utf-8") as handle:
                results = [json.loads(line) for line in handle if line.strip()]
        return measure(seconds, results, self.bed.atlas.request_log(), self.bed.proxy.request_log())


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


# -- the cases --------------------------------------------------------------------------------------------


def enable_host(bed, project, role_name):
    return {"cmk_atlas_project_id": bed.projects[project], "cmk_atlas_iam_role_name": role_name, "cmk_atlas_kms_key": KEY_ALIAS}


def run_cases(runner, bed, runs, has_verify):
    """Every case ``runs`` times, interleaved so that load from elsewhere hits all of them alike."""
    cases = {}

    def record(name, measurement):
        cases.setdefault(name, []).append(measurement)

    empty = {"empty": None}
    for number in range(runs):
        print(f"run {number + 1}/{runs}", flush=True)
        bed.load("empty")
        empty["empty"] = enable_host(bed, "empty", "atlas-kms-empty")
        record("enable from scratch", runner.run("cmk.atlas.enable", empty))
        record("enable re-run (converged)", runner.run("cmk.atlas.enable", empty))
        if has_verify:
            record("verify", runner.run("cmk.atlas.verify", empty))
        bed.load("empty")
        record("baseline enable from scratch", runner.run(BASELINE, empty))
        record("baseline enable re-run", runner.run(BASELINE, empty))
        bed.load("empty")
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


def run_scaling(runner, bed, sizes, forks_list):
    rows = []
    for size in sizes:
        for forks in forks_list:
            bed.load(scaling_scenario(size))
            hosts = {name: enable_host(bed, name, "atlas-kms-" + name) for name in sorted(bed.projects)}
            print(f"scaling: {size} projects, forks {forks}", flush=True)
            rows.append((size, forks, runner.run("cmk.atlas.enable", hosts, forks=forks)))
    return rows


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


# -- findings and report --------------------------------------------------------------------------------------


def findings_of(measurement):
    found = [f"write: {write}" for write in measurement["writes"]]
    found += [f"Atlas GET {path} requested {n} times" for path, n in sorted(measurement["atlas_gets"].items()) if n > 1]
    found += [f"AWS {op} requested {n} times" for op, n in sorted(measurement["aws_reads_by_account"].items()) if n > 1]
    return found


def spread(values):
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


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


def build_report(meta, cases, scaling, imports):
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`tests/benchmarks/bench.py`; see [its README](../tests/benchmarks/README.md)). Do not edit by hand.",
        "",
        "- Date: {}".format(meta["date"]),
        "- Machine: {}".format(meta["machine"]),
        "- Load average (1, 5, 15 min) before: {}; after: {}. Other work may have run at the same time.".format(meta["load_before"], meta["load_after"]),
        "- Engine: {} for both the collection and the baseline (`ansible` {} for amazon.aws)".format(meta["ansible"], meta["ansible_package"]),
        "- Runs per case: {}; wall time is the median with min-max beside it".format(meta["runs"]),
        "- Test bed: Atlas emulator and moto behind the AWS fault proxy on loopback (`tests/emulators`), no propagation delay, no faults",
        "",
        "Atlas reads and writes count answered requests; a 401 is the HTTP digest challenge that precedes an authenticated request"
        " when the client does not reuse the server's nonce, counted apart. AWS calls are what the fault proxy logged. Module"
        " invocations count every module run, each attempt of a retried task included; set_fact, debug, fail and"
        " validate_argument_spec run on the controller and are not counted.",
        "",
        "## Procedures",
        "",
        "| Case | Module invocations | Atlas reads | Atlas writes | Atlas 401 | AWS reads | AWS writes | Wall time |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, runs in cases.items():
        first = runs[0]
        varies = any(
            (r["modules"], r["atlas_reads"], r["atlas_writes"], r["aws_reads"], r["aws_writes"])
            != (first["modules"], first["atlas_reads"], first["atlas_writes"], first["aws_reads"], first["aws_writes"])
            for r in runs
        )
        lines.append(
            "| {}{} | {} | {} | {} | {} | {} | {} | {} |".format(
                name,
                " (counts vary between runs; first shown)" if varies else "",
                first["modules"],
                first["atlas_reads"],
                first["atlas_writes"],
                first["atlas_challenges"],
                first["aws_reads"],
                first["aws_writes"],
                spread([r["seconds"] for r in runs]),
            )
        )
    if not meta["has_verify"]:
        lines += ["", "`cmk.atlas.verify` is not in the collection yet, so it has no row."]
    lines += ["", "### Calls by operation (first run of each case)", ""]
    for name, runs in cases.items():
        first = runs[0]
        lines += [
            f"- **{name}**",
            "  - modules: {}".format(ops_text(first["module_actions"])),
            "  - Atlas: {}".format(ops_text(first["atlas_ops"])),
            "  - AWS: {}".format(ops_text(first["aws_ops"])),
        ]
    lines += [
        "",
        "## Against the baseline",
        "",
        "The baseline is `tests/benchmarks/baseline/enable.yml`: the same enable procedure written with amazon.aws (`aws_caller_info`,"
        " `kms_key_info`, `iam_role`, `iam_policy`) and `ansible.builtin.uri` (HTTP digest), reading before it writes.",
        "",
        f"| Case | cmk.atlas | baseline | ratio (target <= {TARGET_RATIO}) | cmk.atlas calls (Atlas r/w, AWS r/w) | baseline calls |",
        "| --- | --- | --- | ---: | --- | --- |",
    ]
    for ours, theirs in meta["pairs"]:
        if ours not in cases or theirs not in cases:
            continue
        o, t = cases[ours], cases[theirs]
        ratio = statistics.median([r["seconds"] for r in o]) / statistics.median([r["seconds"] for r in t])
        lines.append(
            "| {} | {} | {} | {:.2f} {} | {}/{}, {}/{} ({} modules) | {}/{}, {}/{} ({} modules) |".format(
                ours,
                spread([r["seconds"] for r in o]),
                spread([r["seconds"] for r in t]),
                ratio,
                "pass" if ratio <= TARGET_RATIO else "FAIL",
                o[0]["atlas_reads"],
                o[0]["atlas_writes"],
                o[0]["aws_reads"],
                o[0]["aws_writes"],
                o[0]["modules"],
                t[0]["atlas_reads"],
                t[0]["atlas_writes"],
                t[0]["aws_reads"],
                t[0]["aws_writes"],
                t[0]["modules"],
            )
        )
    if scaling:
        lines += [
            "",
            "## Scaling: enable from scratch, N projects in one inventory",
            "",
            "| Projects | Forks | Wall time | per project | Modules / project | Atlas calls / project | AWS calls / project |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for size, forks, m in scaling:
            lines.append(
                "| {} | {} | {:.1f} s | {:.2f} s | {:.1f} | {:.1f} | {:.1f} |".format(
                    size,
                    forks,
                    m["seconds"],
                    m["seconds"] / size,
                    m["modules"] / size,
                    (m["atlas_reads"] + m["atlas_writes"] + m["atlas_challenges"]) / size,
                    (m["aws_reads"] + m["aws_writes"]) / size,
                )
            )
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


def evaluate(cases, imports):
    targets = []
    findings = {}
    for name in ("enable re-run (converged)", "switch re-run (converged)", "baseline enable re-run"):
        if name in cases:
            findings[name] = findings_of(cases[name][0])
    for name in ("enable re-run (converged)", "switch re-run (converged)"):
        if name not in cases:
            continue
        writes = max(len(r["writes"]) for r in cases[name])
        targets.append((f"{name}: zero writes", writes == 0, f"{writes} write(s) at most in a run"))
        repeated = [f for f in findings[name] if not f.startswith("write:")]
        targets.append((f"{name}: each resource read at most once", not repeated, f"{len(repeated)} repeated read(s)"))
    for ours, theirs in PAIRS:
        if ours in cases and theirs in cases:
            mine = statistics.median([r["seconds"] for r in cases[ours]])
            base = statistics.median([r["seconds"] for r in cases[theirs]])
            targets.append(
                (
                    f"{ours}: wall time <= {TARGET_RATIO} x baseline",
                    mine <= TARGET_RATIO * base,
                    f"{mine:.2f} s / {base:.2f} s = {mine / base:.2f}",
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


PAIRS = (("enable from scratch", "baseline enable from scratch"), ("enable re-run (converged)", "baseline enable re-run"))


def load_average():
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per case (wall time is their median)")
    parser.add_argument("--quick", action="store_true", help="one run per case, scaling up to 5 projects only")
    parser.add_argument("--output", help="write the Markdown report here (e.g. docs/performance.md)")
    parser.add_argument("--ansible-bin", default=os.path.join(REPO, ".venv-bench", "bin"), help="bin directory with ansible-playbook and amazon.aws")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (inventories, results)")
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    sizes = (1, 5) if args.quick else (1, 5, 20)
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
            scaling = run_scaling(runner, bed, sizes, (1, 5))
        targets, findings = evaluate(cases, imports)
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "load_before": load_before,
            "load_after": load_average(),
            "ansible": ansible_version(ansible_bin),
            "ansible_package": package,
            "runs": runs,
            "has_verify": has_verify,
            "pairs": PAIRS,
            "targets": targets,
            "findings": findings,
        }
        report = build_report(meta, cases, scaling, imports)
    finally:
        if args.keep:
            print("work directory kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(report)
        print("written to " + args.output)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
