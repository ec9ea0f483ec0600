"""An Atlas emulator without AWS for the tests that only need Atlas's own state (projects, backups).

Files that need the AWS checks define their own ``emulator`` (with moto), which takes precedence.
"""

import pytest

from emulators.atlas import AtlasEmulator
from emulators.atlas.contract import SpecContract
from emulators.atlas.testing import AtlasClient

PUBLIC, PRIVATE = "offline-public-key", "offline-private-key"


@pytest.fixture(scope="module")
def emulator():
    # No AWS calls: the moto URL is never used.
    emu = AtlasEmulator("http://127.0.0.1:9", contract=SpecContract())
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def clean_emulator(emulator):
    """A reset emulator with an API key; afterwards, no internal error and no contract violation."""
    emulator.reset()
    emulator.add_api_key(PUBLIC, PRIVATE)
    yield emulator
    assert emulator.internal_errors() == []
    assert emulator.contract_violations() == []


@pytest.fixture
def api(clean_emulator):
    return AtlasClient(clean_emulator.base_url, PUBLIC, PRIVATE)
