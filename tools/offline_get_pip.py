# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for the get-pip.py script that ansible-test downloads to bootstrap its virtual environments.

The download host is not always reachable; this bootstraps pip from the standard library's ensurepip
and then installs the requested packages from the configured package index, which is what get-pip.py does.
"""

from __future__ import absolute_import, division, print_function

import subprocess
import sys

__metaclass__ = type

# get-pip.py options that pip itself does not know
GET_PIP_ONLY_OPTIONS = ("--no-setuptools", "--no-wheel")


def main():
    pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    # In a child process: ensurepip points PIP_CONFIG_FILE at /dev/null in its own environment,
    # which would hide the machine's pip configuration (index, certificates) from the install below.
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
    subprocess.check_call([sys.executable, "-m", "pip", "install", *pip_args])


if __name__ == "__main__":
    main()
