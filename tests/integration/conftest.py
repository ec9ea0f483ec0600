"""Run the collection for real: build and install it once per test worker, then drive
``ansible-playbook`` against the test bed and read back every task result."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CALLBACK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")
BIN_DIR = os.path.dirname(sys.executable)


class PlaybookRun:
    """The outcome of one ansible-playbook run."""

    def __init__(self, args, rc, stdout, stderr, results):
        self.args = args
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.results = results

    @property
    def output(self):
        return self.stdout + self.stderr

    def task(self, name, host=None):
        """The last result of the task called ``name`` (on ``host``)."""
        matches = [r for r in self.results if r["task"] == name and (host is None or r["host"] == host)]
        if not matches:
            raise AssertionError("no result for task {!r}; tasks run: {}".format(name, [r["task"] for r in self.results]))
        return matches[-1]["result"]

    def changed_tasks(self):
        return [r["task"] for r in self.results if r["result"].get("changed")]

    def failed_tasks(self):
        return [r["task"] for r in self.results if r["status"] == "failed"]

    def assert_ok(self):
        assert self.rc == 0, f"ansible-playbook failed (rc={self.rc}):\n{self.output[-6000:]}"
        return self


@pytest.fixture(scope="session")
def installed_collection(tmp_path_factory):
    """Build the collection from this checkout and install it where only these runs see it."""
    work = tmp_path_factory.mktemp("collection")
    build_dir = work / "build"
    install_dir = work / "collections"
    # Build from a copy of the tracked files, so local leftovers never reach the artefact.
    source = work / "source"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT, check=True, capture_output=True
    ).stdout.split(b"\0")
    # A virtual environment left in the checkout (not git-ignored) is never part of the collection.
    venvs = {entry for entry in os.listdir(REPO_ROOT) if os.path.exists(os.path.join(REPO_ROOT, entry, "pyvenv.cfg"))}
    for name in filter(None, files):
        relative = name.decode()
        if not os.path.exists(os.path.join(REPO_ROOT, relative)) or relative.split("/", 1)[0] in venvs:
            continue
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(REPO_ROOT, relative), target)
    galaxy = os.path.join(BIN_DIR, "ansible-galaxy")
    subprocess.run([galaxy, "collection", "build", str(source), "--output-path", str(build_dir)], check=True, capture_output=True)
    (tarball,) = build_dir.glob("cmk-atlas-*.tar.gz")
    subprocess.run([galaxy, "collection", "install", str(tarball), "-p", str(install_dir)], check=True, capture_output=True)
    return install_dir


@pytest.fixture
def run_playbook(installed_collection, tmp_path):
    """Return ``run(plays, env=..., check=False, diff=False, extra_vars=None, verbosity=0, inventory=None)``.

    ``plays`` is a list of plays (written to a file) or a playbook name such as ``cmk.atlas.enable``.
    """
    counter = {"n": 0}

    def run(plays, env=None, check=False, diff=False, extra_vars=None, verbosity=0, inventory=None, forks=None):
        counter["n"] += 1
        run_dir = tmp_path / "run{}".format(counter["n"])
        run_dir.mkdir()
        if isinstance(plays, str):
            playbook = plays
        else:
            playbook = str(run_dir / "playbook.yml")
            with open(playbook, "w") as handle:
                yaml.safe_dump(plays, handle, sort_keys=False)
        results_file = run_dir / "results.jsonl"
        args = [os.path.join(BIN_DIR, "ansible-playbook"), playbook, "-i", inventory or "localhost,"]
        if check:
            args.append("--check")
        if diff:
            args.append("--diff")
        if verbosity:
            args.append("-" + "v" * verbosity)
        if forks:
            args.extend(["--forks", str(forks)])
        if extra_vars:
            vars_file = run_dir / "vars.json"
            vars_file.write_text(json.dumps(extra_vars))
            args.extend(["-e", f"@{vars_file}"])
        run_env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "AWS_", "MONGODB_ATLAS_"))}
        run_env.update(
            {
                "ANSIBLE_COLLECTIONS_PATH": str(installed_collection),
                "ANSIBLE_CALLBACK_PLUGINS": CALLBACK_DIR,
                "ANSIBLE_CALLBACKS_ENABLED": "record_results",
                "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
                "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp"),
                "ANSIBLE_HOME": str(run_dir / "home"),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "0",
                "ANSIBLE_HOST_KEY_CHECKING": "0",
                "CMK_ATLAS_RESULTS_FILE": str(results_file),
                "PATH": BIN_DIR + os.pathsep + os.environ.get("PATH", ""),
            }
        )
        run_env.update(env or {})
        proc = subprocess.run(args, cwd=str(run_dir), env=run_env, capture_output=True, text=True, timeout=600, check=False)
        results = []
        if results_file.exists():
            results = [json.loads(line) for line in results_file.read_text().splitlines() if line.strip()]
        return PlaybookRun(args, proc.returncode, proc.stdout, proc.stderr, results)

    return run


@pytest.fixture
def write_inventory(tmp_path):
    """Return ``write(hosts, group="atlas_projects", group_vars=None)``: an inventory file with one host per project.

    ``hosts`` maps host names to their variables; the path of the YAML file is returned.
    """
    counter = {"n": 0}

    def write(hosts, group="atlas_projects", group_vars=None):
        counter["n"] += 1
        path = tmp_path / "inventory{}.yml".format(counter["n"])
        body = {group: {"hosts": {name: dict(variables) for name, variables in hosts.items()}}}
        if group_vars:
            body[group]["vars"] = dict(group_vars)
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        return str(path)

    return write


# -- helpers for the playbook tests -----------------------------------------------------------------

UNKNOWN = "(known after apply)"
SUMMARY_TASK = "cmk.atlas.enable : Summarize the project"


def matches_prediction(predicted, actual):
    """Whether ``actual`` is what check mode predicted, where it could know it: a placeholder matches anything."""
    if isinstance(predicted, str) and UNKNOWN in predicted:
        return True
    if isinstance(predicted, dict) and isinstance(actual, dict):
        return predicted.keys() == actual.keys() and all(matches_prediction(predicted[key], actual[key]) for key in predicted)
    if isinstance(predicted, list) and isinstance(actual, list):
        return len(predicted) == len(actual) and all(matches_prediction(p, a) for p, a in zip(predicted, actual))
    return predicted == actual


def cross_account_project(bed, **variables):
    """Host variables of project "cross" (scenario cross_account): its IAM role in account R, the key owner's role in K."""
    return {
        "cmk_atlas_project_id": bed.projects["cross"],
        "cmk_atlas_iam_role_name": "atlas-kms-cross",
        "cmk_atlas_key_owner_role_arn": bed.roles["key_admin"]["arn"],
        **variables,
    }


def successful_writes(bed):
    """(system, operation) of every write since the last clear_logs(), without HTTP digest challenges (401 before the credentials)."""
    return [(call["system"], call["operation"]) for call in bed.write_calls() if call["status"] != 401]


def assert_refused(run, task, *texts):
    """``task`` failed before any write, with every text in its message; returns the message."""
    assert run.rc != 0, run.output[-3000:]
    assert run.failed_tasks() == [task], run.failed_tasks()
    message = run.task(task)["msg"]
    assert "nothing was written" in message, message
    for text in texts:
        assert text in message, (text, message)
    return message
