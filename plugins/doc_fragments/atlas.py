# -*- coding: utf-8 -*-
# Copyright: contributors to the cmk.atlas collection
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options for connecting to the MongoDB Atlas Admin API (cmk.atlas.plugins.module_utils.atlas.client)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  base_url:
    description:
      - Address of the Atlas Admin API, without the C(/api/atlas/v2) path.
      - Must be an C(http) or C(https) URL with a host. A trailing slash is ignored.
      - If not set, the value of the E(MONGODB_ATLAS_BASE_URL) environment variable is used.
    type: str
    default: https://cloud.mongodb.com
  public_key:
    description:
      - Public key of an Atlas programmatic API key, used with O(private_key) for HTTP digest authentication.
      - If not set, the value of the E(MONGODB_ATLAS_PUBLIC_KEY) environment variable is used.
      - Set either O(public_key) and O(private_key), or O(client_id) and O(client_secret), not both.
    type: str
  private_key:
    description:
      - Private key of the Atlas programmatic API key named by O(public_key).
      - If not set, the value of the E(MONGODB_ATLAS_PRIVATE_KEY) environment variable is used.
    type: str
  client_id:
    description:
      - Client ID of an Atlas service account, used with O(client_secret) to get an OAuth 2.0 access token
        (client credentials grant) from C(/api/oauth/token) under O(base_url).
      - If not set, the value of the E(MONGODB_ATLAS_CLIENT_ID) environment variable is used.
      - Set either O(client_id) and O(client_secret), or O(public_key) and O(private_key), not both.
    type: str
  client_secret:
    description:
      - Secret of the Atlas service account named by O(client_id).
      - If not set, the value of the E(MONGODB_ATLAS_CLIENT_SECRET) environment variable is used.
    type: str
  timeout:
    description:
      - Seconds to wait for a connection to Atlas and, separately, for each response.
    type: int
    default: 30
  retries:
    description:
      - How many times to repeat an Atlas request after a transient fault, with exponential backoff and jitter
        between tries.
      - Transient faults are HTTP 429 (waiting as long as its C(Retry-After) header asks, up to 60 seconds),
        502, 503 and 504, and refused or reset connections; for C(GET), C(PATCH) and C(DELETE) requests, which are
        safe to repeat, also HTTP 500, read timeouts and responses cut short (and for the OAuth token request). The C(POST) that
        creates a cloud provider access role is not repeated after these; the roles are listed again instead.
        Other client errors are never repeated.
      - V(0) disables retries.
    type: int
    default: 5
  validate_certs:
    description:
      - Whether to verify the TLS certificate of O(base_url).
      - Set to V(false) only for a test server with a self-signed certificate.
    type: bool
    default: true
notes:
  - The Atlas credentials are never shown in results, warnings or error messages.
  - A service account's access token is requested once per task and reused until shortly before it expires.
requirements:
  - requests
"""

    # For a module that does not talk to Atlas: the options are accepted so that one module_defaults
    # for group/cmk.atlas.atlas serves every module. validate_certs comes with the AWS options.
    IGNORED = r"""
options:
  base_url:
    description:
      - Accepted and ignored; this module does not talk to Atlas. Every module of the collection takes the Atlas
        connection options, so that one C(module_defaults) for C(group/cmk.atlas.atlas) serves them all.
    type: str
  public_key:
    description:
      - Accepted and ignored, like O(base_url).
    type: str
  private_key:
    description:
      - Accepted and ignored, like O(base_url). Never logged.
    type: str
  client_id:
    description:
      - Accepted and ignored, like O(base_url).
    type: str
  client_secret:
    description:
      - Accepted and ignored, like O(base_url). Never logged.
    type: str
  timeout:
    description:
      - Accepted and ignored, like O(base_url).
    type: int
  retries:
    description:
      - Accepted and ignored, like O(base_url).
    type: int
"""
