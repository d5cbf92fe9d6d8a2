#!/usr/bin/env bash
# Debian packages the tests use: postfix (end-to-end test), prometheus + promtool (scrape and
# rule tests), util-linux's logger (syslog intake), journalctl and systemd-journal-remote (to
# write a journal file the journald source then follows), chromium + chromedriver (browser tests
# of the web pages), jq (runs the trace dashboard's row selectors), node + npm when missing. Idempotent; needs root and apt-get.
set -euo pipefail
cd "$(dirname "$0")"
missing=()
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v logger >/dev/null 2>&1 || missing+=(bsdutils)
command -v journalctl >/dev/null 2>&1 || missing+=(systemd)
[ -x /lib/systemd/systemd-journal-remote ] || missing+=(systemd-journal-remote)
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || missing+=(chromium chromium-driver)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v jq >/dev/null 2>&1 || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # keep the packages' own services from starting: the tests start what they need on loopback
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/install-deps.log 2>&1 || {
        apt-get update -q >/tmp/install-deps.log 2>&1 || { cat /tmp/install-deps.log >&2; exit 1; }
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/install-deps.log 2>&1 \
            || { cat /tmp/install-deps.log >&2; exit 1; }
    }
    echo "install-system-deps.sh: installed ${missing[*]}"
fi
bash ./install-postfix.sh
