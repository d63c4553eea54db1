//! Helpers of the tests that run a station and talk to it over loopback.
// Test helpers fail the test by panicking, like the #[test] functions that call them.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;

/// A loopback port free a moment ago.
pub fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The whole HTTP response (status line, headers, body) of `GET path`.
pub fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to exporter");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    out
}
