#!/bin/sh
# install-deps.sh: installs the Debian packages sluice needs to build, run and
# test, and only those that are missing. Run as root (or with sudo available).
set -eu

PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev libtsan2
liburcu-dev libcriterion-dev libinih-dev libjansson-dev libsystemd-dev libbpf-dev bpftool media-types
curl wget wrk httperf python3 python3-pytest gnuplot-nox strace linux-perf
nginx-light lighttpd h2o prometheus haproxy"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# nginx, lighttpd and h2o come only for the benchmark (strace and linux-perf
# count its system calls per request), prometheus and haproxy
# only for tests/integration/test_fleet.py; never let them start on
# their own ports here (policy-rc.d 101 = "do not start services").
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -q --no-install-recommends $missing
