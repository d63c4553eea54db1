//! Test helpers: start the real `enrold` binary on loopback with a store in a tempdir, serving
//! HTTPS with a certificate of a test CA; a plain HTTP/1.1 client over rustls that checks that
//! certificate; multipart bodies; and the test photos.
#![allow(dead_code)]
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use protocol::{CertDir, Role};

use domain::seal::{self, KeyId, MasterKey};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A photo fetched by scripts/setup into testdata/<set>/ (GATE_TESTDATA overrides the folder).
pub fn testdata(set: &str, name: &str) -> PathBuf {
    let dir = std::env::var_os("GATE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata"));
    let p = dir.join(set).join(name);
    assert!(
        p.is_file(),
        "{} not found: run scripts/setup to fetch the test images",
        p.display()
    );
    p
}

pub fn photo(name: &str) -> Vec<u8> {
    std::fs::read(testdata("face_recognition", name)).unwrap()
}

pub fn jpeg(img: &image::RgbImage) -> Vec<u8> {
    let mut c = std::io::Cursor::new(Vec::new());
    img.write_to(&mut c, image::ImageFormat::Jpeg).unwrap();
    c.into_inner()
}

/// One test CA per test process; enrold's certificate names 127.0.0.1, where the tests dial it.
pub fn test_certs() -> &'static CertDir {
    static CERTS: OnceLock<CertDir> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let c = CertDir::new(dir);
        c.init("test").unwrap();
        c.issue_for(Role::Enrold, 30, &["127.0.0.1".into()])
            .unwrap();
        c
    })
}

/// A TLS client that trusts the test CA only.
fn client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let pem = std::fs::read(test_certs().ca()).unwrap();
            let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(rustls::pki_types::CertificateDer::from(pem.contents))
                .unwrap();
            Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
            )
        })
        .clone()
}

pub struct Server {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub child: Child,
}

/// Writes key, token file and config into `dir` (kept across restarts); `extra` is appended to the
/// config (e.g. a `[quality]` table).
pub fn prepare(dir: &Path, extra: &str) {
    let key = dir.join("master.key");
    if !key.exists() {
        seal::write_key_file(&key, &MasterKey::generate(KeyId(1)).unwrap()).unwrap();
    }
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("# test\napp {TOKEN}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let certs = test_certs();
    let cfg = format!(
        "listen = \"127.0.0.1:0\"\nstore = {:?}\nworkers = 2\n\n[tls]\ncert = {:?}\nkey = {:?}\n\n[keys]\nmaster_key_file = {:?}\n\n[auth]\ntoken_file = {:?}\n\n{extra}",
        dir.join("centre.redb"),
        certs.cert(Role::Enrold),
        certs.key(Role::Enrold),
        key,
        tokens
    );
    std::fs::write(dir.join("enrold.toml"), cfg).unwrap();
}

pub fn enrold() -> Command {
    Command::new(env!("CARGO_BIN_EXE_enrold"))
}

impl Server {
    /// Starts `enrold serve` on the config in `dir` and waits for its "listening on" line.
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[])
    }

    /// [`Server::start`] with these variables in the child's environment.
    pub fn start_with(dir: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Server {
        let mut child = enrold()
            .args(["serve", "--config"])
            .arg(dir.join("enrold.toml"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("enrold did not start: {line:?}"))
            .parse()
            .unwrap();
        Server {
            dir: dir.to_path_buf(),
            addr,
            child,
        }
    }

    /// SIGTERM and wait (graceful stop: the store is closed cleanly); how it exited.
    pub fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, Some(TOKEN), &[], b"")
    }

    pub fn delete(&self, path: &str) -> Response {
        request(self.addr, "DELETE", path, Some(TOKEN), &[], b"")
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.send_json("POST", path, body)
    }

    pub fn put_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.send_json("PUT", path, body)
    }

    fn send_json(&self, method: &str, path: &str, body: &serde_json::Value) -> Response {
        let b = serde_json::to_vec(body).unwrap();
        request(
            self.addr,
            method,
            path,
            Some(TOKEN),
            &[("Content-Type", "application/json")],
            &b,
        )
    }

    /// `POST /subjects` with a consent record and photos.
    pub fn enrol(&self, photos: &[&[u8]]) -> Response {
        let (ct, body) = multipart(photos);
        request(
            self.addr,
            "POST",
            "/subjects",
            Some(TOKEN),
            &[("Content-Type", &ct)],
            &body,
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn multipart(photos: &[&[u8]]) -> (String, Vec<u8>) {
    let boundary = "XyZzY-boundary-7d1f";
    let mut b = Vec::new();
    b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"consent\"\r\n\r\n{{\"time\":\"2026-03-01T09:00:00Z\",\"policy_version\":\"2026-01\"}}\r\n").as_bytes());
    for (i, p) in photos.iter().enumerate() {
        b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p{i}.jpg\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        b.extend_from_slice(p);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`), response read to EOF.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    raw(addr, head.as_bytes(), body)
}

/// Sends `head` then `body` (write errors after the head are ignored: the server may answer and close
/// early) and parses the response.
pub fn raw(addr: SocketAddr, head: &[u8], body: &[u8]) -> Response {
    try_raw(addr, head, body).expect("an HTTP response")
}

/// As [`raw`], `None` when the connection fails or closes without a complete response head.
pub fn try_raw(addr: SocketAddr, head: &[u8], body: &[u8]) -> Option<Response> {
    let tcp = TcpStream::connect(addr).ok()?;
    let name = rustls::pki_types::ServerName::from(addr.ip());
    let tls = rustls::ClientConnection::new(client_config(), name).ok()?;
    let mut s = rustls::StreamOwned::new(tls, tcp);
    s.write_all(head).ok()?;
    // The body goes in pieces, with a look for an answer before each. A server that refuses early
    // (a declared length over the limit, a chunked body that grows past it) answers and closes;
    // writing on after that makes its kernel reset the connection, and the reset can discard the
    // answer before it is read (seen once in CI). So an early answer stops the writing.
    let mut buf = Vec::new();
    s.sock
        .set_read_timeout(Some(Duration::from_millis(5)))
        .ok()?;
    for piece in body.chunks(64 << 10) {
        let mut tmp = [0u8; 16 << 10];
        match s.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                break;
            }
            Err(_) => {} // nothing yet (timed out): go on writing
        }
        if s.write_all(piece).is_err() {
            break;
        }
    }
    s.sock
        .set_read_timeout(Some(Duration::from_secs(120)))
        .ok()?;
    let _ = s.read_to_end(&mut buf);
    buf.windows(4)
        .any(|w| w == b"\r\n\r\n")
        .then(|| parse(&buf))
}

fn parse(buf: &[u8]) -> Response {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(buf)));
    let head = std::str::from_utf8(&buf[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(nl) = rest.windows(2).position(|w| w == b"\r\n") {
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + n]);
            rest = &rest[nl + 2 + n + 2..];
        }
        body = out;
    }
    Response {
        status,
        headers,
        body,
    }
}

/// Every occurrence of `needle` in the file.
pub fn file_contains(path: &Path, needle: &[u8]) -> bool {
    let data = std::fs::read(path).unwrap();
    data.windows(needle.len()).any(|w| w == needle)
}
