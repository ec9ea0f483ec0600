"""pytest fixtures for the test bed (loaded through ``pytest_plugins`` in tests/conftest.py).

- ``testbed`` (session): started once per process (so once per xdist worker), stopped at the
  end; state is whatever the previous test left.
- ``clean_testbed`` (function): the same test bed reset to a scenario before the test:
  ``@pytest.mark.scenario("demo")``, default ``empty``. After the test it fails if the Atlas
  emulator failed inside (answered 500 with a traceback) or recorded contract violations (unless
  marked ``allow_contract_violations``).
- ``testbed_env`` (function): ``os.environ`` plus ``clean_testbed.env()``, without variables
  that would send boto3 or the collection elsewhere; for ``ansible-playbook`` subprocesses.

The Atlas spec used for contract checks comes from ``CMK_ATLAS_SPEC`` when set.
"""

import os

import pytest

DEFAULT_SCENARIO = "empty"
_FOREIGN_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "MONGODB_ATLAS_CLIENT_ID",
    "MONGODB_ATLAS_CLIENT_SECRET",
    "MONGODB_ATLAS_PUBLIC_KEY",
    "MONGODB_ATLAS_PRIVATE_KEY",
)


def pytest_configure(config):
    config.addinivalue_line("markers", "scenario(name): the test bed scenario that clean_testbed loads (default: empty)")
    config.addinivalue_line("markers", "allow_contract_violations: clean_testbed does not fail on Atlas contract violations")


@pytest.fixture(scope="session")
def testbed():
    # Imported here: moto and boto3 would slow every pytest start, also runs without the test bed.
    from .testbed import TestBed

    bed = TestBed(DEFAULT_SCENARIO, atlas_contract=True)
    bed.start()
    yield bed
    bed.stop()


@pytest.fixture
def clean_testbed(request, testbed):
    marker = request.node.get_closest_marker("scenario")
    testbed.load(marker.args[0] if marker else DEFAULT_SCENARIO)
    yield testbed
    if testbed.atlas is None:
        return
    # An emulator that failed inside (it answered 500) or strayed from the spec makes the test's outcome meaningless.
    errors = testbed.atlas.internal_errors()
    if errors:
        pytest.fail("Atlas emulator internal errors:\n" + "\n".join(errors), pytrace=False)
    if request.node.get_closest_marker("allow_contract_violations") is None:
        violations = testbed.atlas.contract_violations()
        if violations:
            pytest.fail("Atlas emulator contract violations:\n" + "\n".join(map(str, violations)), pytrace=False)


@pytest.fixture
def testbed_env(clean_testbed):
    env = {name: value for name, value in os.environ.items() if name not in _FOREIGN_ENV}
    env.update(clean_testbed.env())
    return env
