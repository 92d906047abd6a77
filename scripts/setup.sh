#!/usr/bin/env bash
# Sets up a machine to run or test Sluice: the Debian packages it needs
# (installed with apt-get when missing; root or sudo required for that) and the
# npm packages, including the Node 24 runtime that every script runs on. A
# fresh Debian machine has no node or npm: Debian's nodejs and npm are
# installed only to run npm once; Sluice itself runs on the pinned Node 24
# that npm puts into node_modules.
#
#   scripts/setup.sh run    what `sluice run` needs (nats-server)
#   scripts/setup.sh test   plus the real peers the tests start (swaks, ...)
#
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

purpose="${1:-run}"
# openssl: the MX generates its self-signed STARTTLS certificate with it (ingress.tls.selfSigned).
declare -A want=( [nats-server]=nats-server [node]=nodejs [npm]=npm [openssl]=openssl )
if [ "$purpose" = "test" ]; then
  want[swaks]=swaks
  # The filter's engines (test/harness starts its own instances on loopback; the
  # system services are never used — see the note after the install).
  want[rspamd]=rspamd
  want[clamd]=clamav-daemon
  want[postsrsd]=postsrsd want[dkimverify]=python3-dkim want[arcverify]=python3-dkim
  # LDAP source tests (test/harness slapd.ts): the server and ldapmodify/ldapdelete.
  want[slapd]=slapd
  want[ldapmodify]=ldap-utils
  want[knotd]=knot want[keymgr]=knot want[unbound]=unbound
  # Postfix as the sending MTA that relays into the MX (test/e2e/postfix-relay.test.ts; own instance).
  want[postfix]=postfix
fi

missing=()
for bin in "${!want[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("${want[$bin]}")
done
# swaks -tls (the MX's STARTTLS tests) needs Net::SSLeay.
if [ "$purpose" = "test" ] && ! perl -MNet::SSLeay -e1 2>/dev/null; then missing+=(libnet-ssleay-perl); fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: need root (or sudo) to apt-get install ${missing[*]}" >&2; exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # slapd: no default directory of its own (the tests generate their config).
  echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
  # postfix: no system configuration (as bench/setup.sh); the tests start throwaway instances.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  # --no-install-recommends: keep the machine small; nats-server needs nothing else.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # rspamd's and clamav-daemon's postinst may start system daemons (where an init
  # runs); the tests start their own on free ports, so stop any that came up.
  for svc in rspamd clamav-daemon clamav-freshclam postfix; do
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

# npm packages exactly as the committed lockfile says: `npm ci` never writes
# package-lock.json (setup must not modify tracked files). The lockfile lists
# every platform's optional binaries (biome, turbo), so `npm ci` accepts it on
# any machine. Only when node_modules is missing or older than the lockfile.
if [ ! -x node_modules/.bin/node ] || [ ! -e node_modules/.package-lock.json ] ||
  [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (brings Node 24 into node_modules)"
  npm ci --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/node -e 'const m=+process.versions.node.split(".")[0]; if (m<24) { console.error("setup: node_modules/.bin/node is "+process.version+", need 24"); process.exit(1) }'
echo "setup: ready (node $(node_modules/.bin/node --version), $(/usr/sbin/nats-server --version 2>/dev/null || nats-server --version))"
