//! Identifiers shared by the ticket rules and the template seal.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("station id {0:?} must match [A-Za-z0-9_-]{{1,64}}")]
    Station(String),
    #[error("subject id must be 32 hex digits, got {len} characters")]
    Subject { len: usize },
}

/// A station id, e.g. `umeda-01`.
///
/// Same alphabet as the zenoh protocol (`docs/protocol.md`) so an id from a ticket or a fare table can be
/// put into a key expression without ever injecting a wildcard or a separator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[A-Za-z0-9_-]{1,64}$"))]
#[serde(try_from = "String", into = "String")]
pub struct StationId(String);

impl StationId {
    pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        let ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(id))
        } else {
            Err(IdError::Station(id))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StationId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl From<StationId> for String {
    fn from(s: StationId) -> String {
        s.0
    }
}

impl fmt::Display for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Pseudonymous subject id: 16 random bytes, written as 32 lowercase hex digits.
///
/// Random rather than derived from a name, card number or the face, so the id alone links to nobody;
/// only the centre's subject table maps it to an account, and erasure deletes that row.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-fA-F]{32}$"))]
#[serde(try_from = "String", into = "String")]
pub struct SubjectId([u8; 16]);

impl SubjectId {
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// A fresh random id from the OS generator.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b)?;
        Ok(Self(b))
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let mut out = [0u8; 16];
        if crate::hex::decode_into(s, &mut out) {
            Ok(Self(out))
        } else {
            Err(IdError::Subject { len: s.len() })
        }
    }
}

impl TryFrom<String> for SubjectId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<SubjectId> for String {
    fn from(s: SubjectId) -> String {
        s.to_string()
    }
}

impl fmt::Display for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn station_ids() {
        assert!(StationId::new("umeda-01").is_ok());
        assert!(StationId::new("A_b-9").is_ok());
        for bad in ["", "a/b", "a*", "a b", "é", &"x".repeat(65)] {
            assert!(StationId::new(bad).is_err(), "{bad:?}");
        }
        assert!(StationId::new("x".repeat(64)).is_ok());
    }

    #[test]
    fn subject_id_hex_round_trip() {
        let id = SubjectId::from_bytes([0xab; 16]);
        let s = id.to_string();
        assert_eq!(s, "ab".repeat(16));
        assert_eq!(SubjectId::parse(&s), Ok(id));
        assert_eq!(SubjectId::parse(&s.to_uppercase()), Ok(id));
        assert!(SubjectId::parse("abc").is_err());
        assert!(SubjectId::parse(&"zz".repeat(16)).is_err());
        assert_ne!(SubjectId::random().unwrap(), SubjectId::random().unwrap());
    }

    #[test]
    fn ids_serialise_as_strings() {
        #[derive(Serialize, Deserialize)]
        struct W {
            id: SubjectId,
            station: StationId,
        }
        let w = W {
            id: SubjectId::from_bytes([1; 16]),
            station: StationId::new("noda").unwrap(),
        };
        let text = toml::to_string(&w).unwrap();
        assert!(text.contains(&"01".repeat(16)), "{text}");
        let back: W = toml::from_str(&text).unwrap();
        assert_eq!(back.id, w.id);
        assert_eq!(back.station, w.station);
        assert!(toml::from_str::<W>("id = \"00\"\nstation = \"noda\"").is_err());
        let bad = format!("id = \"{}\"\nstation = \"a/b\"", "00".repeat(16));
        assert!(toml::from_str::<W>(&bad).is_err());
    }
}
