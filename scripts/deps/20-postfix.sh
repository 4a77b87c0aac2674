#!/usr/bin/env bash
# Postfix and pflogsumm (Debian packages) for tests/email/test_postfix_real.py, which runs its own
# Postfix instance on loopback (own config and queue directories in the test's tmp folder) and
# checks mailroom's Postfix parsing against pflogsumm.
set -euo pipefail
# (openssl: the tests' fake remote MTA makes itself a certificate to offer STARTTLS)
if [ -x /usr/sbin/postfix ] && [ -x /usr/sbin/pflogsumm ] && command -v openssl >/dev/null 2>&1; then
  exit 0
fi
echo "installing postfix and pflogsumm (Debian packages) for the real-Postfix email tests"
export DEBIAN_FRONTEND=noninteractive
# No system mail configuration: the package then leaves no daemon to answer on port 25.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends postfix pflogsumm openssl
# The package may start the system instance anyway (e.g. where an init system runs): stop it,
# the tests run their own instance with their own config directory.
if [ -f /etc/postfix/main.cf ] && /usr/sbin/postfix status >/dev/null 2>&1; then
  /usr/sbin/postfix stop || true
fi
exit 0
