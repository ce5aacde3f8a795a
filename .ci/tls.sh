#!/usr/bin/env bash
# Throwaway certificates for the TLS tests, and the local servers set up to use them.
#
# A test CA signs: the servers' certificate (for `localhost` and `db.example`, and
# not for 127.0.0.1, so that connecting by address is a wrong host name), an
# expired one, and a client certificate for the user `dualsync_cert`. A second CA
# is the wrong one. PostgreSQL and MariaDB get the server certificate and trust
# the CA for client certificates. The tests find the files in $DUALSYNC_TEST_TLS_DIR.
set -euo pipefail
dir="${DUALSYNC_TEST_TLS_DIR:-/var/lib/dualsync-test-tls}"

pg() { psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -Atc "$1"; }
my() { mariadb -h 127.0.0.1 -u root -N -B -e "$1"; }
quiet() { local out; out="$("$@" 2>&1)" || { echo "FAIL: $* : $out" >&2; exit 1; }; }

make_certificates() {
  rm -rf "$dir" && mkdir -p "$dir/new" && cd "$dir"
  quiet openssl req -x509 -new -nodes -newkey rsa:2048 -days 3650 -subj "/CN=dualsync test CA" -keyout ca.key -out ca.crt
  quiet openssl req -x509 -new -nodes -newkey rsa:2048 -days 3650 -subj "/CN=dualsync other CA" -keyout other-ca.key -out other-ca.crt
  for name in server expired; do
    quiet openssl req -new -nodes -newkey rsa:2048 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,DNS:db.example" \
      -keyout $name.key -out $name.csr
  done
  quiet openssl req -new -nodes -newkey rsa:2048 -subj /CN=dualsync_cert -keyout client.key -out client.csr
  touch index.txt && echo 1000 > serial
  cat > ca.cnf <<CNF
[ca]
default_ca = test
[test]
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
x509_extensions = v3
[v3]
basicConstraints = CA:FALSE
[any]
commonName = supplied
CNF
  sign() { quiet openssl ca -batch -notext -config ca.cnf -cert ca.crt -keyfile ca.key -in "$1.csr" -out "$1.crt" "${@:2}"; }
  sign server -days 3650
  sign expired -startdate 20200101000000Z -enddate 20200201000000Z
  sign client -days 3650
  chmod 644 ./*.crt && chmod 600 ./*.key
  cd - >/dev/null
}

# New certificates when there are none, or they are about to expire.
# (X.509 v3 throughout: rustls takes no v1 client certificate.)
if ! openssl x509 -checkend 86400 -noout -in "$dir/server.crt" >/dev/null 2>&1 || [ ! -f "$dir/expired.crt" ] ||
  ! openssl x509 -noout -text -in "$dir/client.crt" 2>/dev/null | grep -q 'Version: 3'; then
  echo "TLS: making a test CA and certificates in $dir"
  make_certificates
  made=1
fi

# PostgreSQL reads its key only when it owns it: copies in its data directory.
data_dir="$(pg 'show data_directory')"
pg_tls="$data_dir/dualsync-ci-tls"
mkdir -p "$pg_tls"
cp "$dir"/{ca.crt,server.crt,server.key,expired.crt,expired.key} "$pg_tls/"
chown -R "$(stat -c %U "$data_dir")" "$pg_tls" && chmod 700 "$pg_tls" && chmod 600 "$pg_tls"/*.key
changed="${made:-}"
set_pg() { [ "$(pg "show $1")" = "$2" ] || { pg "ALTER SYSTEM SET $1 = '$2'" >/dev/null; changed=1; }; }
set_pg ssl on
set_pg ssl_cert_file "$pg_tls/server.crt"
set_pg ssl_key_file "$pg_tls/server.key"
set_pg ssl_ca_file "$pg_tls/ca.crt"
# The client-certificate user signs in with its certificate only, over TLS.
hba="$(pg 'show hba_file')"
if ! grep -q '^hostssl all dualsync_cert' "$hba"; then
  sed -i '1i hostssl all dualsync_cert 127.0.0.1/32 cert' "$hba"
  changed=1
fi
if [ -n "$changed" ]; then
  pg 'SELECT pg_reload_conf()' >/dev/null
fi
# The server rereads its configuration on its own time; a certificate it refused leaves it without TLS.
for _ in $(seq 40); do
  [ "$(psql "host=localhost user=postgres sslmode=verify-full sslrootcert=$dir/ca.crt" -Atc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>/dev/null)" = t ] && break
  sleep 0.5
done
[ "$(psql "host=localhost user=postgres sslmode=verify-full sslrootcert=$dir/ca.crt" -Atc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>&1)" = t ] ||
  { echo "FAIL: PostgreSQL does not serve the test certificate (see its log)" >&2; exit 1; }
echo "PostgreSQL: TLS with the test CA's certificate, verify-full by localhost works"

# MariaDB reads ssl_cert/ssl_key/ssl_ca at start: a block of its config file, and a restart.
my_tls=/etc/mysql/dualsync-tls
mkdir -p "$my_tls" && cp "$dir"/{ca.crt,server.crt,server.key} "$my_tls/"
chown -R mysql "$my_tls" 2>/dev/null || true
chmod 600 "$my_tls/server.key"
if ! grep -q '^# dualsync CI: TLS' /etc/mysql/my.cnf || [ "$(my "SELECT @@have_ssl")" != YES ]; then
  echo "MariaDB: TLS with the test CA's certificate (restart)"
  if ! grep -q '^# dualsync CI: TLS' /etc/mysql/my.cnf; then
    printf '%s\n' '# dualsync CI: TLS with the test CA (.ci/tls.sh)' '[mariadbd]' \
      "ssl_cert = $my_tls/server.crt" "ssl_key = $my_tls/server.key" "ssl_ca = $my_tls/ca.crt" >> /etc/mysql/my.cnf
  fi
  my "SHUTDOWN" || true
  for _ in $(seq 60); do pgrep -x mariadbd >/dev/null || break; sleep 1; done
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 60); do timeout 2 bash -c "</dev/tcp/127.0.0.1/3306" 2>/dev/null && break; sleep 1; done
fi
[ "$(my "SELECT @@have_ssl")" = YES ] || { echo "FAIL: MariaDB has no TLS (have_ssl = $(my "SELECT @@have_ssl")); see its error log" >&2; exit 1; }
# New certificates for a server already set up: it rereads them without a restart.
[ -z "${made:-}" ] || my "FLUSH SSL"
echo "MariaDB: TLS with the test CA's certificate"
