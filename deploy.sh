#!/usr/bin/env bash
# The one entry point: set up everything, run the site, run the tests, stop what it started.
# Idempotent: every step checks what is already there. See ./deploy.sh --help.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VAR="$ROOT/var"
VENV="${VENV:-$ROOT/.venv}"
case "$VENV" in /*) ;; *) VENV="$ROOT/$VENV" ;; esac
PG_PORT="${PG_PORT:-54329}"
PGDATA_DIR="$VAR/postgres"
RUN_DIR="$VAR/run"
LOG_DIR="$VAR/log"
ENV_FILE="$VAR/site.env"
SERVER_ROOT="$VAR/apache"
PGBOUNCER_PORT="${PGBOUNCER_PORT:-64329}"
PGBOUNCER_DIR="$VAR/pgbouncer"
PGBOUNCER_PID="$RUN_DIR/pgbouncer.pid"
# The account the mod_wsgi daemons run as. www-data is shared by every Apache app of the
# host; a dedicated account (docs/security.md) keeps another app out of var/metrics and
# site.env: DAEMON_USER=djsite ./deploy.sh.
DAEMON_USER="${DAEMON_USER:-www-data}"
ADMIN_USER="${ADMIN_USER:-admin}"

usage() {
  cat <<'EOF'
Usage: ./deploy.sh [COMMAND] [OPTIONS]

Commands:
  (none)     install what is missing, provision the database, start the site in the
             foreground with mod_wsgi-express (stop with Ctrl-C or ./deploy.sh stop)
  setup      everything above except starting the server
  test       setup, then the whole test suite (extra arguments go to pytest)
  bench      setup, then the benchmark (python -m bench; extra arguments go to it)
  tune       setup, then measure daemon shapes and choose one (python -m bench.tune; extra
             arguments go to it, e.g. --quick): var/tune/<timestamp>/, docs/tuning.md
  faults     setup, then the long fault-injection runs with a table of figures
  install-apache    install the site into Debian's system Apache (as root; options go
             to python -m apache_conf install: see docs/production.md)
  uninstall-apache  put back every file install-apache changed
  stop       stop the server and the local PostgreSQL cluster that deploy.sh started
  help       this text

Options (server):
  --port N          port to serve on (default 8000)
  --variant NAME    prefork | threaded | hybrid: daemon shape and backend mode, sized by
                    apache_conf like the generated production configs (default prefork);
                    tuned: the shape the last ./deploy.sh tune chose
  --processes N     daemon processes (overrides the variant)
  --threads N       threads per daemon process (overrides the variant)
  --pgbouncer       (run, setup) serve through a local PgBouncer in transaction pooling,
                    configured by manage.py pgbouncer_conf in var/pgbouncer/ (stopped by stop)
Options (test):
  --no-apache       skip the tests that start Apache/mod_wsgi daemons

Environment:
  PYTHON=/path/python3.X   interpreter for the venv (default: newest python3 >= 3.11 that
                           the daemon user can execute)
  VENV=.venv-other         virtualenv location (default .venv)
  DATABASE_URL=postgres://...  use this server instead of the local cluster in var/postgres
  ADMIN_USER, ADMIN_PASSWORD   the staff superuser (default: admin, password generated
                           once into var/admin-password, mode 600; never passed on to the
                           server)
  DAEMON_USER=www-data     the account the daemons run as (docs/security.md)
  ROTATE_DB_PASSWORD=1     (setup) give the database role 'site' a new password
  PG_PORT=54329            port of the local cluster
  PGBOUNCER_PORT=64329     port of the local PgBouncer (--pgbouncer)
EOF
}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }

# --- arguments ------------------------------------------------------------------------
COMMAND=run
case "${1:-}" in
  setup|test|stop|bench|faults|tune|install-apache|uninstall-apache) COMMAND="$1"; shift ;;
  help|-h|--help) usage; exit 0 ;;
esac
PORT=8000 VARIANT=prefork PROCESSES="" THREADS="" NO_APACHE=0 PGBOUNCER=0
PASSTHROUGH=()
if [ "$COMMAND" = bench ] || [ "$COMMAND" = faults ] || [ "$COMMAND" = tune ] || [[ "$COMMAND" == *install-apache ]]; then
  PASSTHROUGH=("$@")  # their own options: python -m bench --help, python -m apache_conf --help
  set --
fi
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="${2:?--port needs a number}"; shift 2 ;;
    --variant) VARIANT="${2:?--variant needs prefork, threaded or hybrid}"; shift 2 ;;
    --processes) PROCESSES="${2:?--processes needs a number}"; shift 2 ;;
    --threads) THREADS="${2:?--threads needs a number}"; shift 2 ;;
    --no-apache) NO_APACHE=1; shift ;;
    --pgbouncer) PGBOUNCER=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *)
      if [ "$COMMAND" = run ] || [ "$COMMAND" = setup ] || [ "$COMMAND" = stop ]; then
        die "unknown argument '$1': see ./deploy.sh --help"
      fi
      PASSTHROUGH+=("$1"); shift ;;
  esac
done
case "$VARIANT" in prefork|threaded|hybrid|tuned) ;; *) die "--variant must be prefork, threaded or hybrid, or tuned for the last tune run (got '$VARIANT')" ;; esac
if [ "$VARIANT" = tuned ] && [ -n "$PROCESSES$THREADS" ]; then
  die "--variant tuned runs the shape the last ./deploy.sh tune chose: drop --processes/--threads"
fi
if [ "$PGBOUNCER" -eq 1 ] && [ "$COMMAND" != run ] && [ "$COMMAND" != setup ]; then
  die "--pgbouncer goes with running the site or setup, not '$COMMAND'"
fi
[[ "$PGBOUNCER_PORT" =~ ^[1-9][0-9]*$ ]] || die "PGBOUNCER_PORT='$PGBOUNCER_PORT' is not a port number"
for n in "$PORT" ${PROCESSES:+"$PROCESSES"} ${THREADS:+"$THREADS"}; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive number"
done

# --- privileges -----------------------------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
  PG_OS_USER=postgres
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  SUDO="sudo"
  PG_OS_USER="$(id -un)"
  DAEMON_USER="$(id -un)"
else
  SUDO="none"
  PG_OS_USER="$(id -un)"
  DAEMON_USER="$(id -un)"
fi
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi; }
as_daemon() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$DAEMON_USER" -- "$@"; else "$@"; fi; }

# --- system packages ------------------------------------------------------------------
system_packages() {
  local wanted=(apache2 apache2-dev postgresql postgresql-contrib libpq-dev gcc python3-dev python3-venv wrk)
  if [ "$COMMAND" = test ] && [ "$NO_APACHE" -eq 0 ]; then wanted+=(chromium chromium-driver); fi
  if [ "$COMMAND" = bench ] || [ "$COMMAND" = faults ] || [ "$COMMAND" = test ] || [ "$PGBOUNCER" -eq 1 ]; then
    wanted+=(pgbouncer)
  fi
  # python -m bench.instructions counts instructions per request under callgrind.
  if [ "$COMMAND" = bench ] || [ "$COMMAND" = test ]; then wanted+=(valgrind); fi
  command -v dpkg-query >/dev/null || die "this script needs Debian/Ubuntu (dpkg/apt): install ${wanted[*]} by hand"
  local missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$SUDO" = none ]; then
    die "missing packages: run 'sudo apt-get install ${missing[*]}' (or run ./deploy.sh as root)"
  fi
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-upgrade "${missing[@]}" >/dev/null
}

# --- Python ---------------------------------------------------------------------------
# A python the daemon user can execute: mod_wsgi daemons run as that user and must be able
# to load the interpreter (a pyenv Python under a 0700 home cannot be loaded).
usable_python() {  # prints the real interpreter path, or fails
  local real
  real="$("$1" -c 'import sys; assert sys.version_info >= (3, 11); print(sys.executable)' 2>/dev/null)" || return 1
  "$real" -c 'import venv, ensurepip' 2>/dev/null || return 1
  if [ "$NO_APACHE" -eq 0 ] || [ "$COMMAND" != test ]; then
    as_daemon "$real" -c 'import encodings' >/dev/null 2>&1 || return 1
  fi
  printf '%s\n' "$real"
}

pick_python() {
  if [ -n "${PYTHON:-}" ]; then
    usable_python "$PYTHON" && return 0
    die "PYTHON=$PYTHON is not a Python >= 3.11 with venv that user $DAEMON_USER can run: pick another or use --no-apache"
  fi
  local candidate
  for v in 3.14 3.13 3.12 3.11; do
    for candidate in "/usr/bin/python$v" "/usr/local/bin/python$v" "$(command -v "python$v" || true)"; do
      [ -n "$candidate" ] && [ -x "$candidate" ] && usable_python "$candidate" && return 0
    done
  done
  die "no Python >= 3.11 with venv that user $DAEMON_USER can execute: apt-get install python3 python3-venv"
}

ensure_venv() {
  local python stamp want
  python="$(pick_python)"
  want="$python $(cat "$ROOT/pyproject.toml" "$ROOT/persistent_backend/pyproject.toml" | sha256sum | cut -c1-16)"
  stamp="$VENV/.deploy-stamp"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
    return 0
  fi
  if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c 'import sys; print(sys._base_executable)')" != "$python" ]; then
    # Only a virtualenv this script made (its stamp file) is ever deleted.
    [ -f "$stamp" ] && [ -f "$VENV/pyvenv.cfg" ] \
      || die "$VENV was not made by deploy.sh and uses another Python: remove it yourself or set VENV=.venv-other"
    say "recreating $VENV for $python"
    rm -rf "$VENV"
  fi
  say "installing Python packages into ${VENV#"$ROOT"/} ($python)"
  [ -x "$VENV/bin/python" ] || "$python" -m venv "$VENV"
  # --no-cache-dir: a cached mod_wsgi wheel built for another Python of the same minor
  # version would carry a RUNPATH into that Python's tree.
  (umask 077 && : >"$LOG_DIR/pip.log")
  if ! { "$VENV/bin/python" -m pip install -q --upgrade pip &&
         "$VENV/bin/python" -m pip install -q --no-cache-dir \
           -e "$ROOT/persistent_backend" -e "$ROOT[test,psycopg3,bench]"; } \
       >"$LOG_DIR/pip.log" 2>&1; then
    tail -n 20 "$LOG_DIR/pip.log" >&2
    die "pip install failed (full log: var/log/pip.log): check the network to PyPI and rerun"
  fi
  local libpython
  libpython="$(ldd "$("$VENV/bin/mod_wsgi-express" module-location)" | awk '/libpython/ {print $3}')"
  libpython="${libpython:-$python}"
  if [ "$NO_APACHE" -eq 0 ] && ! as_daemon test -r "$libpython"; then
    die "mod_wsgi links $libpython, which $DAEMON_USER cannot read: rm -rf $VENV and rerun with PYTHON=/usr/bin/python3"
  fi
  printf '%s\n' "$want" >"$stamp"
}

# --- files under var/ -----------------------------------------------------------------
secret() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

env_get() { [ -f "$ENV_FILE" ] && sed -n "s/^$1=//p" "$ENV_FILE" | tail -n1 || true; }

env_set() {  # env_set KEY VALUE: add or replace one line of var/site.env
  local tmp
  tmp="$(mktemp "$VAR/.site.env.XXXXXX")"  # mode 600 until protect_env_file
  { [ -f "$ENV_FILE" ] && grep -v "^$1=" "$ENV_FILE" || true; printf '%s=%s\n' "$1" "$2"; } >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

env_unset() {  # env_unset KEY: drop a key from var/site.env
  local tmp
  [ -n "$(env_get "$1")" ] || return 0
  tmp="$(mktemp "$VAR/.site.env.XXXXXX")"
  grep -v "^$1=" "$ENV_FILE" >"$tmp" || true
  mv "$tmp" "$ENV_FILE"
}

daemon_group() { id -gn "$DAEMON_USER"; }

ensure_var() {
  mkdir -p "$VAR" "$LOG_DIR"
  chmod 755 "$VAR"
  # Logs hold failed statements with their values: no listing or reading by others (the
  # PostgreSQL and PgBouncer logs, written as postgres, are reached by name).
  chmod 711 "$LOG_DIR"
  find "$LOG_DIR" -xdev -type f -perm /0077 -exec chmod go-rwx {} +
  # Every daemon process publishes its dashboard figures here (docs/dashboard.md),
  # private to the daemon user: nobody else can plant a record or hold its lock.
  install -d -o "$DAEMON_USER" -m 0700 "$VAR/metrics"
  # Nothing under var/ is writable by every account (older runs left some that were).
  find "$VAR" -xdev -perm -0002 \( -type f -o -type d \) -exec chmod o-w {} +
  if [ "$NO_APACHE" -eq 0 ]; then
    as_daemon test -r "$ROOT/site/config/wsgi.py" || die "user $DAEMON_USER cannot read $ROOT (a parent directory is private): clone the project under a readable path such as /srv or /opt"
  fi
}

write_env_file() {
  [ -n "$(env_get DJANGO_SECRET_KEY)" ] || env_set DJANGO_SECRET_KEY "$(secret 40)"
  [ -n "$(env_get DJANGO_ALLOWED_HOSTS)" ] || env_set DJANGO_ALLOWED_HOSTS "localhost,127.0.0.1,[::1]"
  env_set DJANGO_DAEMON_USER "$DAEMON_USER"
  # This file is what production reuses: HTTPS stays on here. The local plain-HTTP run
  # passes DJANGO_HTTPS=0 to its own server only (run_server); older runs wrote it here.
  if [ "$(env_get DJANGO_HTTPS)" = 0 ]; then
    env_unset DJANGO_HTTPS
    say "removed DJANGO_HTTPS=0 from var/site.env (the local run passes it to its server only)"
  fi
  if [ -n "${DATABASE_URL:-}" ]; then env_set DATABASE_URL "$DATABASE_URL"; fi
  protect_env_file "$ENV_FILE"
}

protect_env_file() {  # secrets: root's, readable by the daemon group only (0640)
  if [ "$(id -u)" -eq 0 ]; then
    chown "root:$(daemon_group)" "$1"
    chmod 640 "$1"
  else
    chmod 600 "$1"  # the daemons run as this account
  fi
}

# --- the local PostgreSQL cluster -----------------------------------------------------
pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
  [ -n "$dir" ] || die "PostgreSQL server binaries not found: apt-get install postgresql"
  printf '%s\n' "$dir"
}

pg_running() { [ -f "$PGDATA_DIR/PG_VERSION" ] && as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; }

psql_admin() {  # psql_admin DB SQL: one statement as the cluster's superuser over the socket
  as_pg "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN_DIR" -p "$PG_PORT" -U "$PG_OS_USER" -d "$1" -tAc "$2"
}

# The SCRAM-SHA-256 verifier of the password on stdin (what PostgreSQL stores, as psql's
# \password sends it): the server never sees the password itself.
scram_verifier() {
  "$VENV/bin/python" -c '
import base64, hashlib, hmac, os, sys
password, salt, rounds = sys.stdin.read().encode(), os.urandom(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", password, salt, rounds)
stored = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
server = hmac.new(salted, b"Server Key", "sha256").digest()
b64 = lambda raw: base64.b64encode(raw).decode()
print(f"SCRAM-SHA-256${rounds}:{b64(salt)}${b64(stored)}:{b64(server)}")'
}

set_site_password() {  # set_site_password PASSWORD: SQL on stdin, never on a command line
  local verifier
  verifier="$(printf '%s' "$1" | scram_verifier)"
  [[ "$verifier" =~ ^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$ ]] \
    || die "could not compute the password verifier with $VENV/bin/python"
  printf "SET pg_stat_statements.track_utility = off;\nALTER ROLE site PASSWORD '%s';\n" "$verifier" \
    | as_pg "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN_DIR" -p "$PG_PORT" -U "$PG_OS_USER" -d postgres -f - >/dev/null
}

ensure_local_cluster() {
  local bin
  bin="$(pg_bin)"
  mkdir -p "$RUN_DIR"
  if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    say "creating the local PostgreSQL cluster in ${PGDATA_DIR#"$ROOT"/} (port $PG_PORT)"
    mkdir -p "$PGDATA_DIR"
    if [ "$(id -u)" -eq 0 ]; then chown "$PG_OS_USER:" "$PGDATA_DIR" "$RUN_DIR"; fi
    chmod 700 "$PGDATA_DIR"
    (umask 077 && : >"$LOG_DIR/initdb.log")
    as_pg "$bin/initdb" -D "$PGDATA_DIR" -U "$PG_OS_USER" -E UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >"$LOG_DIR/initdb.log"
    cat >"$PGDATA_DIR/pg_hba.conf" <<EOF
# The cluster owner administers over the socket (peer); the site logs in with a password.
local   all   $PG_OS_USER                 peer
local   all   all                         scram-sha-256
host    all   all         127.0.0.1/32    scram-sha-256
host    all   all         ::1/128         scram-sha-256
EOF
    cat >>"$PGDATA_DIR/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$RUN_DIR'
max_connections = 100
shared_preload_libraries = 'pg_stat_statements'
EOF
    if [ "$(id -u)" -eq 0 ]; then chown "$PG_OS_USER:" "$PGDATA_DIR/pg_hba.conf" "$PGDATA_DIR/postgresql.auto.conf"; fi
  fi
  if ! pg_running; then
    if (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; then
      die "port $PG_PORT is taken by another server (another checkout's cluster?): stop it or set PG_PORT=N"
    fi
    say "starting PostgreSQL on port $PG_PORT"
    (umask 077 && touch "$LOG_DIR/postgres.log")
    chmod 600 "$LOG_DIR/postgres.log"
    if [ "$(id -u)" -eq 0 ]; then chown "$PG_OS_USER:" "$LOG_DIR/postgres.log" "$RUN_DIR"; fi
    as_pg "$bin/pg_ctl" -D "$PGDATA_DIR" -l "$LOG_DIR/postgres.log" -w -t 60 start >/dev/null \
      || die "PostgreSQL did not start: see var/log/postgres.log"
  fi
  local password
  password="$(site_password)"
  # The password is set when the role is created, when var/site.env has none, or on
  # ROTATE_DB_PASSWORD=1; never again on every run (each ALTER ROLE is a chance to leak it).
  if [ "$(psql_admin postgres "SELECT 1 FROM pg_roles WHERE rolname = 'site'")" != 1 ]; then
    psql_admin postgres "CREATE ROLE site LOGIN"
    [ -n "$password" ] || password="$(secret 24)"
    set_site_password "$password"
  elif [ -z "$password" ] || [ "${ROTATE_DB_PASSWORD:-0}" = 1 ]; then
    say "setting a new password for the database role 'site'"
    password="$(secret 24)"
    set_site_password "$password"
  fi
  # pg_monitor: the dashboard reads every session's state in pg_stat_activity.
  psql_admin postgres "GRANT pg_monitor TO site"
  if [ "$(psql_admin postgres "SELECT 1 FROM pg_database WHERE datname = 'site'")" != 1 ]; then
    psql_admin postgres "CREATE DATABASE site OWNER site"
  fi
  psql_admin site "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
  local socket
  socket="$(printf '%s' "$RUN_DIR" | sed 's|/|%2F|g')"
  env_set DATABASE_URL "postgres://site:$password@$socket:$PG_PORT/site"
  protect_env_file "$ENV_FILE"
}

# --- Django ---------------------------------------------------------------------------
manage() { (cd "$ROOT/site" && DJANGO_ENV_FILE="$ENV_FILE" "$VENV/bin/python" manage.py "$@"); }

provision_django() {
  say "migrating, loading demo data, collecting static files"
  manage migrate --noinput -v0
  manage load_demo_data
  manage collectstatic --noinput -v0
  local password_file="$VAR/admin-password" password="${ADMIN_PASSWORD:-}" generated=0
  if [ -z "$password" ]; then
    if [ ! -s "$password_file" ]; then
      (umask 077 && secret 12 >"$password_file")
      generated=1
    fi
    password="$(cat "$password_file")"
  fi
  chmod 600 "$password_file" 2>/dev/null || true
  ADMIN_PASSWORD="$password" manage ensure_admin --username "$ADMIN_USER" >/dev/null
  if [ "$generated" -eq 1 ] && [ -t 2 ]; then  # on a terminal only, never into a CI log
    say "staff superuser '$ADMIN_USER' created; password (shown once, kept in var/admin-password): $password"
  elif [ "$generated" -eq 1 ]; then
    say "staff superuser '$ADMIN_USER' created; its password is in var/admin-password (mode 600)"
  fi
}

setup() {
  system_packages
  ensure_var
  ensure_venv
  write_env_file
  if [ -z "${DATABASE_URL:-}" ]; then ensure_local_cluster; fi
  provision_django
}

# --- server ---------------------------------------------------------------------------
server_pid() {
  local pid
  pid="$(cat "$SERVER_ROOT/httpd.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
}

stop_server() {
  if server_pid >/dev/null; then
    say "stopping the site (pid $(server_pid))"
    "$SERVER_ROOT/apachectl" stop || true
    for _ in $(seq 50); do server_pid >/dev/null || return 0; sleep 0.2; done
    die "the server in var/apache did not stop: see var/apache/error_log"
  fi
}

variant_shape() {  # sets PROCESSES, THREADS and PERSISTENT_MODE from apache_conf's sizing
  local line
  if [ "$VARIANT" = tuned ]; then  # var/tune/<newest>/result.json, checked by apache_conf.tune
    line="$("$VENV/bin/python" -m apache_conf.tune --shell)" \
      || die "no tuned shape to run (see the line above): run ./deploy.sh tune first"
  else
    line="$(DJANGO_ENV_FILE="$ENV_FILE" "$VENV/bin/python" -m apache_conf shape --variant "$VARIANT" \
      ${PROCESSES:+--processes "$PROCESSES"} ${THREADS:+--threads "$THREADS"})" \
      || die "could not size the '$VARIANT' variant (see the line above)"
  fi
  [[ "$line" =~ ^PROCESSES=[0-9]+\ THREADS=[0-9]+\ PERSISTENT_MODE=[a-z]+$ ]] \
    || die "unexpected sizing output '$line': run $VENV/bin/python -m apache_conf shape --variant $VARIANT"
  eval "$line"
  SIZED_VARIANT="$VARIANT"  # the sizing rules' name for the shape (pgbouncer_conf)
  if [ "$VARIANT" = tuned ]; then
    if [ "$THREADS" -eq 1 ]; then SIZED_VARIANT=prefork; elif [ "$PROCESSES" -eq 1 ]; then SIZED_VARIANT=threaded; else SIZED_VARIANT=hybrid; fi
  fi
}

run_server() {
  stop_server
  variant_shape
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "port $PORT is already in use: pick another with --port N"
  fi
  if [ "$PGBOUNCER" -eq 1 ]; then
    start_pgbouncer
    ENV_FILE="$PGBOUNCER_DIR/site.env"  # this run's settings: DATABASE_URL -> PgBouncer
  fi
  local user_args=()
  if [ "$(id -u)" -eq 0 ]; then user_args=(--user "$DAEMON_USER" --group "$(daemon_group)"); fi
  # The local run serves plain HTTP: HTTPS-only cookies and redirects would lock you out.
  # In this server's environment only, never in var/site.env (which production reuses).
  export PERSISTENT_MODE DJANGO_ENV_FILE="$ENV_FILE" DJANGO_HTTPS=0
  unset ADMIN_PASSWORD  # the operator's, for ensure_admin: not for the daemons
  say "site:      http://localhost:$PORT/"
  say "dashboard: http://localhost:$PORT/dashboard/ (user '$ADMIN_USER', password in var/admin-password)"
  say "serving with mod_wsgi-express: $VARIANT, $PROCESSES process(es) x $THREADS thread(s), persistent_backend mode '$PERSISTENT_MODE'; stop with Ctrl-C or ./deploy.sh stop"
  if [ "$PGBOUNCER" -eq 1 ]; then
    say "through PgBouncer on 127.0.0.1:$PGBOUNCER_PORT (transaction pooling, var/pgbouncer/pgbouncer.ini; it keeps running until ./deploy.sh stop)"
  fi
  # Output redirected to a file (./deploy.sh > deploy.log 2>&1, nohup): Apache reopens
  # /dev/stderr for its logs, which would truncate that file under the lines above.
  # Through a pipe it appends like everything else.
  if [ -f /dev/stdout ]; then exec > >(cat); fi
  if [ -f /dev/stderr ]; then exec 2> >(cat >&2); fi
  exec "$VENV/bin/mod_wsgi-express" start-server "$ROOT/site/config/wsgi.py" \
    --port "$PORT" --processes "$PROCESSES" --threads "$THREADS" \
    --server-root "$SERVER_ROOT" --python-path "$ROOT/site" \
    --url-alias /static "$VAR/static" --locale C.UTF-8 --log-to-terminal --startup-log "${user_args[@]}"
}

stop_all() {
  stop_server
  stop_pgbouncer
  if pg_running; then
    say "stopping PostgreSQL (var/postgres)"
    as_pg "$(pg_bin)/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null
  fi
  say "stopped"
}

# --- PgBouncer (--pgbouncer) ----------------------------------------------------------
# In front of the local cluster, as the cluster's OS user, configured by the generator
# (manage.py pgbouncer_conf) for this run's daemon shape. The site reaches it over TCP
# with its own password (scram-sha-256); PgBouncer checks it against the site role's SCRAM
# secret copied from pg_authid and logs in to PostgreSQL with the same proof.
pgbouncer_pid() {
  local pid
  pid="$(cat "$PGBOUNCER_PID" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
}

stop_pgbouncer() {
  local pid
  pid="$(pgbouncer_pid)" || return 0
  say "stopping PgBouncer (pid $pid)"
  kill -INT "$pid" 2>/dev/null || true  # safe shutdown: running transactions finish first
  for _ in $(seq 50); do pgbouncer_pid >/dev/null || return 0; sleep 0.2; done
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 25); do pgbouncer_pid >/dev/null || return 0; sleep 0.2; done
  die "PgBouncer (pid $pid) did not stop: see var/log/pgbouncer.log"
}

site_password() {  # the site role's password, from var/site.env's DATABASE_URL
  env_get DATABASE_URL | sed -n 's|^postgres://site:\([0-9a-f]*\)@.*|\1|p'
}

start_pgbouncer() {
  [ -z "${DATABASE_URL:-}" ] || die "--pgbouncer runs PgBouncer in front of the local cluster: unset DATABASE_URL"
  local bin password secret
  bin="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
  [ -x "$bin" ] || die "pgbouncer is not installed: apt-get install pgbouncer"
  stop_pgbouncer
  if (exec 3<>"/dev/tcp/127.0.0.1/$PGBOUNCER_PORT") 2>/dev/null; then
    die "port $PGBOUNCER_PORT is already in use: set PGBOUNCER_PORT=N"
  fi
  mkdir -p "$PGBOUNCER_DIR"
  manage pgbouncer_conf --out "$PGBOUNCER_DIR" --variant "$SIZED_VARIANT" \
    --processes "$PROCESSES" --threads "$THREADS" \
    --listen-addr 127.0.0.1 --listen-port "$PGBOUNCER_PORT" --unix-socket-dir "$RUN_DIR" \
    --db-host "$RUN_DIR" --db-port "$PG_PORT" --db-name site --stats-user site \
    --auth-file "$PGBOUNCER_DIR/userlist.txt" --logfile "$LOG_DIR/pgbouncer.log" \
    --pidfile "$PGBOUNCER_PID" >/dev/null \
    || die "could not write var/pgbouncer/pgbouncer.ini (see the lines above)"
  secret="$(psql_admin postgres "SELECT rolpassword FROM pg_authid WHERE rolname = 'site'")"
  [[ "$secret" == SCRAM-SHA-256* ]] || die "role 'site' has no SCRAM secret: run ./deploy.sh setup again"
  rm -f "$PGBOUNCER_DIR/userlist.txt"  # the generator's template (mode 644): no secret in it
  (umask 077 && printf '"site" "%s"\n' "$secret" >"$PGBOUNCER_DIR/userlist.txt")
  (umask 077 && touch "$LOG_DIR/pgbouncer.log")
  if [ "$(id -u)" -eq 0 ]; then chown "$PG_OS_USER:" "$PGBOUNCER_DIR/userlist.txt" "$LOG_DIR/pgbouncer.log"; fi
  say "starting PgBouncer on 127.0.0.1:$PGBOUNCER_PORT (var/pgbouncer/pgbouncer.ini)"
  as_pg "$bin" -d "$PGBOUNCER_DIR/pgbouncer.ini" || die "PgBouncer did not start: see var/log/pgbouncer.log"
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PGBOUNCER_PORT") 2>/dev/null; then break; fi
    sleep 0.1
  done
  pgbouncer_pid >/dev/null || die "PgBouncer exited: see var/log/pgbouncer.log"
  # This run's settings: var/site.env with DATABASE_URL pointing at PgBouncer, the backend
  # told so, and the dashboard reading PgBouncer's admin console (site is a stats_users role).
  password="$(site_password)"
  [ -n "$password" ] || die "no site password in var/site.env: run ./deploy.sh setup"
  local url="postgres://site:$password@127.0.0.1:$PGBOUNCER_PORT"
  rm -f "$PGBOUNCER_DIR/site.env"
  (umask 077 && { grep -v -e '^DATABASE_URL=' -e '^PERSISTENT_PGBOUNCER=' -e '^PGBOUNCER_URL=' "$ENV_FILE" || true
    printf 'DATABASE_URL=%s/site\nPERSISTENT_PGBOUNCER=1\nPGBOUNCER_URL=%s/pgbouncer\n' "$url" "$url"
  } >"$PGBOUNCER_DIR/site.env")
  protect_env_file "$PGBOUNCER_DIR/site.env"
}

# --- main -----------------------------------------------------------------------------
case "$COMMAND" in
  run) setup; run_server ;;
  setup)
    setup
    if [ "$PGBOUNCER" -eq 1 ]; then
      variant_shape
      start_pgbouncer
      say "PgBouncer runs on 127.0.0.1:$PGBOUNCER_PORT; the site uses it with DJANGO_ENV_FILE=var/pgbouncer/site.env"
      say "set up: start the site with ./deploy.sh --pgbouncer"
    else
      say "set up: start the site with ./deploy.sh"
    fi
    ;;
  stop) stop_all ;;
  test)
    setup
    marker=()
    if [ "$NO_APACHE" -eq 1 ]; then marker=(-m "not apache"); fi
    cd "$ROOT"
    say "running the test suite ($("$VENV/bin/python" -c 'import django, sys; print(f"Python {sys.version.split()[0]}, Django {django.__version__}")'))"
    "$VENV/bin/python" -m pytest "${marker[@]}" ${PASSTHROUGH[@]+"${PASSTHROUGH[@]}"}
    if [ "${DJANGO_PSYCOPG:-2}" != 3 ]; then
      # The psycopg 3 only tests (deselected above): a second pass on that driver.
      # pytest's exit code 5 means the arguments given selected none of them.
      say "running the psycopg 3 only tests (DJANGO_PSYCOPG=3)"
      psycopg3=(-m "psycopg3")
      if [ "$NO_APACHE" -eq 1 ]; then psycopg3=(-m "psycopg3 and not apache"); fi
      rc=0
      DJANGO_PSYCOPG=3 "$VENV/bin/python" -m pytest ${PASSTHROUGH[@]+"${PASSTHROUGH[@]}"} "${psycopg3[@]}" || rc=$?
      if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then exit "$rc"; fi
    fi
    ;;
  bench) setup; cd "$ROOT"; exec "$VENV/bin/python" -m bench ${PASSTHROUGH[@]+"${PASSTHROUGH[@]}"} ;;
  tune) setup; cd "$ROOT"; exec "$VENV/bin/python" -m bench.tune ${PASSTHROUGH[@]+"${PASSTHROUGH[@]}"} ;;
  faults) setup; cd "$ROOT"; exec "$VENV/bin/python" -m pytest tests/faults --long ${PASSTHROUGH[@]+"${PASSTHROUGH[@]}"} ;;
  install-apache|uninstall-apache)
    [ "$(id -u)" -eq 0 ] || die "$COMMAND changes the system Apache: run it as root"
    system_packages; ensure_var; ensure_venv
    exec "$VENV/bin/python" -m apache_conf "${COMMAND%-apache}" ${PASSTHROUGH[@]+"${PASSTHROUGH[@]}"} ;;
esac
