#!/usr/bin/env bash
# Install Debian's postfix for the real-Postfix end-to-end test (tests/test_postfix_e2e.py).
# Idempotent and quiet: does nothing when postfix is already installed. Needs root and apt-get.
# The package's own system instance is left unconfigured ("No configuration") and is not
# started by the test: the test runs a private instance with its own config and queue dirs.
set -euo pipefail

if command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-postfix.sh: needs root" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postfix.sh: needs apt-get (Debian/Ubuntu)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string mx.test.example" | debconf-set-selections

apt_install() {
    apt-get install -y -q --no-install-recommends postfix >/tmp/install-postfix.log 2>&1
}
# Update the package lists only when the first try cannot find the package (or they are empty).
if ! apt_install; then
    apt-get update -q >/tmp/install-postfix.log 2>&1 || { cat /tmp/install-postfix.log >&2; exit 1; }
    apt_install || { cat /tmp/install-postfix.log >&2; exit 1; }
fi
# The package may have started or enabled a system instance; the tests never use it.
command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || { echo "install-postfix.sh: postfix still missing" >&2; exit 1; }
echo "install-postfix.sh: installed $(dpkg-query -W -f='${Package} ${Version}' postfix)"
