#!/bin/sh
# Installs what `npm run bench:compare` runs beside Sluice, from Debian, when
# missing: postfix (with smtp-source and smtp-sink), postsrsd, opendkim and
# opendkim-tools. Noninteractive: postfix's debconf question (the mailer type)
# is preseeded to "No configuration". The packages' own services must not be
# left running: the benchmark starts throwaway instances with their own
# config, ports and directories. While installing, a policy-rc.d refuses every
# service start (unless the machine already has one of its own); afterwards the
# default instances are stopped in case something started them anyway.
set -eu

missing=""
command -v postfix >/dev/null 2>&1 || missing="$missing postfix"
[ -x /usr/sbin/smtp-source ] || missing="$missing postfix"
command -v postsrsd >/dev/null 2>&1 || [ -x /usr/sbin/postsrsd ] || missing="$missing postsrsd"
command -v opendkim >/dev/null 2>&1 || [ -x /usr/sbin/opendkim ] || missing="$missing opendkim"
command -v opendkim-genkey >/dev/null 2>&1 || missing="$missing opendkim-tools"

if [ -z "$missing" ]; then
  echo "bench setup: postfix, postsrsd, opendkim and opendkim-tools are installed"
else
  if [ "$(id -u)" != 0 ]; then
    echo "bench setup: missing$missing; run as root (apt-get install)" >&2
    exit 1
  fi
  echo "bench setup: installing$missing"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string bench.invalid" | debconf-set-selections
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  trap '[ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends postfix postsrsd opendkim opendkim-tools \
    || { apt-get update -q && apt-get install -y -q --no-install-recommends postfix postsrsd opendkim opendkim-tools; }
fi

# The system's default instances are not ours to run: stop them if they are up.
if [ "$(id -u)" = 0 ]; then
  postfix status >/dev/null 2>&1 && postfix stop || true
  for svc in postfix postsrsd opendkim; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl stop "$svc" || true
      systemctl disable "$svc" >/dev/null 2>&1 || true
    fi
  done
fi
