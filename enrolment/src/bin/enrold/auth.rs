//! Bearer tokens of the app back-ends, and the per-client token-bucket rate limiter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::config::{AuthConfig, RateConfig};

/// The authenticated client, put into the request's extensions.
#[derive(Debug, Clone)]
pub struct Client(pub String);

/// Known tokens, kept only as SHA-256 digests: comparing digests in constant time hides both the
/// token's bytes and its length.
pub struct Tokens {
    clients: Vec<(String, [u8; 32])>,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

const MIN_TOKEN_LEN: usize = 16;

impl Tokens {
    pub fn load(cfg: &AuthConfig) -> Result<Self> {
        let mut clients = Vec::new();
        if let Some(path) = &cfg.token_file {
            let text = Zeroizing::new(read_private(path)?);
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (Some(name), Some(token), None) = (parts.next(), parts.next(), parts.next())
                else {
                    bail!(
                        "{} line {}: expected `client-name token`",
                        path.display(),
                        n + 1
                    );
                };
                if token.len() < MIN_TOKEN_LEN {
                    bail!(
                        "{} line {}: token shorter than {MIN_TOKEN_LEN} characters",
                        path.display(),
                        n + 1
                    );
                }
                clients.push((name.to_string(), digest(token.as_bytes())));
            }
        } else if let Some(var) = &cfg.token_env {
            let token = Zeroizing::new(
                std::env::var(var).with_context(|| format!("environment variable {var}"))?,
            );
            if token.trim().len() < MIN_TOKEN_LEN {
                bail!("environment variable {var}: token shorter than {MIN_TOKEN_LEN} characters");
            }
            clients.push(("app".into(), digest(token.trim().as_bytes())));
        }
        if clients.is_empty() {
            bail!("auth: no token configured");
        }
        Ok(Self { clients })
    }

    /// The client whose token this is. Every configured token is compared (no early exit).
    pub fn check(&self, presented: &[u8]) -> Option<Client> {
        let d = digest(presented);
        let mut found = None;
        for (name, want) in &self.clients {
            if bool::from(want.ct_eq(&d)) {
                found = Some(name);
            }
        }
        found.map(|n| Client(n.clone()))
    }
}

/// Reads a secret file that group and others cannot access (mode checked on the open handle).
fn read_private(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let meta = f.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            bail!(
                "{}: mode {mode:04o} gives group or others access; `chmod 600` it",
                path.display()
            );
        }
    }
    if meta.len() > 1 << 20 {
        bail!("{}: larger than 1 MiB", path.display());
    }
    let mut s = String::new();
    f.read_to_string(&mut s)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(s)
}

/// Who a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Client(String),
    FailedAuth(IpAddr),
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets: `burst` capacity, refilled at `per_minute / 60` per second.
pub struct RateLimiter {
    cfg: RateConfig,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    pub fn new(cfg: RateConfig) -> Self {
        Self {
            cfg,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token; `Err(seconds)` (to put in Retry-After) when the bucket is empty.
    pub fn take(&self, key: Key) -> Result<(), u64> {
        let (rate, burst) = match key {
            Key::Client(_) => (self.cfg.per_minute / 60.0, self.cfg.burst),
            Key::FailedAuth(_) => (
                self.cfg.failed_auth_per_minute / 60.0,
                self.cfg.failed_auth_per_minute.clamp(1.0, self.cfg.burst),
            ),
        };
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(1);
        };
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&key) {
            // Forget buckets that have refilled: they hold no state worth keeping.
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}
