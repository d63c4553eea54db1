//! Bearer tokens of the app back-ends, and the per-client and per-peer rate limits.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use enrolment::config::{AuthConfig, RateConfig};

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
            let text = Zeroizing::new(protocol::private_file::read(path)?);
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

/// Who a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Client(String),
    FailedAuth(IpAddr),
}

/// Rate limits per client token and per peer that failed authentication: `burst` requests at once,
/// then `per_minute` (GCRA, the `governor` crate; a failing peer's burst is at most its per-minute
/// rate).
pub struct RateLimiter {
    clients: DefaultKeyedRateLimiter<String>,
    failed: DefaultKeyedRateLimiter<IpAddr>,
}

/// Beyond this many keys, the ones whose allowance has refilled are forgotten (they hold no state
/// worth keeping), so a flood of peers cannot grow the tables without bound.
const MAX_KEYS: usize = 10_000;

impl RateLimiter {
    pub fn new(cfg: &RateConfig) -> anyhow::Result<Self> {
        Ok(Self {
            clients: governor::RateLimiter::keyed(quota(cfg.per_minute, cfg.burst)?),
            failed: governor::RateLimiter::keyed(quota(
                cfg.failed_auth_per_minute,
                cfg.failed_auth_per_minute.clamp(1.0, cfg.burst),
            )?),
        })
    }

    /// Takes one request's allowance; `Err(seconds)` (to put in Retry-After) when there is none.
    pub fn take(&self, key: Key) -> Result<(), u64> {
        let checked = match &key {
            Key::Client(c) => {
                if self.clients.len() >= MAX_KEYS {
                    self.clients.retain_recent();
                }
                self.clients.check_key(c)
            }
            Key::FailedAuth(ip) => {
                if self.failed.len() >= MAX_KEYS {
                    self.failed.retain_recent();
                }
                self.failed.check_key(ip)
            }
        };
        checked.map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }
}

/// `per_minute` requests a minute after a burst of `burst` (both checked positive and finite by
/// the config).
fn quota(per_minute: f64, burst: f64) -> anyhow::Result<Quota> {
    let period = Duration::try_from_secs_f64(60.0 / per_minute)
        .map_err(|e| anyhow::anyhow!("rate: {per_minute} per minute: {e}"))?;
    let burst = NonZeroU32::new(burst.floor().clamp(1.0, f64::from(u32::MAX)) as u32)
        .ok_or_else(|| anyhow::anyhow!("rate: burst {burst}"))?;
    Ok(Quota::with_period(period)
        .ok_or_else(|| anyhow::anyhow!("rate: {per_minute} per minute is too fast"))?
        .allow_burst(burst))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_burst_then_refusals_with_retry_after_each_key_on_its_own() {
        let r = RateLimiter::new(&RateConfig {
            per_minute: 6.0,
            burst: 3.0,
            failed_auth_per_minute: 2.0,
        })
        .unwrap();
        let a = || Key::Client("a".into());
        for _ in 0..3 {
            assert_eq!(r.take(a()), Ok(()));
        }
        // 6 a minute: the next allowance is 10 s away.
        let wait = r.take(a()).unwrap_err();
        assert!((1..=10).contains(&wait), "{wait}");
        assert_eq!(r.take(Key::Client("b".into())), Ok(()));
        let peer = || Key::FailedAuth(IpAddr::from([192, 0, 2, 1]));
        assert_eq!(r.take(peer()), Ok(()));
        assert_eq!(r.take(peer()), Ok(()));
        assert!(
            r.take(peer()).is_err(),
            "a failing peer's burst is its per-minute rate"
        );
    }
}
