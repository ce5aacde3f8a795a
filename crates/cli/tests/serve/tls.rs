//! `serve` over HTTPS: a certificate made here with openssl, a client that
//! trusts only it, plain HTTP refused on that port, and bad files refused
//! before anything listens.

use super::Served;
use dualsync_testkit::Kind;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

/// A throwaway CA (`ca.pem`) and a server certificate it signed for
/// 127.0.0.1 and localhost (`cert.pem`, `key.pem`), or None without openssl.
fn certificate(dir: &Path) -> Option<()> {
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let steps: [Vec<&str>; 3] = [
        [&["req", "-x509"][..], &ec, &["-days", "2", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=dualsync test CA"]].concat(),
        [&["req"][..], &ec, &["-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=localhost"]].concat(),
        vec!["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"]
            .into_iter()
            .chain(["-out", "cert.pem", "-extfile", "ext.cnf"])
            .collect(),
    ];
    for args in steps {
        match std::process::Command::new("openssl").current_dir(dir).args(&args).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!("openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => {
                assert!(std::env::var("CI").is_err(), "CI needs openssl for the TLS tests: {e}");
                eprintln!("SKIPPED: the TLS tests need openssl ({e})");
                return None;
            }
        }
    }
    Some(())
}

/// A GET over TLS, trusting only `ca`: the status line and body.
fn get_over_tls(port: u16, ca: &Path, path: &str, token: &str) -> (String, String) {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(("127.0.0.1", port)).unwrap());
    write!(tls, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = tls.read_to_string(&mut answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

#[test]
fn serve_speaks_https_with_the_certificate_it_is_given() {
    let Some(mut s) = Served::start([Kind::Sqlite, Kind::Sqlite], "master") else { return };
    if certificate(s.w.dir.path()).is_none() {
        return;
    }
    s.stop();
    s.serve(&["--tls-cert", "cert.pem", "--tls-key", "key.pem"]);
    assert!(s.output().contains("listening on https://"), "{}", s.output());
    let (status, body) = get_over_tls(s.port, &s.w.path("ca.pem"), "/api/v1/maps", &s.viewer);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains("\"map\":\"items\""), "{body}");
    let (status, _) = get_over_tls(s.port, &s.w.path("ca.pem"), "/api/v1/maps", "dst_wrong");
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    // Plain HTTP to the HTTPS port gets no answer.
    let mut plain = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    plain.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    let _ = plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("\"up\""), "plain HTTP was answered");
    s.stop();

    // With TLS, a non-loopback address is allowed; bad files are refused before it listens.
    std::fs::write(s.w.path("empty.pem"), "").unwrap();
    for (args, says) in [
        (vec!["--tls-cert", "cert.pem", "--tls-key", "cert.pem"], "--tls-key cert.pem"),
        (vec!["--tls-cert", "empty.pem", "--tls-key", "key.pem"], "no certificate in it"),
        (vec!["--tls-cert", "missing.pem", "--tls-key", "key.pem"], "--tls-cert missing.pem"),
        (vec!["--tls-cert", "cert.pem"], "--tls-key"),
    ] {
        let mut all = vec!["serve", "--listen", "0.0.0.0:0"];
        all.extend(args.iter());
        let run = s.w.run(&all);
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
}
