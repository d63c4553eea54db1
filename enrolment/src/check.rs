//! One enrolment request's photos → one template, or the reasons it was refused.
//!
//! Per photo: bounded decode → detect → exactly one (significant) face → chip → quality measures →
//! SFace embedding. Across photos: every pair must be the same person. The photos' bytes and pixels
//! are dropped (pixels zeroized) as soon as a photo's embedding exists; only the template leaves.

use engine::face::prepare::{self, cosine};
use engine::face::quality::{self, Measures};
use engine::face::{Chip, FaceChain, FaceError};
use zeroize::Zeroizing;

use crate::photo::{self, DecodeLimits, PhotoError};
use crate::quality::{self as judgement, QualityConfig, Reason, Rejection};
use domain::seal::{TEMPLATE_DIM, Template};

/// One accepted photo: its embedding and what was measured.
pub struct Accepted {
    pub embedding: Zeroizing<Template>,
    pub measures: Measures,
}

fn reject(code: Reason, photo: usize, message: String) -> Rejection {
    Rejection {
        code,
        photo: Some(photo),
        message,
    }
}

fn photo_rejection(index: usize, e: &PhotoError) -> Rejection {
    let code = match e {
        PhotoError::UnsupportedFormat => Reason::UnsupportedFormat,
        PhotoError::Truncated { .. } => Reason::Truncated,
        PhotoError::TooManyPixels { .. } => Reason::TooManyPixels,
        PhotoError::Corrupt { .. } => Reason::CorruptImage,
    };
    reject(code, index, e.to_string())
}

/// Analyses photo `index`. `Ok(Err(_))` is a quality refusal; `Err(_)` a failure of the models.
pub fn analyse_photo(
    pipe: &FaceChain,
    index: usize,
    bytes: &[u8],
    limits: DecodeLimits,
    q: &QualityConfig,
) -> Result<Result<Accepted, Rejection>, FaceError> {
    let img = match photo::decode(bytes, limits) {
        Ok(img) => img,
        Err(e) => return Ok(Err(photo_rejection(index, &e))),
    };
    let faces = pipe.detect(img.view())?;
    let Some(main) = faces.first() else {
        return Ok(Err(reject(
            Reason::NoFace,
            index,
            "no face was found in the photo".into(),
        )));
    };
    let main_eyes = main.eye_distance();
    let others = faces
        .iter()
        .skip(1)
        .filter(|f| f.eye_distance() >= q.other_face_min_ratio * main_eyes)
        .count();
    if others > 0 {
        return Ok(Err(reject(
            Reason::MultipleFaces,
            index,
            format!(
                "{} faces were found; the photo must show only the person enrolling",
                others + 1
            ),
        )));
    }
    let chip = Chip::of_face(img.view(), main)?;
    drop(img);
    let measures = quality::measure(main, &chip);
    tracing::debug!(photo = index, ?measures, "photo measured");
    if let Err((code, message)) = judgement::judge(&measures, q) {
        return Ok(Err(reject(code, index, message)));
    }
    let embedding = pipe.embed_one(&chip)?;
    Ok(Ok(Accepted {
        embedding,
        measures,
    }))
}

/// The template of accepted photos, after checking every pair is the same person.
pub fn template_of(
    accepted: &[Accepted],
    q: &QualityConfig,
) -> Result<Zeroizing<Template>, Rejection> {
    for i in 0..accepted.len() {
        for j in i + 1..accepted.len() {
            let s = cosine(
                accepted[i].embedding.as_ref(),
                accepted[j].embedding.as_ref(),
            );
            if s < q.same_person_cosine {
                return Err(Rejection {
                    code: Reason::DifferentPeople,
                    photo: Some(j),
                    message: format!(
                        "photos {i} and {j} do not show the same person (similarity {s:.2}, at least {:.2} needed)",
                        q.same_person_cosine
                    ),
                });
            }
        }
    }
    let embeddings: Vec<Zeroizing<Template>> = accepted
        .iter()
        .map(|a| Zeroizing::new(*a.embedding))
        .collect();
    Ok(mean_template(&embeddings))
}

/// The template of several embeddings: their mean, L2-normalised.
pub fn mean_template(embeddings: &[Zeroizing<Template>]) -> Zeroizing<Template> {
    let mut sum = Zeroizing::new([0f32; TEMPLATE_DIM]);
    for e in embeddings {
        for (s, v) in sum.iter_mut().zip(e.iter()) {
            *s += v;
        }
    }
    let mut out = Zeroizing::new([0f32; TEMPLATE_DIM]);
    prepare::l2_normalise_into(sum.as_ref(), out.as_mut());
    out
}
