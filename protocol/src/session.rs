//! zenoh session settings of every process (gated, the drivers, `gated ctl`, enrold's distribution):
//! peer mode, multicast scouting off, explicit endpoints. Stations run on closed networks where
//! multicast discovery is either unavailable or a way for a stray device to join the bus.

use crate::ProtocolError;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZenohEndpoints {
    /// Where this process accepts connections, e.g. `tcp/127.0.0.1:7447`.
    pub listen: Vec<String>,
    /// Peers this process dials (and keeps re-dialling while they are down).
    pub connect: Vec<String>,
}

pub fn zenoh_config(ep: &ZenohEndpoints) -> Result<zenoh::Config, ProtocolError> {
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
    Ok(c)
}
