# Copyright: smc.backend contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    """Connection options of smc.backend GCE modules (module_utils/gce.py gce_argument_spec)."""

    DOCUMENTATION = r"""
options:
  project:
    description:
      - The Google Cloud project id.
      - Falls back to the E(GCP_PROJECT) environment variable.
    type: str
    required: true
  auth_kind:
    description:
      - V(application) uses Application Default Credentials (C(gcloud auth application-default login),
        E(GOOGLE_APPLICATION_CREDENTIALS), or the metadata server on GCE).
      - V(serviceaccount) uses O(service_account_file) or O(service_account_contents).
      - V(accesstoken) uses O(access_token) as an OAuth2 bearer token.
      - Falls back to the E(GCP_AUTH_KIND) environment variable.
    type: str
    default: application
    choices: [application, serviceaccount, accesstoken]
  service_account_file:
    description:
      - Path to a service-account JSON key file, for O(auth_kind=serviceaccount).
      - Falls back to the E(GCP_SERVICE_ACCOUNT_FILE) environment variable.
    type: path
  service_account_contents:
    description:
      - The service-account JSON key itself, for O(auth_kind=serviceaccount). Never logged.
      - Falls back to the E(GCP_SERVICE_ACCOUNT_CONTENTS) environment variable.
    type: jsonarg
  access_token:
    description:
      - An OAuth2 access token, for O(auth_kind=accesstoken). Never logged.
      - Falls back to the E(GCP_ACCESS_TOKEN) environment variable.
    type: str
  api_endpoint:
    description:
      - Override the Compute Engine API endpoint, for example a Private Service Connect endpoint
        or a local test endpoint such as V(http://127.0.0.1:8089). An explicit V(http://) scheme is kept.
      - Falls back to the E(GCP_API_ENDPOINT) environment variable.
    type: str
  request_timeout:
    description: Timeout in seconds of one HTTP request.
    type: float
    default: 60.0
  retries:
    description:
      - How many times a request is retried after HTTP 429, 5xx, a rate-limit 403, a connection
        error or a timeout, with exponential backoff and jitter (1s, 2s, 4s, ... up to 32s).
    type: int
    default: 5
requirements:
  - google-cloud-compute >= 1.14
  - google-auth
"""
