//! The station's certificates: one CA per station, one certificate per role. The role is the
//! certificate's common name, and the common name is what zenoh's access control keys on
//! (`acl.rs`), so a certificate says both "this node belongs to the station" (signed by its CA) and
//! "it may do what this role may" (its name). `docs/protocol.md`, "Bus security", is the spec.
//!
//! Layout of a certificate folder (`gated certs init|issue|rotate` write it):
//! - `ca.pem`: the trust anchors every process loads. It may hold several certificates, e.g. the
//!   station's CA and the centre's, so enrold can serve stations that each have their own CA.
//! - `ca.key`: the CA's private key, needed only where certificates are issued (mode 0600).
//! - `{role}.pem`, `{role}.key`: one pair per role (key mode 0600).

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Who a node is on the station bus. The name is the certificate's common name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The recogniser: commands doors and lights, answers `ctl`, follows the centre.
    Gated,
    DoorDriver,
    LightDriver,
    /// The central enrolment service's template distribution.
    Enrold,
    /// `gated ctl` and the fire panel's emergency input.
    Operator,
    /// A test rig feeding the simulated flap's sensors (`door/sim`) and the simulated card
    /// reader's taps (`card/sim`); never needed with real devices.
    Sim,
    /// The card reader beside the face (`card-reader`).
    CardReader,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Gated,
        Role::DoorDriver,
        Role::LightDriver,
        Role::Enrold,
        Role::Operator,
        Role::Sim,
        Role::CardReader,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Gated => "gated",
            Role::DoorDriver => "door-driver",
            Role::LightDriver => "light-driver",
            Role::Enrold => "enrold",
            Role::Operator => "operator",
            Role::Sim => "sim",
            Role::CardReader => "card-reader",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = CertError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| CertError::UnknownRole(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(
        "unknown role {0:?}: one of gated, door-driver, light-driver, enrold, operator, sim, card-reader"
    )]
    UnknownRole(String),
    #[error("{}: {what}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: missing; make the station's certificates with `gated certs init` and `gated certs issue`",
        .0.display()
    )]
    Missing(PathBuf),
    #[error(
        "{}: a private key readable by others (mode {mode:o}); chmod 600 it",
        path.display()
    )]
    KeyExposed { path: PathBuf, mode: u32 },
    #[error(
        "{}: already holds a CA key; a second `init` would orphan every certificate it issued",
        .0.display()
    )]
    CaExists(PathBuf),
    #[error("{what}")]
    Rcgen {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error(transparent)]
    Station(#[from] crate::ProtocolError),
    #[error("{}: not a PEM certificate: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("validity of {days} days: must be 1..=3650")]
    Validity { days: u32 },
    #[error(
        "give the station's certificates (certs = \"DIR\" / --certs DIR) or insecure = true / --insecure{}",
        if *.both { ", not both" } else { "" }
    )]
    SecurityChoice { both: bool },
}

/// The three files a node presents and trusts on its TLS links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A station's certificate folder.
#[derive(Debug, Clone)]
pub struct CertDir {
    dir: PathBuf,
}

/// Validity of the CA and default validity of a role certificate.
pub const CA_DAYS: u32 = 3650;
pub const ROLE_DAYS: u32 = 365;

const DAY_S: i64 = 86_400;

impl CertDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    pub fn cert(&self, role: Role) -> PathBuf {
        self.dir.join(format!("{role}.pem"))
    }

    pub fn key(&self, role: Role) -> PathBuf {
        self.dir.join(format!("{role}.key"))
    }

    /// Makes the station's CA. Refuses a folder that already has one.
    pub fn init(&self, station: &str) -> Result<(), CertError> {
        crate::validate_id(station)?;
        if self.ca_key().exists() {
            return Err(CertError::CaExists(self.ca_key()));
        }
        fs::create_dir_all(&self.dir).map_err(|source| CertError::Io {
            path: self.dir.clone(),
            what: "cannot create the certificate folder",
            source,
        })?;
        let key = KeyPair::generate().map_err(rc("generating the CA key"))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("gate station CA {station}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, station);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, -1, i64::from(CA_DAYS));
        let cert = params
            .self_signed(&key)
            .map_err(rc("signing the CA certificate"))?;
        write_secret(&self.ca_key(), &key.serialize_pem())?;
        write_public(&self.ca(), &cert.pem())
    }

    /// Issues (or re-issues: rotation) the certificate of `role`, valid for `days` from today.
    pub fn issue(&self, role: Role, days: u32) -> Result<(), CertError> {
        self.issue_for(role, days, &[])
    }

    /// As `issue`, also naming `hosts` (DNS names or IP addresses) for HTTPS clients that check the
    /// server's name: enrold's API (`curl --cacert ca.pem https://HOST:8440`).
    pub fn issue_for(&self, role: Role, days: u32, hosts: &[String]) -> Result<(), CertError> {
        if !(1..=3650).contains(&days) {
            return Err(CertError::Validity { days });
        }
        self.issue_with(role, -1, i64::from(days), hosts)
    }

    /// Issues a certificate valid from `from_days` to `to_days` around today (negative: in the
    /// past). Tests use it for expired and not-yet-valid certificates.
    pub fn issue_between(&self, role: Role, from_days: i64, to_days: i64) -> Result<(), CertError> {
        self.issue_with(role, from_days, to_days, &[])
    }

    fn issue_with(
        &self,
        role: Role,
        from_days: i64,
        to_days: i64,
        hosts: &[String],
    ) -> Result<(), CertError> {
        let ca_pem = read(&self.ca())?;
        let ca_key = KeyPair::from_pem(&read(&self.ca_key())?).map_err(rc("reading ca.key"))?;
        // The first certificate of ca.pem is this folder's own CA; others are trusted, not used.
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(rc("reading ca.pem"))?;
        let key = KeyPair::generate().map_err(rc("generating a key"))?;
        let names: Vec<String> = std::iter::once(role.name().to_owned())
            .chain(hosts.iter().cloned())
            .collect();
        let mut params = CertificateParams::new(names).map_err(rc("certificate parameters"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, role.name());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Every node both listens and dials, so each certificate serves both ends of a link.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        validity(&mut params, from_days, to_days);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(rc("signing the certificate"))?;
        write_secret(&self.key(role), &key.serialize_pem())?;
        write_public(&self.cert(role), &cert.pem())
    }

    /// A folder with a CA and every role's certificate, made where missing (the demo and a
    /// single-box station's setup); what exists is kept.
    pub fn ensure_all(&self, station: &str) -> Result<(), CertError> {
        if !self.ca_key().exists() && !self.ca().exists() {
            self.init(station)?;
        }
        for role in Role::ALL {
            if !self.cert(role).exists() || !self.key(role).exists() {
                self.issue(role, ROLE_DAYS)?;
            }
        }
        Ok(())
    }

    /// Re-issues every role certificate present in the folder; returns the roles renewed.
    pub fn rotate(&self, days: u32) -> Result<Vec<Role>, CertError> {
        let mut done = Vec::new();
        for role in Role::ALL {
            if self.cert(role).exists() {
                // The renewed certificate names the same hosts as the one it replaces.
                let hosts: Vec<String> = names(&self.cert(role))?
                    .into_iter()
                    .filter(|n| n != role.name())
                    .collect();
                self.issue_for(role, days, &hosts)?;
                done.push(role);
            }
        }
        Ok(done)
    }

    /// The files `role` needs on its links, checked to exist, with its key private.
    pub fn tls(&self, role: Role) -> Result<TlsFiles, CertError> {
        let files = TlsFiles {
            ca: self.ca(),
            cert: self.cert(role),
            key: self.key(role),
        };
        for p in [&files.ca, &files.cert, &files.key] {
            if !p.is_file() {
                return Err(CertError::Missing(p.clone()));
            }
        }
        let mode = fs::metadata(&files.key)
            .map_err(|source| CertError::Io {
                path: files.key.clone(),
                what: "cannot read",
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CertError::KeyExposed {
                path: files.key.clone(),
                mode: mode & 0o777,
            });
        }
        Ok(files)
    }
}

/// When the first certificate in `path` expires, in seconds since the Unix epoch: gated exports it
/// (`gate_bus_certificate_expiry_timestamp_seconds`) so that a certificate is renewed before the
/// node it identifies falls off the bus.
pub fn expiry_unix_s(path: &Path) -> Result<i64, CertError> {
    with_cert(path, |cert| Ok(cert.validity().not_after.timestamp()))
}

/// Reads the first certificate of the PEM file `path` and hands it to `f`.
fn with_cert<T>(
    path: &Path,
    f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> Result<T, String>,
) -> Result<T, CertError> {
    let pem = fs::read(path).map_err(|source| CertError::Io {
        path: path.to_owned(),
        what: "cannot read",
        source,
    })?;
    let bad = |reason: String| CertError::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    f(&cert).map_err(bad)
}

/// The DNS names and IP addresses the first certificate in `path` is issued for.
fn names(path: &Path) -> Result<Vec<String>, CertError> {
    use x509_parser::extensions::GeneralName;
    let ip = |b: &[u8]| match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(std::net::IpAddr::from),
        _ => None,
    };
    with_cert(path, |cert| {
        let Some(san) = cert.subject_alternative_name().map_err(|e| e.to_string())? else {
            return Ok(Vec::new());
        };
        Ok(san
            .value
            .general_names
            .iter()
            .filter_map(|g| match g {
                GeneralName::DNSName(d) => Some((*d).to_owned()),
                GeneralName::IPAddress(b) => ip(b).map(|a| a.to_string()),
                _ => None,
            })
            .collect())
    })
}

fn rc(what: &'static str) -> impl FnOnce(rcgen::Error) -> CertError {
    move |source| CertError::Rcgen {
        what: what.to_owned(),
        source,
    }
}

/// Sets the validity to whole days around now (UTC midnights).
fn validity(params: &mut CertificateParams, from_days: i64, to_days: i64) {
    use chrono::Datelike;
    let today = crate::unix_ms() as i64 / 1000 / DAY_S;
    // rcgen takes a calendar date; day counts this close to today are always in chrono's range.
    let midnight = |days: i64| {
        let date = chrono::DateTime::from_timestamp(days * DAY_S, 0)
            .unwrap_or_default()
            .date_naive();
        rcgen::date_time_ymd(date.year(), date.month() as u8, date.day() as u8)
    };
    params.not_before = midnight(today + from_days);
    params.not_after = midnight(today + to_days);
}

fn read(path: &Path) -> Result<String, CertError> {
    if !path.is_file() {
        return Err(CertError::Missing(path.to_owned()));
    }
    fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_owned(),
        what: "cannot read",
        source,
    })
}

/// Writes through a temporary file and a rename, so a crash never leaves half a key.
fn write_with_mode(path: &Path, text: &str, mode: u32) -> Result<(), CertError> {
    let tmp = path.with_extension("tmp");
    let io = |what| {
        let p = path.to_owned();
        move |source| CertError::Io {
            path: p,
            what,
            source,
        }
    };
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("cannot create"))?;
    f.write_all(text.as_bytes()).map_err(io("cannot write"))?;
    f.sync_all().map_err(io("cannot sync"))?;
    fs::rename(&tmp, path).map_err(io("cannot replace"))
}

fn write_secret(path: &Path, text: &str) -> Result<(), CertError> {
    write_with_mode(path, text, 0o600)
}

fn write_public(path: &Path, text: &str) -> Result<(), CertError> {
    write_with_mode(path, text, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_issue_and_check() {
        let d = tempfile::tempdir().unwrap();
        let c = CertDir::new(d.path().join("certs"));
        c.init("s1").unwrap();
        assert!(matches!(c.init("s1"), Err(CertError::CaExists(_))));
        assert!(matches!(c.tls(Role::Gated), Err(CertError::Missing(_))));
        c.issue(Role::Gated, 30).unwrap();
        let f = c.tls(Role::Gated).unwrap();
        let mode = fs::metadata(&f.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            fs::metadata(c.ca_key()).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&f.key, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            c.tls(Role::Gated),
            Err(CertError::KeyExposed { .. })
        ));
        // Valid until midnight (UTC) 30 days from today.
        let today = crate::unix_ms() as i64 / 1000 / DAY_S;
        assert_eq!(
            expiry_unix_s(&c.cert(Role::Gated)).unwrap(),
            (today + 30) * DAY_S
        );
        assert!(
            expiry_unix_s(&c.ca_key()).is_err(),
            "a key is not a certificate"
        );
        c.issue_for(
            Role::Enrold,
            30,
            &["127.0.0.1".into(), "enrol.example".into()],
        )
        .unwrap();
        assert_eq!(c.rotate(30).unwrap(), vec![Role::Gated, Role::Enrold]);
        assert_eq!(
            names(&c.cert(Role::Enrold)).unwrap(),
            ["enrold", "127.0.0.1", "enrol.example"],
            "rotation keeps the hosts"
        );
        assert!(c.tls(Role::Gated).is_ok(), "rotation rewrites the key 0600");
        assert!(matches!(
            c.issue(Role::Gated, 0),
            Err(CertError::Validity { .. })
        ));
        assert!("janitor".parse::<Role>().is_err());
        assert_eq!("door-driver".parse::<Role>().unwrap(), Role::DoorDriver);
    }
}
