"""A Workload API client built on py-spiffe, the SPIFFE project's Python
library, for crates/ibac/tests/spiffe_libraries.rs.

It reads SPIFFE_ENDPOINT_SOCKET and prints one line per step:
  x509 <spiffe-id> <serial> <roots>     the X.509-SVID and its bundle
  bundles <trust-domain> <roots>        FetchX509Bundles
  jwt <subject> <audience>              a JWT-SVID, fetched and validated
  rotated <serial>                      a renewed SVID arrived on the stream
Set IBAC_INTEROP_AUDIENCE to fetch a JWT-SVID for that audience.
"""

import os
import sys
import threading

from spiffe import WorkloadApiClient


def say(*words):
    print(*words, flush=True)


def main():
    client = WorkloadApiClient(default_timeout=10)
    svid = client.fetch_x509_svid()
    bundles = client.fetch_x509_bundles()
    bundle = bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
    say("x509", svid.spiffe_id, format(svid.leaf.serial_number, "x"), len(bundle.x509_authorities))
    for b in bundles.bundles:
        say("bundles", b.trust_domain, len(b.x509_authorities))

    audience = os.environ.get("IBAC_INTEROP_AUDIENCE")
    if audience:
        token = client.fetch_jwt_svid(audience={audience})
        jwt_bundles = client.fetch_jwt_bundles()
        # Checked twice: by the agent (ValidateJWTSVID) and here, against the
        # JWT bundle the agent published.
        checked = client.validate_jwt_svid(token.token, audience)
        jwt_bundle = jwt_bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        from spiffe.svid.jwt_svid import JwtSvid
        local = JwtSvid.parse_and_validate(token.token, jwt_bundle, {audience})
        assert str(checked.spiffe_id) == str(local.spiffe_id) == str(svid.spiffe_id)
        say("jwt", local.spiffe_id, ",".join(sorted(local.audience)))

    first = svid.leaf.serial_number
    rotated = threading.Event()
    failed = []

    def on_success(context):
        serial = context.default_svid.leaf.serial_number
        if serial != first and not rotated.is_set():
            say("rotated", format(serial, "x"))
            rotated.set()

    def on_error(error):
        failed.append(error)
        rotated.set()

    handle = client.stream_x509_contexts(on_success, on_error, retry_connect=False)
    rotated.wait(float(os.environ.get("IBAC_INTEROP_WAIT", "60")))
    handle.cancel()
    client.close()
    if failed:
        sys.exit(f"the stream failed: {failed[0]}")
    if not rotated.is_set():
        sys.exit("no rotation arrived")


if __name__ == "__main__":
    main()
