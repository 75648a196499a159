#!/usr/bin/env bash
# Makes sure PostgreSQL and MariaDB answer on 127.0.0.1 (trust/no password,
# database `test`), as the machine provides them: starts them if they are
# installed but stopped, installs them from Debian's packages if missing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
my_up() { mariadb-admin -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; }
wait_for() { for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done; return 1; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  apt-get install -y -q postgresql >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
fi
if ! pg_up; then
  service postgresql start >/dev/null 2>&1 || pg_ctlcluster "$(ls /etc/postgresql | sort -V | tail -1)" main start
  wait_for pg_up || { echo "PostgreSQL did not start" >&2; exit 1; }
fi
# The test database and trust logins, as on the machine.
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname = 'test'\"" | grep -q 1 \
  || su postgres -c "createdb test"
if ! psql -h 127.0.0.1 -U postgres -d test -qtAc "SELECT 1" >/dev/null 2>&1; then
  hba=$(su postgres -c "psql -qtAc 'SHOW hba_file'")
  sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  su postgres -c "psql -qtAc 'SELECT pg_reload_conf()'" >/dev/null
fi

if ! command -v mariadbd >/dev/null 2>&1; then
  apt-get install -y -q mariadb-server >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q mariadb-server >/dev/null; }
fi
if ! my_up; then
  service mariadb start >/dev/null 2>&1 || (mysqld_safe >/dev/null 2>&1 &)
  wait_for my_up || { echo "MariaDB did not start" >&2; exit 1; }
fi
mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS test" 2>/dev/null \
  || mariadb -u root -e "CREATE DATABASE IF NOT EXISTS test; ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket"

echo "PostgreSQL: $(psql -h 127.0.0.1 -U postgres -d test -qtAc 'SHOW server_version')"
echo "MariaDB: $(mariadb -h 127.0.0.1 -u root -N -e 'SELECT version()')"
