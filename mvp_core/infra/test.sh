#!/usr/bin/env bash
# The README's test command. On a fresh Debian machine with only Node.js/npm it installs what the
# tests need (Bun from npm; as root, the OS packages), then runs `bun test`. The tests start their
# own throw-away PostgreSQL, Redis and sshd on free loopback ports, so nothing needs to be running.
# Extra arguments go to `bun test` (e.g. a path filter, or --reporter=junit --reporter-outfile=F).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# postgresql: server binaries; redis-server; openssh-*: the test sshd and the reference tools;
# rsync/zip/unzip: remote tools the SSH strategies use; chromium: the Swagger UI test;
# docker-compose: validates docker-compose.yml without a Docker engine; iptables/gcc/libc6-dev: the WAN
# testbed's delay line (testing/testbed/: NFQUEUE rules, a small C program compiled at run time).
if is_root; then
  ensure_packages postgresql redis-server openssh-server openssh-client rsync zip unzip chromium docker-compose procps iptables gcc libc6-dev
fi
ensure_bun
ensure_node_modules
cd "$KETTER_ROOT"
# Real servers start on demand and these machines are small and noisy: give each test headroom.
exec bun test --timeout 60000 "$@"
