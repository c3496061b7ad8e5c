#!/bin/sh
# The tools the benchmarks measure with or against, from Debian (run as root):
#   nginx-light  the file server reference (bench/filecache.ts) and the librarian for
#                the download benchmarks (sendfile)
#   wrk          the load generator of bench/rpc.ts (without it: autocannon, in-process)
#   valgrind     instruction counts per status() call (docs/performance.md), optional
#   mmdebstrap, zstd  the bookworm chroot tarball of bench/unpack.ts (built once by the
#                test harness and cached under ~/.cache/buildd-test)
# A policy-rc.d keeps the nginx package from starting a system nginx on port 80.
set -eu
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi
own_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  own_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
pkgs="nginx-light wrk valgrind mmdebstrap zstd curl"
apt-get install -y --no-install-recommends $pkgs || { apt-get update && apt-get install -y --no-install-recommends $pkgs; }
[ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
echo "bench/setup.sh: installed $pkgs"
