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
    for name in filter(None, files):
        relative = name.decode()
        if not os.path.exists(os.path.join(REPO_ROOT, relative)):
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
