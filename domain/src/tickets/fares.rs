//! The fare table: station → zone, fare by zone distance, and where the service day starts.
//!
//! ```toml
//! service_day_start = "04:00"       # optional; rides before this belong to the previous day
//! fares = [150, 190, 230, 270]      # fares[d] = fare for a zone distance of d, smallest unit
//!
//! [stations]
//! umeda = 1
//! noda = 2
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};
use serde::Deserialize;

use super::Amount;
use crate::ids::StationId;

/// A fare zone number.
pub type Zone = u8;

#[derive(Debug, thiserror::Error)]
pub enum FareTableError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax, a missing key, an unknown key or a wrong type; toml's message names the key and line.
    #[error("{origin}: {source}")]
    Parse {
        origin: String,
        #[source]
        source: toml::de::Error,
    },
    /// The TOML parsed but a value is invalid; `key` is its dotted path (`fares[2]`, `stations.umeda`).
    #[error("{origin}: {key}: {reason}")]
    Invalid {
        origin: String,
        key: String,
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    service_day_start: Option<String>,
    fares: Vec<i64>,
    stations: BTreeMap<String, i64>,
}

/// A validated fare table: every pair of its stations has a fare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FareTable {
    stations: BTreeMap<StationId, Zone>,
    fares: Vec<Amount>,
    service_day_start: NaiveTime,
}

/// Rail operators end the service day after the last train, not at midnight.
const DEFAULT_SERVICE_DAY_START: NaiveTime = match NaiveTime::from_hms_opt(4, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

impl FareTable {
    /// Reads and validates a fare table file; errors name the file.
    pub fn load(path: &Path) -> Result<Self, FareTableError> {
        let text = std::fs::read_to_string(path).map_err(|source| FareTableError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates; `origin` names the source in errors (a file name, "config").
    pub fn parse(text: &str, origin: &str) -> Result<Self, FareTableError> {
        let raw: RawTable = toml::from_str(text).map_err(|source| FareTableError::Parse {
            origin: origin.to_string(),
            source,
        })?;
        let invalid = |key: String, reason: String| FareTableError::Invalid {
            origin: origin.to_string(),
            key,
            reason,
        };

        let service_day_start = match raw.service_day_start.as_deref() {
            None => DEFAULT_SERVICE_DAY_START,
            Some(s) => NaiveTime::parse_from_str(s, "%H:%M")
                .ok()
                .filter(|t| *t < NaiveTime::from_hms_opt(12, 0, 0).unwrap_or(NaiveTime::MIN))
                .ok_or_else(|| {
                    invalid(
                        "service_day_start".into(),
                        format!("{s:?} is not a time \"HH:MM\" before 12:00"),
                    )
                })?,
        };

        if raw.fares.is_empty() {
            return Err(invalid("fares".into(), "needs at least one fare".into()));
        }
        let mut fares = Vec::with_capacity(raw.fares.len());
        for (i, &f) in raw.fares.iter().enumerate() {
            let key = format!("fares[{i}]");
            let fare = Amount::try_from(f).ok().filter(|&f| f > 0).ok_or_else(|| {
                invalid(
                    key.clone(),
                    format!("{f} is not a fare in 1..={}", Amount::MAX),
                )
            })?;
            // A longer ride never costs less; the pass difference rule relies on it (docs/tickets.md).
            if let Some(&prev) = fares.last()
                && fare < prev
            {
                return Err(invalid(
                    key,
                    format!("{fare} is less than the fare before it ({prev})"),
                ));
            }
            fares.push(fare);
        }

        let mut stations = BTreeMap::new();
        for (name, &zone) in &raw.stations {
            let key = format!("stations.{name}");
            let id =
                StationId::new(name.clone()).map_err(|e| invalid(key.clone(), e.to_string()))?;
            let zone = Zone::try_from(zone).map_err(|_| {
                invalid(
                    key.clone(),
                    format!("zone {zone} is not in 0..={}", Zone::MAX),
                )
            })?;
            stations.insert(id, zone);
        }

        // Every pair of stations must have a fare, so the rules never meet a missing one.
        let Some((far, &hi)) = stations.iter().max_by_key(|(_, z)| **z) else {
            return Err(invalid(
                "stations".into(),
                "needs at least one station".into(),
            ));
        };
        let lo = stations.values().copied().min().unwrap_or(hi);
        let spread = usize::from(hi - lo);
        if spread >= fares.len() {
            return Err(invalid(
                format!("stations.{far}"),
                format!(
                    "zone {hi} is {spread} zones from zone {lo}, but `fares` has fares only up to a \
                     distance of {}",
                    fares.len() - 1
                ),
            ));
        }

        Ok(Self {
            stations,
            fares,
            service_day_start,
        })
    }

    pub fn zone(&self, station: &StationId) -> Option<Zone> {
        self.stations.get(station).copied()
    }

    pub fn stations(&self) -> impl Iterator<Item = (&StationId, Zone)> {
        self.stations.iter().map(|(s, z)| (s, *z))
    }

    /// The fare for a zone distance, `None` beyond the table.
    pub fn fare_for_distance(&self, distance: u8) -> Option<Amount> {
        self.fares.get(usize::from(distance)).copied()
    }

    /// The highest fare in the table (the longest ride).
    pub fn max_fare(&self) -> Amount {
        self.fares.last().copied().unwrap_or(0)
    }

    /// Fare between two stations; `None` if either is unknown.
    pub fn fare(&self, from: &StationId, to: &StationId) -> Option<Amount> {
        let d = self.zone(from)?.abs_diff(self.zone(to)?);
        self.fare_for_distance(d)
    }

    pub fn service_day_start(&self) -> NaiveTime {
        self.service_day_start
    }

    /// The service day a local time belongs to: before `service_day_start` it is still the previous day.
    pub fn service_day(&self, at: NaiveDateTime) -> NaiveDate {
        if at.time() < self.service_day_start {
            (at - Duration::days(1)).date()
        } else {
            at.date()
        }
    }
}
