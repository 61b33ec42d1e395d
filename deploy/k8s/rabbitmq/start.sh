#!/usr/bin/env bash
# Start RabbitMQ with the baove definitions, each user's password taken from the environment.
#
# The repository's definitions.json has an empty password hash for every user: imported as it
# is, no user can log in. This script writes a copy in which each user gets a salted hash of
# $BAOVE_RABBITMQ_PASSWORD_<USER> (refusing to start if one is missing or weak), points nothing
# else at the passwords (they are removed from the environment), then execs the broker command.
# Because the copy is imported at every boot, restarting the broker also rotates the passwords.
#
# Usage: start.sh COMMAND...   e.g.  start.sh docker-entrypoint.sh rabbitmq-server
# Environment:
#   BAOVE_RABBITMQ_PASSWORD_<USER>  one per user in the definitions (OPS, INTAKE, ROUTING, REPORTING)
#   BAOVE_DEFINITIONS_TEMPLATE      the definitions to read  (default /etc/rabbitmq/baove/definitions.json)
#   BAOVE_DEFINITIONS_FILE          the copy to write; rabbitmq.conf's load_definitions names it
#                                   (default /var/lib/rabbitmq/baove-definitions.json)
#   BAOVE_ERLANG_COOKIE_FILE        optional: install this file as the node's Erlang cookie (clusters)
#   BAOVE_DLQ_TTL_DAYS              optional: days a dead letter is kept (the dead-letter-queues policy's message-ttl)
#   BAOVE_DLQ_MAX_LENGTH            optional: dead letters kept per queue, the oldest dropped first (its max-length)
#   BAOVE_RABBITMQ_GROW_QUORUM      "true" in a cluster: once running, add this node as a replica of
#                                   every baove quorum queue that lacks one here (see grow_quorum_queues)
set -euo pipefail

template=${BAOVE_DEFINITIONS_TEMPLATE:-/etc/rabbitmq/baove/definitions.json}
out=${BAOVE_DEFINITIONS_FILE:-/var/lib/rabbitmq/baove-definitions.json}

die() { echo "baove start.sh: $*" >&2; exit 1; }

[ $# -gt 0 ] || die "usage: start.sh COMMAND... (the command that starts the broker)"
[ -r "$template" ] || die "cannot read the definitions template $template"

hex_to_bytes() {
  # shellcheck disable=SC2059 # the format is built of \xHH escapes on purpose
  printf "$(printf '%s' "$1" | sed 's/../\\x&/g')"
}

# RabbitMQ's rabbit_password_hashing_sha256: base64(salt ++ sha256(salt ++ password)), 4-byte salt.
password_hash() {
  local salt digest
  salt=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
  digest=$({ hex_to_bytes "$salt"; printf '%s' "$1"; } | sha256sum | cut -c1-64)
  { hex_to_bytes "$salt"; hex_to_bytes "$digest"; } | base64 -w0
}

weak() {
  case "${1,,}" in
    '' | *replace* | *change*me* | guest | password* | secret*) return 0 ;;
  esac
  [ ${#1} -lt 16 ]
}

# One user per line in definitions.json (the deploy tests check that layout).
users=$(grep -o '"name": *"[a-z0-9_-]*", *"password_hash": *""' "$template" | sed 's/^"name": *"\([^"]*\)".*/\1/')
[ -n "$users" ] || die "no users with an empty password_hash in $template"

script=()
for user in $users; do
  var="BAOVE_RABBITMQ_PASSWORD_$(printf '%s' "$user" | tr 'a-z-' 'A-Z_')"
  password=${!var:-}
  weak "$password" && die "$var is missing, a placeholder or shorter than 16 characters (e.g. openssl rand -hex 24)"
  hash=$(password_hash "$password")
  script+=(-e "/\"name\": *\"$user\", *\"password_hash\"/ s|\"password_hash\": *\"\"|\"password_hash\": \"$hash\"|")
done

# Dead letters are whole events (routing's and intake's carry children's data): the operator bounds them.
if [ -n "${BAOVE_DLQ_TTL_DAYS:-}" ]; then
  [[ $BAOVE_DLQ_TTL_DAYS =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BAOVE_DLQ_TTL_DAYS must be a number of days, e.g. 14"
  ttl_ms=$(awk -v days="$BAOVE_DLQ_TTL_DAYS" 'BEGIN { printf "%.0f", days * 86400000 }')
  [ "$ttl_ms" -gt 0 ] || die "BAOVE_DLQ_TTL_DAYS must be more than 0"
  script+=(-e "s|\"message-ttl\": *[0-9]*|\"message-ttl\": $ttl_ms|")
fi
if [ -n "${BAOVE_DLQ_MAX_LENGTH:-}" ]; then
  [[ $BAOVE_DLQ_MAX_LENGTH =~ ^[1-9][0-9]*$ ]] || die "BAOVE_DLQ_MAX_LENGTH must be a whole number above 0"
  script+=(-e "s|\"max-length\": *[0-9]*|\"max-length\": $BAOVE_DLQ_MAX_LENGTH|")
fi

umask 077
mkdir -p "$(dirname "$out")"
sed "${script[@]}" "$template" > "$out.tmp"
if grep -q '"password_hash": *""' "$out.tmp"; then
  rm -f "$out.tmp"
  die "a user in $template was left without a password hash"
fi
mv "$out.tmp" "$out"
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
  chown rabbitmq:rabbitmq "$out"
fi

if [ -n "${BAOVE_ERLANG_COOKIE_FILE:-}" ]; then
  # Whoever knows the cookie controls every node: the same rules as for passwords.
  weak "$(cat "$BAOVE_ERLANG_COOKIE_FILE")" && die "the Erlang cookie in $BAOVE_ERLANG_COOKIE_FILE is a placeholder or too short"
  cookie="${HOME:-/var/lib/rabbitmq}/.erlang.cookie"
  install -m 600 "$BAOVE_ERLANG_COOKIE_FILE" "$cookie"
fi

# A quorum queue gets replicas only on the nodes that are in the cluster when it is declared:
# queues imported by the first node of a new cluster would stay single-replica. Each node adds
# itself to every baove quorum queue once it runs (a no-op where it already is a member).
grow_quorum_queues() {
  local attempt
  for attempt in $(seq 1 60); do
    sleep 10
    if rabbitmq-diagnostics -q check_running >/dev/null 2>&1 \
      && rabbitmq-queues -q grow "${RABBITMQ_NODENAME:?}" all --vhost-pattern '^baove$' --queue-pattern '.*' >/dev/null 2>&1; then
      echo "baove start.sh: this node holds a replica of every baove quorum queue (attempt $attempt)" >&2
      return 0
    fi
  done
  echo "baove start.sh: could not grow the quorum queues onto this node; run rabbitmq-queues grow by hand" >&2
}
if [ "${BAOVE_RABBITMQ_GROW_QUORUM:-false}" = true ]; then
  grow_quorum_queues &
fi

for var in $(compgen -e); do
  case $var in BAOVE_RABBITMQ_PASSWORD_*) unset "$var" ;; esac
done
exec "$@"
