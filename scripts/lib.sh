# Shared by scripts/demo and scripts/test: install what is missing, then build.
# Sourced, not run.

LETHE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LETHE_BUILD=${LETHE_BUILD:-$LETHE_ROOT/build}

# Debian 12 packages lethe builds, tests and demos with (groff-base: the build checks the man
# page it writes).
LETHE_PACKAGES=(g++ cmake make pkg-config openssl libpqxx-dev libpq-dev libarchive-dev libssl-dev
  libtomlplusplus-dev nlohmann-json3-dev catch2 postgresql-15 postgresql-client-15 zstd tar ca-certificates
  groff-base)
# Commands that may come from elsewhere (e.g. a newer Node.js): installed from Debian only when
# the command is missing. Format: command:package.
LETHE_COMMANDS=(systemd-analyze:systemd node:nodejs npm:npm)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
  local missing=()
  for p in "${LETHE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  for entry in "${LETHE_COMMANDS[@]}"; do
    command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${#missing[@]} Debian packages (a few minutes on a fresh machine): ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
    # The Debian package starts a system cluster we do not use; leave it as Debian set it up.
  fi
}

# One configuration for the demo and the tests (warnings are errors, tests built), so whichever
# of the README's two commands runs second reuses the first one's build.
LETHE_CMAKE_OPTIONS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLETHE_WERROR=ON -DLETHE_TESTS=ON)

# Configures and builds in $LETHE_BUILD, printing progress every 10 %; on a failure prints the
# compiler's diagnostics (the full log stays in $LETHE_BUILD/build.log) and fails.
build() {
  mkdir -p "$LETHE_BUILD"
  local log=$LETHE_BUILD/build.log
  if [ -x "$LETHE_BUILD/lethe" ]; then
    echo "== building in $LETHE_BUILD (only what changed)"
  else
    echo "== building in $LETHE_BUILD (about 5 minutes on 2 cores the first time)"
  fi
  if ! cmake -S "$LETHE_ROOT" -B "$LETHE_BUILD" "${LETHE_CMAKE_OPTIONS[@]}" "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "build: cmake could not configure the build (log: $log)" >&2
    return 1
  fi
  local rc=0
  cmake --build "$LETHE_BUILD" -j "$(nproc)" >>"$log" 2>&1 &
  local pid=$! shown=-10 pct
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    pct=$(grep -o '^\[ *[0-9]*%\]' "$log" | tail -1 | tr -dc '0-9' || true)
    if [ -n "$pct" ] && [ "$pct" -ge $((shown + 10)) ]; then
      echo "   ${pct}% built"
      shown=$pct
    fi
  done
  wait "$pid" || rc=$?
  if [ "$rc" != 0 ]; then
    grep -E ': (fatal error|error|warning):|^make.*Error' "$log" >&2 || tail -40 "$log" >&2
    echo "build: failed (full log: $log)" >&2
    return 1
  fi
  test -x "$LETHE_BUILD/lethe"
}

# Prints the example configuration pointed at the throwaway cluster described by the sourced
# cluster.env, database $1, with audit files and the hmac key under directory $2.
config_for_cluster() {
  local dbname=$1 dir=$2
  sed -e "s|^dsn = .*|dsn = \"host=$LETHE_PG_HOST port=$LETHE_PG_PORT dbname=$dbname user=$LETHE_PG_ADMIN\"|" \
      -e "s|^sslrootcert = .*|sslrootcert = \"$LETHE_PG_CA\"|" \
      -e "s|^password_file = .*|password_file = \"$LETHE_PG_ADMIN_PASSWORD_FILE\"|" \
      -e "s|/var/lib/lethe|$dir|g" -e "s|/etc/lethe/hmac.key|$dir/hmac.key|" \
      -e "s|/etc/lethe/archive-2026.pub|$dir/archive.pub|" \
      -e "s|/etc/lethe/backup-2026.pub|$dir/backup.pub|" \
      "$LETHE_ROOT/config/lethe.example.toml"
}

# psql as the cluster's admin: psql_admin DBNAME [psql arguments…]
psql_admin() {
  local dbname=$1
  shift
  PGPASSWORD=$(cat "$LETHE_PG_ADMIN_PASSWORD_FILE") psql -X -q -v ON_ERROR_STOP=1 \
    "host=$LETHE_PG_HOST port=$LETHE_PG_PORT user=$LETHE_PG_ADMIN dbname=$dbname sslmode=verify-full sslrootcert=$LETHE_PG_CA" "$@"
}
