import os

import yaml

from ansible_collections.cmk.atlas.plugins.module_utils import version

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def test_version_matches_galaxy_yml():
    with open(os.path.join(REPO_ROOT, "galaxy.yml")) as handle:
        galaxy = yaml.safe_load(handle)
    assert galaxy["version"] == version.COLLECTION_VERSION
    assert "{}.{}".format(galaxy["namespace"], galaxy["name"]) == version.COLLECTION_NAME
