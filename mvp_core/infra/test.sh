#!/usr/bin/env bash
# The README's test command. On a fresh Debian machine with only Node.js/npm it installs what the
# tests need (Bun from npm; as root, the OS packages), then runs `bun test`. The tests start their
# own throw-away PostgreSQL, Redis and sshd on free loopback ports, so nothing needs to be running.
# Extra arguments go to `bun test` (e.g. a path filter, or --reporter=junit --reporter-outfile=F).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
case "${1:-}" in
  -h|--help) printf '%s\n' "usage: bash mvp_core/infra/test.sh [BUN TEST ARGUMENTS…]
Installs what the tests need (Bun; as root the OS packages), then runs \`bun test --timeout 60000\`
with the arguments given (a path filter, --reporter=junit --reporter-outfile=F, …). The tests
start their own PostgreSQL, Redis and sshd on free loopback ports.
exit status: bun test's (0 all passed, 1 a test failed), 130/143 interrupted"; exit 0 ;;
  -V|--version) printf 'test.sh %s\n' "$(ketter_version)"; exit 0 ;;
esac
trap 'exit 130' INT
trap 'exit 143' TERM

# postgresql: server binaries; redis-server; openssh-*: the test sshd and the reference tools;
# rsync/zip/unzip: remote tools the SSH strategies use; chromium: the Swagger UI test;
# docker-compose: validates docker-compose.yml without a Docker engine; xxhash (xxhsum) and
# libxml2-utils (xmllint): the references the MHL tests compare digests and XSD validity with.
if is_root; then
  ensure_packages postgresql redis-server openssh-server openssh-client rsync zip unzip chromium docker-compose procps xxhash libxml2-utils
fi
ensure_bun
ensure_node_modules
cd "$KETTER_ROOT"
# Real servers start on demand and these machines are small and noisy: give each test headroom.
exec bun test --timeout 60000 "$@"
