//! zenoh session settings of every process (gated, the drivers, `gated ctl`, enrold's distribution):
//! peer mode, multicast scouting off, explicit endpoints. Stations run on closed networks where
//! multicast discovery is either unavailable or a way for a stray device to join the bus.
//!
//! Links are mutual TLS with the station's certificates and zenoh's access control on top
//! (`certs.rs`, `acl.rs`); plain TCP only where a configuration says `insecure`, with a warning at
//! every start.

use crate::ProtocolError;
use crate::certs::TlsFiles;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZenohEndpoints {
    /// Where this process accepts connections, e.g. `tls/127.0.0.1:7447`.
    pub listen: Vec<String>,
    /// Peers this process dials (and keeps re-dialling while they are down).
    pub connect: Vec<String>,
    pub security: BusSecurity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusSecurity {
    /// Mutual TLS: this node's certificate and key, and the CAs it trusts; access control on.
    Tls(TlsFiles),
    /// Plain TCP, no authentication: for a bench or a test, never a station.
    Insecure,
}

impl BusSecurity {
    /// The one rule every node's settings follow: the certificates folder gives mutual TLS as
    /// `role` (its files checked), `insecure` gives plain TCP; exactly one of the two.
    pub fn choose(
        certs: Option<&std::path::Path>,
        insecure: bool,
        role: crate::Role,
    ) -> Result<Self, crate::CertError> {
        match (certs, insecure) {
            (Some(dir), false) => Ok(Self::Tls(crate::CertDir::new(dir).tls(role)?)),
            (None, true) => Ok(Self::Insecure),
            (certs, _) => Err(crate::CertError::SecurityChoice {
                both: certs.is_some(),
            }),
        }
    }
}

impl ZenohEndpoints {
    pub fn insecure(listen: Vec<String>, connect: Vec<String>) -> Self {
        Self {
            listen,
            connect,
            security: BusSecurity::Insecure,
        }
    }

    fn check(&self) -> Result<(), ProtocolError> {
        check_schemes(
            self.listen.iter().chain(&self.connect),
            matches!(self.security, BusSecurity::Tls(_)),
        )
    }
}

/// A node whose certificate (or CA) has expired could never join the bus: refuse to start, naming
/// the file and the date, rather than run unreachable. Warn for a month before.
fn check_validity(f: &TlsFiles) -> Result<(), ProtocolError> {
    for (what, path) in [("certificate", &f.cert), ("CA", &f.ca)] {
        let err = |reason: String| ProtocolError::Certificate {
            path: path.clone(),
            reason,
        };
        let expiry = crate::certs::expiry_unix_s(path).map_err(|e| err(e.to_string()))?;
        let now = crate::unix_ms() as i64 / 1000;
        if expiry <= now {
            return Err(err(format!(
                "the {what} expired {} day(s) ago; renew it (`gated certs rotate`)",
                (now - expiry) / 86_400
            )));
        }
        let days = (expiry - now) / 86_400;
        if days < RENEW_WITHIN_DAYS {
            tracing::warn!(
                path = %path.display(),
                days_left = days,
                "the bus {what} expires soon; renew it (`gated certs rotate`) and restart"
            );
        }
    }
    Ok(())
}

/// A certificate this close to its expiry is warned about at every start (and alerted on by
/// `GateBusCertificateExpiring`).
pub const RENEW_WITHIN_DAYS: i64 = 30;

/// Refuses an endpoint whose scheme does not match the security: a `tcp/` endpoint on a TLS node
/// would be a silent hole, a `tls/` one on an insecure node could never connect.
pub fn check_schemes<'a>(
    endpoints: impl IntoIterator<Item = &'a String>,
    tls: bool,
) -> Result<(), ProtocolError> {
    let want = if tls { "tls/" } else { "tcp/" };
    for e in endpoints {
        if !e.starts_with(want) {
            let reason = if tls {
                "links are TLS: write it tls/HOST:PORT (or set insecure = true)"
            } else {
                "links are plain (insecure): write it tcp/HOST:PORT"
            };
            return Err(ProtocolError::Endpoint {
                endpoint: e.clone(),
                reason,
            });
        }
    }
    Ok(())
}

pub fn zenoh_config(ep: &ZenohEndpoints) -> Result<zenoh::Config, ProtocolError> {
    ep.check()?;
    let mut c = zenoh::Config::default();
    let list = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    let set = |c: &mut zenoh::Config, key: &'static str, val: &str| {
        c.insert_json5(key, val)
            .map_err(|source| ProtocolError::Config {
                key,
                value: val.to_owned(),
                source,
            })
    };
    set(&mut c, "mode", r#""peer""#)?;
    set(&mut c, "scouting/multicast/enabled", "false")?;
    set(&mut c, "listen/endpoints", &list(&ep.listen))?;
    set(&mut c, "connect/endpoints", &list(&ep.connect))?;
    // A peer whose counterpart is not up yet keeps retrying in the background instead of failing the
    // open: drivers and gated may start in any order.
    set(
        &mut c,
        "connect/timeout_ms",
        r#"{ router: -1, peer: -1, client: 0 }"#,
    )?;
    set(
        &mut c,
        "connect/exit_on_failure",
        r#"{ router: false, peer: false, client: true }"#,
    )?;
    match &ep.security {
        BusSecurity::Tls(f) => {
            check_validity(f)?;
            let path = |p: &std::path::Path| {
                serde_json::to_string(&p.to_string_lossy()).unwrap_or_default()
            };
            let (ca, cert, key) = (path(&f.ca), path(&f.cert), path(&f.key));
            set(&mut c, "transport/link/tls/root_ca_certificate", &ca)?;
            set(&mut c, "transport/link/tls/listen_certificate", &cert)?;
            set(&mut c, "transport/link/tls/listen_private_key", &key)?;
            set(&mut c, "transport/link/tls/connect_certificate", &cert)?;
            set(&mut c, "transport/link/tls/connect_private_key", &key)?;
            set(&mut c, "transport/link/tls/enable_mtls", "true")?;
            // A node is identified by its role (the certificate's name, checked by the access
            // control on every message), not by its address: station nodes are dialled by IP.
            set(&mut c, "transport/link/tls/verify_name_on_connect", "false")?;
            set(
                &mut c,
                "transport/link/tls/close_link_on_expiration",
                "true",
            )?;
            set(&mut c, "access_control", &crate::acl::policy().to_string())?;
        }
        BusSecurity::Insecure => {
            tracing::warn!(
                "zenoh links are plain TCP without authentication (insecure = true): anyone on this \
                 network can command the doors; use certificates (`gated certs`) on a station"
            );
        }
    }
    Ok(c)
}
