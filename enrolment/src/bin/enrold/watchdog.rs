//! systemd's watchdog for `enrold serve` (`WatchdogSec=` in `deploy/systemd/enrold.service`).
//!
//! The ping goes out only after enrold answered its own `GET /healthz` through its listening
//! socket: a wedged accept loop, router or gallery lock then stops the pings and systemd restarts
//! the service, where a bare timer would keep vouching for a process that serves nobody.

use anyhow::{Context, Result, bail};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tracing::warn;

/// Probes and pings every half `WATCHDOG_USEC` until aborted; returns at once without a watchdog.
/// With `https` the probe speaks TLS, as every client must.
pub async fn run(listening: SocketAddr, https: bool) {
    let mut watchdog = supervise::Watchdog::from_env();
    let Some(period) = watchdog.period() else {
        return;
    };
    let tls = match https.then(own_server).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            // No probe, no pings: systemd restarts enrold, and this says why.
            warn!(error = %format!("{e:#}"), "watchdog not pinged");
            return;
        }
    };
    let target = reachable(listening);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tokio::time::timeout(period, probe(target, tls.as_ref())).await {
            Ok(Ok(())) => watchdog.ping(),
            Ok(Err(e)) => {
                warn!(error = %format!("{e:#}"), "own /healthz failed: watchdog not pinged")
            }
            Err(_) => warn!(?period, "own /healthz did not answer: watchdog not pinged"),
        }
    }
}

/// A wildcard listen address is reached on the loopback of its family.
fn reachable(listening: SocketAddr) -> SocketAddr {
    let ip = match listening.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listening.port())
}

async fn probe(addr: SocketAddr, tls: Option<&TlsConnector>) -> Result<()> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    match tls {
        Some(c) => {
            let name = rustls::pki_types::ServerName::from(addr.ip());
            let s = c.connect(name, stream).await.context("TLS handshake")?;
            healthz(s).await
        }
        None => healthz(stream).await,
    }
}

async fn healthz<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> Result<()> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .context("send the request")?;
    let mut status = String::new();
    BufReader::new(stream)
        .read_line(&mut status)
        .await
        .context("read the status line")?;
    if !status.starts_with("HTTP/1.1 200") {
        bail!("answered {:?}", status.trim_end());
    }
    Ok(())
}

/// A TLS client for enrold's probe of its own socket. It does not check the certificate: the probe
/// dials the address enrold itself is listening on, sends no secret, and asks whether the accept
/// loop, the TLS layer and the router answer; which certificate they present is not the question
/// (and the certificate need not name the loopback address the probe uses).
fn own_server() -> Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS client for the watchdog probe")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_probed_on_loopback() {
        let v4: SocketAddr = "0.0.0.0:8440".parse().unwrap();
        let v6: SocketAddr = "[::]:8440".parse().unwrap();
        let named: SocketAddr = "10.0.0.5:8440".parse().unwrap();
        assert_eq!(reachable(v4), "127.0.0.1:8440".parse().unwrap());
        assert_eq!(reachable(v6), "[::1]:8440".parse().unwrap());
        assert_eq!(reachable(named), named);
    }
}
