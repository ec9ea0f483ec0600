# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's version, kept equal to galaxy.yml by a unit test."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

COLLECTION_NAME = "cmk.atlas"
COLLECTION_VERSION = "0.1.0"
