//! Sealing templates under data keys, wrapping data keys under the master key, and rotation.

use zeroize::Zeroizing;

use super::{
    DataKey, HEADER_LEN, KEY_LEN, KeyId, MasterKey, NONCE_LEN, SealError, TAG_LEN, check_blob,
    header, open_at, seal_into,
};
use crate::ids::SubjectId;

/// Dimensions of a face template (the SFace embedding).
pub const TEMPLATE_DIM: usize = 128;
/// A face template: an L2-normalised embedding.
pub type Template = [f32; TEMPLATE_DIM];

const KIND_TEMPLATE: u8 = b'T';
const KIND_DATA_KEY: u8 = b'K';
const TEMPLATE_BYTES: usize = TEMPLATE_DIM * 4;
const SEALED_LEN: usize = HEADER_LEN + NONCE_LEN + TEMPLATE_BYTES + TAG_LEN;
const WRAPPED_LEN: usize = HEADER_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;

/// A sealed template (kind `T`, 558 bytes; format in the module docs). Structure checked on construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedTemplate(Vec<u8>);

impl SealedTemplate {
    pub const LEN: usize = SEALED_LEN;

    /// Checks length, format version and kind; authenticity is checked by [`open_template`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SealError> {
        check_blob("sealed template", &bytes, KIND_TEMPLATE, SEALED_LEN)?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The template version written in the header (authenticated when opened).
    pub fn template_version(&self) -> u32 {
        check_blob("sealed template", &self.0, KIND_TEMPLATE, SEALED_LEN).unwrap_or(0)
    }
}

/// A data key wrapped under a master key (kind `K`, 78 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey(Vec<u8>);

impl WrappedDataKey {
    pub const LEN: usize = WRAPPED_LEN;

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SealError> {
        check_blob("wrapped data key", &bytes, KIND_DATA_KEY, WRAPPED_LEN)?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The id of the master key it is wrapped under.
    pub fn key_id(&self) -> KeyId {
        KeyId(check_blob("wrapped data key", &self.0, KIND_DATA_KEY, WRAPPED_LEN).unwrap_or(0))
    }
}

/// Seals `template` for `subject`. The template version (the model that produced it) is in the header
/// and authenticated, so a template cannot be relabelled as another model's.
pub fn seal_template(
    key: &DataKey,
    subject: &SubjectId,
    version: u32,
    template: &Template,
) -> Result<SealedTemplate, SealError> {
    if let Some(index) = template.iter().position(|v| !v.is_finite()) {
        return Err(SealError::NotFinite { index });
    }
    let mut plain = Zeroizing::new([0u8; TEMPLATE_BYTES]);
    for (chunk, v) in plain.chunks_exact_mut(4).zip(template) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    let mut out = Vec::with_capacity(SEALED_LEN);
    out.extend_from_slice(&header(KIND_TEMPLATE, version));
    seal_into(
        "sealed template",
        key.bytes(),
        &mut out,
        subject.as_bytes(),
        plain.as_ref(),
    )?;
    Ok(SealedTemplate(out))
}

/// Opens a sealed template; refuses another template version than `expected_version`.
pub fn open_template(
    key: &DataKey,
    subject: &SubjectId,
    expected_version: u32,
    sealed: &SealedTemplate,
) -> Result<Zeroizing<Template>, SealError> {
    let found = check_blob("sealed template", &sealed.0, KIND_TEMPLATE, SEALED_LEN)?;
    if found != expected_version {
        return Err(SealError::TemplateVersion {
            found,
            expected: expected_version,
        });
    }
    let plain = open_at(
        "sealed template",
        key.bytes(),
        &sealed.0,
        HEADER_LEN,
        subject.as_bytes(),
    )?;
    let mut template = Zeroizing::new([0f32; TEMPLATE_DIM]);
    for (v, chunk) in template.iter_mut().zip(plain.chunks_exact(4)) {
        *v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Ok(template)
}

/// Wraps a subject's data key under the master key; the subject id is bound as AD.
pub fn wrap_data_key(
    master: &MasterKey,
    subject: &SubjectId,
    key: &DataKey,
) -> Result<WrappedDataKey, SealError> {
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    out.extend_from_slice(&header(KIND_DATA_KEY, master.id().0));
    seal_into(
        "wrapped data key",
        master.bytes(),
        &mut out,
        subject.as_bytes(),
        key.bytes(),
    )?;
    Ok(WrappedDataKey(out))
}

/// Unwraps a data key; a wrap made under another master key id is refused before any decryption.
pub fn unwrap_data_key(
    master: &MasterKey,
    subject: &SubjectId,
    wrapped: &WrappedDataKey,
) -> Result<DataKey, SealError> {
    let found = KeyId(check_blob(
        "wrapped data key",
        &wrapped.0,
        KIND_DATA_KEY,
        WRAPPED_LEN,
    )?);
    if found != master.id() {
        return Err(SealError::KeyId {
            what: "wrapped data key",
            found,
            expected: master.id(),
        });
    }
    let plain = open_at(
        "wrapped data key",
        master.bytes(),
        &wrapped.0,
        HEADER_LEN,
        subject.as_bytes(),
    )?;
    DataKey::from_plaintext(&plain).ok_or(SealError::Authentication {
        what: "wrapped data key",
    })
}

/// Enrolment in one call: a fresh data key seals the template and is wrapped under the master key.
/// Store both (the wrapped key in a row of its own, so erasure can delete it alone).
pub fn seal_new_subject(
    master: &MasterKey,
    subject: &SubjectId,
    version: u32,
    template: &Template,
) -> Result<(WrappedDataKey, SealedTemplate), SealError> {
    let key = DataKey::generate()?;
    let sealed = seal_template(&key, subject, version, template)?;
    Ok((wrap_data_key(master, subject, &key)?, sealed))
}

/// Unwraps the subject's data key and opens its template.
pub fn open_subject(
    master: &MasterKey,
    subject: &SubjectId,
    expected_version: u32,
    wrapped: &WrappedDataKey,
    sealed: &SealedTemplate,
) -> Result<Zeroizing<Template>, SealError> {
    let key = unwrap_data_key(master, subject, wrapped)?;
    open_template(&key, subject, expected_version, sealed)
}

/// Master key rotation: re-wraps every data key under `new`. Templates are untouched (their data keys do
/// not change), so rotation costs one small AEAD per subject.
///
/// All or nothing: either every key is returned re-wrapped (write them in one transaction, then retire
/// `old`: delete its key file) or an error names the first key that could not be. Keys already under
/// `new` are verified and kept, so an interrupted rotation can simply be run again.
pub fn rotate_master_key<'a>(
    old: &MasterKey,
    new: &MasterKey,
    keys: impl IntoIterator<Item = (SubjectId, &'a WrappedDataKey)>,
) -> Result<Vec<(SubjectId, WrappedDataKey)>, SealError> {
    if old.id() == new.id() {
        return Err(SealError::SameKeyId(new.id()));
    }
    let mut out = Vec::new();
    for (subject, wrapped) in keys {
        if wrapped.key_id() == new.id() {
            unwrap_data_key(new, &subject, wrapped)?;
            out.push((subject, wrapped.clone()));
        } else {
            let key = unwrap_data_key(old, &subject, wrapped)?;
            out.push((subject, wrap_data_key(new, &subject, &key)?));
        }
    }
    Ok(out)
}
