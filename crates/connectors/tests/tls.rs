//! TLS to the real servers, with the throwaway CA of `.ci/tls.sh`: each
//! `sslmode`/`ssl-mode`, wrong CAs, wrong host names, an expired certificate
//! and client certificates. What a session is, the server says: the
//! connector's `transport()` reads `pg_stat_ssl` and MySQL's `Ssl_cipher`.

use dualsync_connectors::Transport;
use dualsync_model::config::DatabaseUrl;
use dualsync_testkit::{Kind, TestDb};
use std::path::Path;
use std::sync::Mutex;

/// The expired-certificate test swaps PostgreSQL's certificate: the other
/// PostgreSQL tests of this file wait for it.
static PG_CERTIFICATE: Mutex<()> = Mutex::new(());

fn transport(url: &str) -> Result<Transport, String> {
    let url = DatabaseUrl::parse(url, Path::new("/")).unwrap();
    let connector = dualsync_connectors::open(&url, None).map_err(|e| e.to_string())?;
    let mut conn = connector.connect().map_err(|e| e.to_string())?;
    conn.transport().map_err(|e| e.to_string())
}

/// What the session verified, "plain", or why it failed.
fn verified(t: &Result<Transport, String>) -> String {
    match t {
        Ok(Transport::Tls { verified, .. }) => verified.to_string(),
        Ok(Transport::Plain { .. }) => "plain".into(),
        Ok(Transport::Local) => "local".into(),
        Err(e) => format!("failed: {e}"),
    }
}

fn by_name(url: &str) -> String {
    url.replace("@127.0.0.1:", "@localhost:")
}

fn fails_with(result: Result<Transport, String>, words: &[&str]) {
    let e = result.expect_err("the connection must be refused");
    for w in words {
        assert!(e.contains(w), "{w:?} missing from: {e}");
    }
}

#[test]
fn postgres_verifies_the_server_as_the_url_asks() {
    let Some(tls) = dualsync_testkit::tls_dir() else { return };
    let Some(db) = TestDb::new(Kind::Postgres) else { return };
    let _one = PG_CERTIFICATE.lock().unwrap_or_else(|p| p.into_inner());
    let ca = tls.join("ca.crt").display().to_string();
    let other = tls.join("other-ca.crt").display().to_string();

    let full = transport(&format!("{}?sslmode=verify-full&sslrootcert={ca}", by_name(&db.url)));
    assert_eq!(verified(&full), "certificate and host name verified", "{full:?}");
    assert!(matches!(&full, Ok(Transport::Tls { version, .. }) if version.starts_with("TLSv1.")), "{full:?}");

    fails_with(
        transport(&format!("{}?sslmode=verify-full&sslrootcert={other}", by_name(&db.url))),
        &["not issued by a CA in the CA file", "other-ca.crt", "set sslrootcert"],
    );
    // The certificate is for localhost and db.example, not for the address.
    fails_with(transport(&format!("{}?sslmode=verify-full&sslrootcert={ca}", db.url)), &["is for", "db.example", "not for \"127.0.0.1\""]);
    let ca_only = transport(&format!("{}?sslmode=verify-ca&sslrootcert={ca}", db.url));
    assert_eq!(verified(&ca_only), "certificate verified, host name not checked", "{ca_only:?}");
    assert_eq!(verified(&transport(&format!("{}?sslmode=require", db.url))), "certificate not verified");
    assert_eq!(verified(&transport(&db.url)), "certificate not verified", "prefer, the default, encrypts when the server offers TLS");
    assert_eq!(verified(&transport(&format!("{}?sslmode=disable", db.url))), "plain");
    fails_with(
        transport(&format!("{}?sslmode=verify-full&sslrootcert=/nowhere/ca.pem", db.url)),
        &["the CA file /nowhere/ca.pem cannot be read"],
    );
}

#[test]
fn postgres_refuses_an_expired_certificate() {
    let Some(tls) = dualsync_testkit::tls_dir() else { return };
    let Some(db) = TestDb::new(Kind::Postgres) else { return };
    let _one = PG_CERTIFICATE.lock().unwrap_or_else(|p| p.into_inner());
    let served = |name: &str| {
        let dir = db.texts("SELECT current_setting('ssl_cert_file')")[0].clone().unwrap();
        let dir = Path::new(&dir).parent().unwrap().to_path_buf();
        db.exec(&format!("ALTER SYSTEM SET ssl_cert_file = '{}'", dir.join(format!("{name}.crt")).display()));
        db.exec(&format!("ALTER SYSTEM SET ssl_key_file = '{}'", dir.join(format!("{name}.key")).display()));
        db.exec("SELECT pg_reload_conf()");
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    struct Restore<'a>(&'a dyn Fn(&str));
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            (self.0)("server");
        }
    }
    served("expired");
    let _restore = Restore(&served);
    let url = format!("{}?sslmode=verify-full&sslrootcert={}", by_name(&db.url), tls.join("ca.crt").display());
    fails_with(transport(&url), &["certificate expired on 2020-02-01", "renew it"]);
    assert_eq!(verified(&transport(&format!("{}?sslmode=require", db.url))), "certificate not verified", "require does not look at dates");
}

#[test]
fn postgres_presents_a_client_certificate_when_the_server_requires_one() {
    let Some(tls) = dualsync_testkit::tls_dir() else { return };
    let Some(db) = TestDb::new(Kind::Postgres) else { return };
    let _one = PG_CERTIFICATE.lock().unwrap_or_else(|p| p.into_inner());
    db.exec("DO $$ BEGIN CREATE ROLE dualsync_cert LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    // pg_hba.conf (.ci/tls.sh): `hostssl all dualsync_cert 127.0.0.1/32 cert`.
    let as_cert_user = db.url.replace("postgres@", "dualsync_cert@");
    fails_with(transport(&format!("{as_cert_user}?sslmode=require")), &["cannot connect"]);
    let (cert, key) = (tls.join("client.crt"), tls.join("client.key"));
    let with_cert = format!(
        "{as_cert_user}?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        tls.join("ca.crt").display(),
        cert.display(),
        key.display()
    );
    assert_eq!(verified(&transport(&by_name(&with_cert))), "certificate and host name verified");
    fails_with(transport(&format!("{as_cert_user}?sslmode=require&sslcert={}", cert.display())), &["sslcert needs sslkey"]);
}

#[test]
fn mysql_verifies_the_server_as_the_url_asks() {
    let Some(tls) = dualsync_testkit::tls_dir() else { return };
    let Some(db) = TestDb::new(Kind::Mariadb) else { return };
    let ca = tls.join("ca.crt").display().to_string();
    let full = transport(&format!("{}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}", by_name(&db.url)));
    assert_eq!(verified(&full), "certificate and host name verified", "{full:?}");
    assert!(matches!(&full, Ok(Transport::Tls { cipher, .. }) if !cipher.is_empty()), "{full:?}");
    fails_with(
        transport(&format!("{}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}", by_name(&db.url), tls.join("other-ca.crt").display())),
        &["not issued by a CA", "set ssl-ca"],
    );
    fails_with(transport(&format!("{}?ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}", db.url)), &["not for", "127.0.0.1"]);
    assert_eq!(verified(&transport(&format!("{}?ssl-mode=VERIFY_CA&ssl-ca={ca}", db.url))), "certificate verified, host name not checked");
    assert_eq!(verified(&transport(&format!("{}?ssl-mode=REQUIRED", db.url))), "certificate not verified");
    assert_eq!(verified(&transport(&db.url)), "certificate not verified", "PREFERRED, the default, encrypts when the server offers TLS");
    assert_eq!(verified(&transport(&format!("{}?ssl-mode=DISABLED", db.url))), "plain");
    fails_with(transport(&format!("{}?require_ssl=true", db.url)), &["require_ssl is not a setting dualsync takes", "ssl-mode"]);
}

#[test]
fn mysql_presents_a_client_certificate_when_the_server_requires_one() {
    let Some(tls) = dualsync_testkit::tls_dir() else { return };
    let Some(db) = TestDb::new(Kind::Mariadb) else { return };
    db.exec("CREATE USER IF NOT EXISTS 'dualsync_cert'@'%' REQUIRE X509");
    db.exec(&format!("GRANT ALL ON {}.* TO 'dualsync_cert'@'%'", db.name()));
    let as_cert_user = db.url.replace("root@", "dualsync_cert@");
    fails_with(transport(&format!("{as_cert_user}?ssl-mode=REQUIRED")), &["cannot connect"]);
    let with_cert = format!(
        "{as_cert_user}?ssl-mode=VERIFY_IDENTITY&ssl-ca={}&ssl-cert={}&ssl-key={}",
        tls.join("ca.crt").display(),
        tls.join("client.crt").display(),
        tls.join("client.key").display()
    );
    assert_eq!(verified(&transport(&by_name(&with_cert))), "certificate and host name verified");
}
