#!/bin/sh
# Installs the fleetpatch agent on this Linux machine and enrolls it, in one line:
#
#   curl -fsSL https://SERVER/agent/install.sh | sudo FLEETPATCH_ENROLL_KEY=fpe_... sh
#
# Served by the fleetpatch server, which fills in the lines between the markers (its address, the
# agent version and its packages with their sha256). It picks the package for this distribution
# (os-release ID and ID_LIKE) and CPU, checks the enrollment key with the server before changing
# anything, installs the package with the machine's own package manager (apt-get, dnf, yum or
# zypper), writes the server and the key into /etc/fleetpatch-agent/agent.env (mode 0600), enrolls
# (`fleetpatch-agent enroll`, which prints the machine id), then starts the service. The key is
# used once: after the enrollment it is emptied from agent.env. Any failure ends with one line
# saying what went wrong and a non-zero exit, and a package this run installed is removed again.
#
# Settings (environment): FLEETPATCH_ENROLL_KEY (needed unless the machine is already enrolled),
# FLEETPATCH_SERVER (another address for the same server than the one below).
#
# Everything happens in main, called on the last line: a download cut short runs nothing.

# --- the server's part ---
FP_DEFAULT_SERVER=''
FP_VERSION=''
FP_PACKAGES=''
FP_PROBLEM='this script was not served by a fleetpatch server'
# --- end of the server's part ---

STATE_DIR=/var/lib/fleetpatch-agent
ENV_FILE=/etc/fleetpatch-agent/agent.env
AGENT=/usr/bin/fleetpatch-agent
UNIT=fleetpatch-agent.service

say() { printf 'fleetpatch install: %s\n' "$*"; }
fail() {
  printf 'fleetpatch install: %s\n' "$*" >&2
  exit 1
}

# The value of a field of /etc/os-release, read without running the file.
os_field() {
  sed -n "s/^$1=//p" /etc/os-release 2>/dev/null | head -n 1 | sed -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/"
}

# The first line of the server's answer that names a message ({"error":{"code":...,"message":"..."}}).
server_message() {
  sed -n 's/.*"message":"\(\([^"\\]\|\\.\)*\)".*/\1/p' "$1" 2>/dev/null | head -n 1 | sed 's/\\"/"/g'
}

# http GET URL FILE, or http POST URL FILE BODY: prints the HTTP status; exits non-zero (with curl's
# own error on stderr) when no answer came at all.
http() {
  if [ "$1" = POST ]; then
    curl -sS --connect-timeout 15 --max-time 60 -o "$3" -w '%{http_code}' -X POST -H 'content-type: application/json' --data "$4" "$2"
  else
    curl -sS --connect-timeout 15 --max-time 1800 -o "$3" -w '%{http_code}' "$2"
  fi
}

# The package manager's own reason for a failed install: the first line that names a problem
# (dnf ends with a hint to try --skip-broken and zypper with the prompt it answered itself, neither
# of them the reason), else its last line.
install_problem() {
  reason=$(grep -E -m 1 'nothing provides|conflicts with|needed by|requires |^E: |[Ee]rror: [^ ]' "$1" | sed -e 's/^[[:space:]]*//' -e 's/^- //' -e 's/^Problem: //')
  [ -n "$reason" ] || reason=$(grep -v '^[[:space:]]*$' "$1" | tail -n 1)
  printf '%s' "$reason"
}

remove_package() {
  case $format in
    deb) DEBIAN_FRONTEND=noninteractive apt-get purge -y -q fleetpatch-agent >/dev/null 2>&1 || dpkg --purge fleetpatch-agent >/dev/null 2>&1 ;;
    rpm) rpm -e fleetpatch-agent >/dev/null 2>&1 ;;
  esac
  rm -rf "$STATE_DIR" /etc/fleetpatch-agent
}

main() {
  [ -z "$FP_PROBLEM" ] || fail "$FP_PROBLEM"
  command -v curl >/dev/null 2>&1 || fail 'curl is not installed: install it and run this again.'
  [ "$(id -u)" = 0 ] || fail "run this as root: curl -fsSL $FP_DEFAULT_SERVER/agent/install.sh | sudo FLEETPATCH_ENROLL_KEY=fpe_... sh"

  server=${FLEETPATCH_SERVER:-$FP_DEFAULT_SERVER}
  server=${server%/}
  case $server in
    http://?* | https://?*) ;;
    *) fail "FLEETPATCH_SERVER must be the http:// or https:// address of the fleetpatch server; got \"$server\"." ;;
  esac
  case $server in
    *[!A-Za-z0-9.:/_~%\[\]-]*) fail "FLEETPATCH_SERVER holds characters an address of a server does not: \"$server\"." ;;
  esac

  enrolled=
  [ -s "$STATE_DIR/identity.json" ] && enrolled=yes
  key=${FLEETPATCH_ENROLL_KEY:-}
  if [ -z "$key" ] && [ -z "$enrolled" ]; then
    fail "no enrollment key: run it as  curl -fsSL $server/agent/install.sh | sudo FLEETPATCH_ENROLL_KEY=fpe_... sh  with a key from createEnrollmentKey."
  fi
  case $key in
    '') ;;
    fpe_*[!A-Za-z0-9_-]* | fpe_) fail 'FLEETPATCH_ENROLL_KEY is not an enrollment key: copy it whole, as createEnrollmentKey returned it (fpe_...).' ;;
    fpe_*) ;;
    *) fail 'FLEETPATCH_ENROLL_KEY is not an enrollment key: enrollment keys start with fpe_ (an API token, fpt_..., is not one).' ;;
  esac

  # --- which package ---
  [ -r /etc/os-release ] || fail 'there is no /etc/os-release, so the distribution is unknown; fleetpatch-agent installs on Debian, Ubuntu, RHEL and its rebuilds, Fedora, Amazon Linux and SUSE.'
  os_id=$(os_field ID)
  os_like=$(os_field ID_LIKE)
  os_name=$(os_field PRETTY_NAME)
  format=
  for id in $os_id $os_like; do
    case $id in
      debian | ubuntu) format=deb ;;
      rhel | centos | fedora | rocky | almalinux | ol | amzn | suse | sles | sled | opensuse*) format=rpm ;;
      *) continue ;;
    esac
    break
  done
  [ -n "$format" ] || fail "this distribution (${os_name:-unnamed}, ID=${os_id:-none}${os_like:+, ID_LIKE=$os_like}) is not supported: fleetpatch-agent installs on Debian, Ubuntu, RHEL and its rebuilds, Fedora, Amazon Linux and SUSE."
  if [ "$format" = deb ]; then
    command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 || fail "this looks like $os_name, but apt-get and dpkg are not both here."
    arch=$(dpkg --print-architecture)
    installer=apt-get
  else
    command -v rpm >/dev/null 2>&1 || fail "this looks like $os_name, but rpm is not here."
    arch=$(uname -m)
    installer=
    for candidate in zypper dnf yum; do
      if command -v $candidate >/dev/null 2>&1; then installer=$candidate; break; fi
    done
    [ -n "$installer" ] || fail "this looks like $os_name, but none of zypper, dnf or yum is here."
  fi
  line=$(printf '%s\n' "$FP_PACKAGES" | awk -v f="$format" -v a="$arch" '$2 == f && $3 == a { print; exit }')
  [ -n "$line" ] || fail "this CPU architecture ($arch) is not supported: the server has fleetpatch-agent packages for amd64 (x86_64) and arm64 (aarch64)."
  name=$(printf '%s' "$line" | awk '{ print $1 }')
  sha256=$(printf '%s' "$line" | awk '{ print $4 }')

  tmp=$(mktemp -d) || fail 'cannot make a temporary folder.'
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 130' INT TERM

  # --- the server and the key, before anything changes here ---
  if [ -n "$key" ]; then
    status=$(http POST "$server/agent/v1/enroll/check" "$tmp/check" "{\"enrollmentKey\":\"$key\"}" 2>"$tmp/error") ||
      fail "cannot reach the fleetpatch server at $server: $(tail -n 1 "$tmp/error")"
    case $status in
      200) ;;
      403) fail "the server refused the enrollment key: $(server_message "$tmp/check")" ;;
      429) fail "the server is refusing enrollments from this address for now (too many): try again in a minute." ;;
      *) fail "the fleetpatch server at $server answered $status to the key check${status:+: }$(server_message "$tmp/check")" ;;
    esac
  fi

  # --- download, check, install ---
  say "downloading $name from $server"
  status=$(http GET "$server/agent/download/$name" "$tmp/$name" 2>"$tmp/error") ||
    fail "cannot reach the fleetpatch server at $server to download $name: $(tail -n 1 "$tmp/error")"
  [ "$status" = 200 ] || fail "the fleetpatch server at $server answered $status for $name: $(server_message "$tmp/$name")"
  got=$(sha256sum "$tmp/$name" | awk '{ print $1 }')
  [ "$got" = "$sha256" ] || fail "the download of $name is damaged or altered (sha256 $got, the server says $sha256): nothing was installed."

  if [ "$format" = deb ]; then
    dpkg-query -W -f='${Status}' fleetpatch-agent 2>/dev/null | grep -q 'ok installed' && had_package=yes || had_package=
  else
    rpm -q fleetpatch-agent >/dev/null 2>&1 && had_package=yes || had_package=
  fi
  say "installing fleetpatch-agent $FP_VERSION with $installer"
  case $installer in
    apt-get) DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confold "$tmp/$name" >"$tmp/install.log" 2>&1 ;;
    dnf | yum) $installer install -y "$tmp/$name" >"$tmp/install.log" 2>&1 ;;
    zypper) zypper --non-interactive install --allow-unsigned-rpm "$tmp/$name" >"$tmp/install.log" 2>&1 ;;
  esac
  installed=$?
  if [ "$installed" != 0 ] || [ ! -x "$AGENT" ]; then
    [ -n "$had_package" ] || remove_package
    fail "$installer could not install $name (exit $installed): $(install_problem "$tmp/install.log")"
  fi

  # --- settings and enrollment ---
  umask 077
  mkdir -p "$(dirname "$ENV_FILE")"
  [ -f "$ENV_FILE" ] || : >"$ENV_FILE"
  set_setting() {
    if grep -q "^$1=" "$ENV_FILE"; then
      sed "s|^$1=.*|$1=$2|" "$ENV_FILE" >"$ENV_FILE.new"
    else
      { cat "$ENV_FILE"; printf '%s=%s\n' "$1" "$2"; } >"$ENV_FILE.new"
    fi
    chmod 600 "$ENV_FILE.new" && mv "$ENV_FILE.new" "$ENV_FILE"
  }
  set_setting FLEETPATCH_SERVER "$server"
  [ -z "$key" ] || set_setting FLEETPATCH_ENROLL_KEY "$key"

  machine=$(FLEETPATCH_ENROLL_KEY=$key "$AGENT" enroll --server "$server" --state-dir "$STATE_DIR" 2>"$tmp/enroll.log")
  enrolled_rc=$?
  if [ "$enrolled_rc" != 0 ] || [ -z "$machine" ]; then
    why=$(grep -v '^[[:space:]]*$' "$tmp/enroll.log" | tail -n 1 | sed 's/^fleetpatch-agent: //')
    if [ -z "$had_package" ]; then
      remove_package
      fail "the enrollment failed, so the package was removed again: ${why:-fleetpatch-agent enroll exited $enrolled_rc}"
    fi
    fail "the enrollment failed: ${why:-fleetpatch-agent enroll exited $enrolled_rc}"
  fi
  # The identity is in the state dir now: the key is needed no more, and is not kept.
  [ -z "$key" ] || set_setting FLEETPATCH_ENROLL_KEY ''
  say "fleetpatch-agent $FP_VERSION is installed; this machine is enrolled as $machine"

  # --- the service ---
  run_by_hand="$AGENT run --server $server --state-dir $STATE_DIR"
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1
    systemctl enable "$UNIT" >/dev/null 2>&1
    systemctl restart "$UNIT" || fail "enrolled, but the service did not start: see  systemctl status $UNIT  and  journalctl -u $UNIT"
    say "the agent runs (systemctl status $UNIT); it reports this machine's updates within a minute."
  elif command -v systemctl >/dev/null 2>&1; then
    say "systemd is not running here (a container or chroot), so nothing starts the agent now; the service is enabled for the next boot. To start it now: $run_by_hand"
  else
    say "there is no systemd here, so nothing starts the agent: start it with  $run_by_hand  and keep it running with this machine's service manager."
  fi
}

main "$@"
