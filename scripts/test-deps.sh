#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (chroot builds, PostgreSQL for the
# capability tests, systemd-analyze for the unit file, chromium for the status page's
# browser test, a real Buildbot master and the Python worker for the Buildbot tests and
# benchmark). Run by `npm test` before the tests; does nothing when everything is
# there already, and only reports when not root (the tests that need these then skip,
# saying why).
set -euo pipefail

packages=(mmdebstrap zstd dpkg-dev debhelper fakeroot util-linux postgresql postgresql-client systemd chromium openssl curl iproute2 buildbot buildbot-worker)
# The unprivileged user host build steps run as ([build] user). The builder creates it
# itself at start-up when root; made here first so that builders the tests start at the
# same moment never race to create it.
if [ "$(id -u)" -eq 0 ] && ! id -u buildd >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin buildd
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: not root, not installing: ${missing[*]} (tests that need them are skipped)" >&2
  exit 0
fi
echo "test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d: install the PostgreSQL packages without starting a system cluster; the
# tests start their own, as an unprivileged user, in a temporary directory.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
