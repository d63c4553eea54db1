//! Centre → station key wrap: only the station a data key is addressed to can open it.
//!
//! Each station generates its own X25519 key pair; the secret never leaves the station and the centre
//! holds only public keys (registered out of band, checked by fingerprint). Asymmetric rather than a
//! symmetric key per station because then the centre's database holds nothing that opens what stations
//! hold, and a stolen station key opens only that station's wraps.
//!
//! The wrap authenticates the centre too (like HPKE's auth mode): the KEK comes from two key exchanges,
//! ephemeral × station and centre static × station, so a party that merely knows the station's public
//! key cannot forge a data key the station would accept.
//!
//! KEK = HKDF-SHA256(salt: none, ikm: DH(e, S) ‖ DH(C, S),
//!                   info: "gate-station-wrap-v1" ‖ e_pub ‖ S_pub ‖ C_pub)

use std::fmt;
use std::path::Path;

use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

use super::keys::{hex_of, write_secret_file};
use super::{
    DataKey, HEADER_LEN, KEY_LEN, KeyId, NONCE_LEN, SealError, TAG_LEN, check_blob, header,
    open_at, random, read_key_file, seal_into,
};
use crate::ids::{StationId, SubjectId};

const KIND_STATION: u8 = b'S';
const PREFIX_LEN: usize = HEADER_LEN + KEY_LEN;
const STATION_WRAP_LEN: usize = PREFIX_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;
const INFO_LABEL: &[u8] = b"gate-station-wrap-v1";
const UPLINK_LABEL: &[u8] = b"gate-station-uplink-v1";

/// A station's secret key. Zeroized on drop (by x25519-dalek).
pub struct StationSecretKey {
    id: KeyId,
    secret: StaticSecret,
}

/// What the centre registers for a station: the key id and the X25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StationPublicKey {
    pub id: KeyId,
    pub key: [u8; 32],
}

/// The centre's static secret, used only to authenticate station wraps. Zeroized on drop.
pub struct CentreSecretKey(StaticSecret);

/// The centre's public key, pinned on every station.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CentrePublicKey(pub [u8; 32]);

impl StationSecretKey {
    pub fn generate(id: KeyId) -> Result<Self, SealError> {
        Ok(Self::from_bytes(id, *random::<KEY_LEN>()?))
    }

    pub fn from_bytes(id: KeyId, bytes: [u8; KEY_LEN]) -> Self {
        Self {
            id,
            secret: StaticSecret::from(bytes),
        }
    }

    /// Same key file rules as the master key (0600, 32 raw bytes or 64 hex digits).
    pub fn load_file(id: KeyId, path: &Path) -> Result<Self, SealError> {
        Ok(Self::from_bytes(id, *read_key_file(path)?))
    }

    /// Writes the secret to a new 0600 key file (on the station, at provisioning).
    pub fn write_file(&self, path: &Path) -> Result<(), SealError> {
        write_secret_file(path, &hex_of(self.secret.as_bytes()))
    }

    pub fn public_key(&self) -> StationPublicKey {
        StationPublicKey {
            id: self.id,
            key: PublicKey::from(&self.secret).to_bytes(),
        }
    }
}

impl fmt::Debug for StationSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StationSecretKey {{ id: {}, .. }}", self.id)
    }
}

impl CentreSecretKey {
    pub fn generate() -> Result<Self, SealError> {
        Ok(Self::from_bytes(*random::<KEY_LEN>()?))
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(StaticSecret::from(bytes))
    }

    pub fn load_file(path: &Path) -> Result<Self, SealError> {
        Ok(Self::from_bytes(*read_key_file(path)?))
    }

    pub fn write_file(&self, path: &Path) -> Result<(), SealError> {
        write_secret_file(path, &hex_of(self.0.as_bytes()))
    }

    pub fn public_key(&self) -> CentrePublicKey {
        CentrePublicKey(PublicKey::from(&self.0).to_bytes())
    }
}

impl fmt::Debug for CentreSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CentreSecretKey(..)")
    }
}

/// A data key wrapped for one station (kind `S`, 110 bytes; format in the module docs of `seal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationWrappedKey(Vec<u8>);

impl StationWrappedKey {
    pub const LEN: usize = STATION_WRAP_LEN;

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SealError> {
        check_blob(
            "station-wrapped key",
            &bytes,
            KIND_STATION,
            STATION_WRAP_LEN,
        )?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The id of the station key it is addressed to.
    pub fn station_key_id(&self) -> KeyId {
        KeyId(
            check_blob(
                "station-wrapped key",
                &self.0,
                KIND_STATION,
                STATION_WRAP_LEN,
            )
            .unwrap_or(0),
        )
    }
}

fn kek(
    dh_e: &SharedSecret,
    dh_s: &SharedSecret,
    e_pub: &[u8; 32],
    station_pub: &[u8; 32],
    centre_pub: &[u8; 32],
) -> Result<Zeroizing<[u8; KEY_LEN]>, SealError> {
    // A low-order public key makes the shared secret all zeros, known to everybody.
    if !dh_e.was_contributory() || !dh_s.was_contributory() {
        return Err(SealError::WeakKey);
    }
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(dh_e.as_bytes());
    ikm[32..].copy_from_slice(dh_s.as_bytes());
    let mut info = Vec::with_capacity(INFO_LABEL.len() + 96);
    info.extend_from_slice(INFO_LABEL);
    info.extend_from_slice(e_pub);
    info.extend_from_slice(station_pub);
    info.extend_from_slice(centre_pub);
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(None, ikm.as_ref())
        .expand(&info, okm.as_mut())
        .map_err(|_| SealError::Encrypt {
            what: "station-wrapped key",
        })?;
    Ok(okm)
}

fn ad_suffix(subject: &SubjectId, station_id: &StationId) -> Vec<u8> {
    let mut ad = subject.as_bytes().to_vec();
    ad.extend_from_slice(station_id.as_str().as_bytes());
    ad
}

/// Centre side: wraps a subject's data key for one station. The station id and the subject id are bound
/// as AD, so a wrap replayed under another station's or subject's name does not open.
pub fn wrap_for_station(
    centre: &CentreSecretKey,
    station_id: &StationId,
    station: &StationPublicKey,
    subject: &SubjectId,
    key: &DataKey,
) -> Result<StationWrappedKey, SealError> {
    let ephemeral = StaticSecret::from(*random::<KEY_LEN>()?);
    let e_pub = PublicKey::from(&ephemeral).to_bytes();
    let station_pk = PublicKey::from(station.key);
    let dh_e = ephemeral.diffie_hellman(&station_pk);
    let dh_s = centre.0.diffie_hellman(&station_pk);
    let kek = kek(&dh_e, &dh_s, &e_pub, &station.key, &centre.public_key().0)?;

    let mut out = Vec::with_capacity(STATION_WRAP_LEN);
    out.extend_from_slice(&header(KIND_STATION, station.id.0));
    out.extend_from_slice(&e_pub);
    seal_into(
        "station-wrapped key",
        &kek,
        &mut out,
        &ad_suffix(subject, station_id),
        key.bytes(),
    )?;
    Ok(StationWrappedKey(out))
}

/// Station side: opens a data key wrapped for this station by the centre whose public key is pinned.
pub fn open_from_centre(
    station_key: &StationSecretKey,
    station_id: &StationId,
    centre: &CentrePublicKey,
    subject: &SubjectId,
    wrapped: &StationWrappedKey,
) -> Result<DataKey, SealError> {
    let what = "station-wrapped key";
    let found = KeyId(check_blob(
        what,
        &wrapped.0,
        KIND_STATION,
        STATION_WRAP_LEN,
    )?);
    if found != station_key.id {
        return Err(SealError::KeyId {
            what,
            found,
            expected: station_key.id,
        });
    }
    let e_pub: [u8; 32] = wrapped
        .0
        .get(HEADER_LEN..PREFIX_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or(SealError::Authentication { what })?;
    let dh_e = station_key.secret.diffie_hellman(&PublicKey::from(e_pub));
    let dh_s = station_key
        .secret
        .diffie_hellman(&PublicKey::from(centre.0));
    let station_pub = station_key.public_key().key;
    let kek = kek(&dh_e, &dh_s, &e_pub, &station_pub, &centre.0)?;
    let plain = open_at(
        what,
        &kek,
        &wrapped.0,
        PREFIX_LEN,
        &ad_suffix(subject, station_id),
    )?;
    DataKey::from_plaintext(&plain).ok_or(SealError::Authentication { what })
}

/// The key a station authenticates its reports to the centre with (its passages, `crate::uplink`).
/// Both ends compute it from the static X25519 keys they already hold (station secret × centre
/// public, centre secret × station public), so nothing new is provisioned or registered, and only
/// this station (or the centre) can make a report the centre accepts under this station's name.
///
/// UK = HKDF-SHA256(salt: none, ikm: DH(C, S), info: "gate-station-uplink-v1" ‖ S_pub ‖ C_pub ‖ station id)
pub struct UplinkKey(Zeroizing<[u8; KEY_LEN]>);

impl UplinkKey {
    /// Station side.
    pub fn for_station(
        station_key: &StationSecretKey,
        station_id: &StationId,
        centre: &CentrePublicKey,
    ) -> Result<Self, SealError> {
        let dh = station_key
            .secret
            .diffie_hellman(&PublicKey::from(centre.0));
        uplink_key(&dh, &station_key.public_key().key, &centre.0, station_id)
    }

    /// Centre side, for the station registered with `station`.
    pub fn for_centre(
        centre: &CentreSecretKey,
        station_id: &StationId,
        station: &StationPublicKey,
    ) -> Result<Self, SealError> {
        let dh = centre.0.diffie_hellman(&PublicKey::from(station.key));
        uplink_key(&dh, &station.key, &centre.public_key().0, station_id)
    }

    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for UplinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UplinkKey(..)")
    }
}

fn uplink_key(
    dh: &SharedSecret,
    station_pub: &[u8; 32],
    centre_pub: &[u8; 32],
    station_id: &StationId,
) -> Result<UplinkKey, SealError> {
    if !dh.was_contributory() {
        return Err(SealError::WeakKey);
    }
    let mut info = Vec::with_capacity(UPLINK_LABEL.len() + 64 + station_id.as_str().len());
    info.extend_from_slice(UPLINK_LABEL);
    info.extend_from_slice(station_pub);
    info.extend_from_slice(centre_pub);
    info.extend_from_slice(station_id.as_str().as_bytes());
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(None, dh.as_bytes())
        .expand(&info, okm.as_mut())
        .map_err(|_| SealError::Encrypt { what: "uplink key" })?;
    Ok(UplinkKey(okm))
}
