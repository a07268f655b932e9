#!/bin/sh
# Runs `kubiya mcp client` (the binary given first) against the server URL the conformance
# suite appends, with the OAuth client credentials the suite hands its client in
# MCP_CONFORMANCE_CONTEXT, passed as references to our environment as a user would.
set -eu
kubiya=$1
url=$2
context() {
    python3 -c 'import json, os, sys; print(json.loads(os.environ["MCP_CONFORMANCE_CONTEXT"]).get(sys.argv[1], ""))' "$1"
}
CONFORMANCE_CLIENT_ID=$(context client_id)
CONFORMANCE_CLIENT_SECRET=$(context client_secret)
export CONFORMANCE_CLIENT_ID CONFORMANCE_CLIENT_SECRET
issuer=$(context issuer)
exec "$kubiya" mcp client "$url" --timeout-secs 20 \
    --oauth-client-id '${CONFORMANCE_CLIENT_ID}' --oauth-client-secret '${CONFORMANCE_CLIENT_SECRET}' \
    ${issuer:+--oauth-issuer "$issuer"} --call test-tool
