//! Presentation attacks for the footage: a walker holds a picture of an enrolled passenger's face
//! at face height, where their own head would be. The picture is a flat card (paper or a device)
//! carrying the victim's photo with what each species shows a camera: a paper border and halftone
//! for prints, glare for glossy paper, a bezel, reduced gamut, moiré and glare for screens.
//!
//! These are synthetic: they say whether the station reacts to the cues a renderer can draw, not
//! how it fares against real prints and screens (docs/pad.md says which figures come from here).

use anyhow::{Result, bail};
use rand::Rng;
use rand::rngs::StdRng;

use super::source::{Level, Sprite, Surface, Video};

/// The attack species the generator draws (ISO/IEC 30107-3's "species": one kind of artefact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Species {
    /// Inkjet on matte paper: white border, halftone dots, flat contrast.
    MattePrint,
    /// Photo paper: white border, full contrast, a specular band of glare.
    GlossyPrint,
    /// A matte print held bent about the eyes' vertical line (a sheet in one hand): the print's
    /// artefacts, light falling off toward the edges, and some parallax (`Surface::Bent`).
    CurvedPrint,
    /// A phone showing the photo: black bezel, reduced gamut, moiré, glare.
    Phone,
    /// A tablet: thin bezel, reduced gamut, coarser moiré.
    Tablet,
    /// A phone replaying a video of the face: the phone's screen, and the face moving in it.
    PhoneVideo,
    /// A tablet replaying a video of the face.
    TabletVideo,
}

pub const ALL: [Species; 7] = [
    Species::MattePrint,
    Species::GlossyPrint,
    Species::Phone,
    Species::Tablet,
    Species::CurvedPrint,
    Species::PhoneVideo,
    Species::TabletVideo,
];

/// Drawn in turn when `--attack-species` is not given: the four the generator drew before the
/// curved print and the video replays, so a seed's footage (and every figure measured on it) stays
/// as it was; ask for those by name.
pub const DEFAULT: [Species; 4] = [
    Species::MattePrint,
    Species::GlossyPrint,
    Species::Phone,
    Species::Tablet,
];

impl Species {
    pub fn name(self) -> &'static str {
        match self {
            Species::MattePrint => "matte_print",
            Species::GlossyPrint => "glossy_print",
            Species::CurvedPrint => "curved_print",
            Species::PhoneVideo => "phone_video",
            Species::TabletVideo => "tablet_video",
            Species::Phone => "phone",
            Species::Tablet => "tablet",
        }
    }

    pub fn parse(s: &str) -> Result<Species> {
        match ALL.iter().find(|k| k.name() == s) {
            Some(k) => Ok(*k),
            None => {
                let names: Vec<&str> = ALL.iter().map(|k| k.name()).collect();
                bail!("unknown attack species {s:?} (one of {})", names.join(", "))
            }
        }
    }

    fn is_screen(self) -> bool {
        matches!(self.device(), Species::Phone | Species::Tablet)
    }

    /// The device a video replay plays on (its bezel, gamut and moiré).
    fn device(self) -> Species {
        match self {
            Species::PhoneVideo => Species::Phone,
            Species::TabletVideo => Species::Tablet,
            s => s,
        }
    }

    /// Border around the photo, as fractions of the photo's width (sides) and height (top/bottom).
    fn border(self) -> (f32, f32) {
        match self.device() {
            Species::MattePrint | Species::GlossyPrint | Species::CurvedPrint => (0.10, 0.08),
            Species::Phone => (0.05, 0.14),
            _ => (0.04, 0.05),
        }
    }

    fn border_colour(self) -> [f32; 3] {
        if self.is_screen() {
            [18.0, 18.0, 20.0]
        } else {
            [236.0, 234.0, 226.0]
        }
    }
}

/// The card a walker holds: `photo` (the victim's head sprite, whose rectangle is the printed or
/// displayed photo) inside the species' border, with its artefacts, fully opaque. The face box and
/// keypoints move with the photo inside the card.
pub fn picture(photo: &Sprite, species: Species, rng: &mut StdRng) -> Sprite {
    let src = &photo.levels[0];
    let (bx, by) = species.border();
    let (mx, my) = (
        (bx * src.w as f32).round() as usize,
        (by * src.h as f32).round() as usize,
    );
    let (w, h) = (src.w + 2 * mx, src.h + 2 * my);
    let border = species.border_colour();
    // The photo's own background where the head sprite faded out: its mean colour.
    let fill = mean_opaque(src);
    let glare_at = [rng.random_range(0.2..0.8f32), rng.random_range(0.1..0.6f32)];
    let moire = [rng.random_range(0.9..1.3f32), rng.random_range(0.2..0.5f32)];
    // Drawn last, so the other species' random streams (and the footage made with them) stay as
    // they were.
    let surface = match species {
        Species::CurvedPrint => Surface::Bent {
            sag: rng.random_range(0.3..0.8f32),
        },
        _ => Surface::Flat,
    };
    // A recorded head sways a few percent of the photo and turns a few degrees, at walking pace.
    let video = (species != species.device()).then(|| Video {
        screen: [
            mx as f32,
            my as f32,
            (mx + src.w) as f32,
            (my + src.h) as f32,
        ],
        sway: rng.random_range(0.02..0.05f32) * src.w as f32,
        roll: rng.random_range(0.02..0.06f32),
        hz: rng.random_range(0.6..1.2f32),
        phase: rng.random_range(0.0..std::f32::consts::TAU),
    });
    let fold = mx as f32 + (photo.keypoints[0][0] + photo.keypoints[1][0]) / 2.0;
    let mut px = vec![[0.0f32; 4]; w * h];
    for y in 0..h {
        for x in 0..w {
            let inside = x >= mx && x < mx + src.w && y >= my && y < my + src.h;
            let mut rgb = if inside {
                let p = src.px[(y - my) * src.w + (x - mx)];
                // Premultiplied: the photo where the sprite was opaque, its background elsewhere.
                let mut c = [0.0; 3];
                for k in 0..3 {
                    c[k] = p[k] + fill[k] * (1.0 - p[3]);
                }
                let (u, v) = (
                    (x - mx) as f32 / src.w as f32,
                    (y - my) as f32 / src.h as f32,
                );
                effects(species, c, x as f32, y as f32, u, v, glare_at, moire)
            } else {
                border
            };
            if species == Species::CurvedPrint {
                // The paper turns away from the light toward its edges, on either side of the fold
                // (the eyes' vertical line, where `Surface::Bent` bends it).
                let d = (x as f32 - fold) / (w as f32 / 2.0);
                rgb = rgb.map(|c| c * (1.0 - 0.18 * d * d).max(0.5));
            }
            px[y * w + x] = [rgb[0], rgb[1], rgb[2], 1.0];
        }
    }
    let shift = |p: [f32; 2]| [p[0] + mx as f32, p[1] + my as f32];
    let [fx, fy, fw, fh] = photo.face;
    let mut s = Sprite {
        levels: vec![Level { w, h, px }],
        face: [fx + mx as f32, fy + my as f32, fw, fh],
        keypoints: photo.keypoints.map(shift),
        skin: photo.skin,
        surface,
        video,
    };
    s.build_mips();
    s
}

/// One photo pixel as the species shows it. `x`, `y`: card pixels; `u`, `v`: 0–1 over the photo.
#[allow(clippy::too_many_arguments)]
fn effects(
    species: Species,
    c: [f32; 3],
    x: f32,
    y: f32,
    u: f32,
    v: f32,
    glare_at: [f32; 2],
    moire: [f32; 2],
) -> [f32; 3] {
    let luma = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
    let mut out = c;
    let species = species.device();
    match species {
        Species::MattePrint | Species::GlossyPrint | Species::CurvedPrint => {
            let matte = species != Species::GlossyPrint;
            // Ink on paper: the darkest ink is not black, the paper not pure white.
            let (lo, hi) = if matte { (38.0, 226.0) } else { (14.0, 246.0) };
            // Halftone: a dot screen about 4 sprite pixels apart, stronger in the mid-tones.
            let dots = ((x * 0.8).sin() * (y * 0.8).sin()).abs();
            let mid = 1.0 - ((luma / 255.0) * 2.0 - 1.0).abs();
            let screen = if matte { 0.22 } else { 0.08 };
            for o in &mut out {
                *o = lo + *o * (hi - lo) / 255.0;
                *o *= 1.0 - screen * mid * (1.0 - dots);
            }
            // Yellowish paper, desaturated ink.
            out = mix(out, [luma; 3], 0.15);
            out[2] *= 0.94;
            if species == Species::GlossyPrint {
                // A diagonal band of specular light across the paper.
                let band = (-(((u - v) - (glare_at[0] - glare_at[1])) * 5.0).powi(2)).exp();
                out = mix(out, [255.0; 3], 0.55 * band);
            }
        }
        Species::Phone | Species::Tablet | Species::PhoneVideo | Species::TabletVideo => {
            // A screen's gamut and tone curve: less saturated, lifted blacks, a cool white point.
            out = mix(out, [luma; 3], 0.25);
            for o in &mut out {
                *o = 24.0 + *o * 0.86;
            }
            out[2] = (out[2] * 1.06 + 6.0).min(255.0);
            // Moiré: the pixel grid beating against the camera's, a slanted low-frequency ripple.
            let period = if species == Species::Phone { 1.0 } else { 0.7 };
            let wave = (x * moire[0] * period + y * moire[1] * period).sin();
            for o in &mut out {
                *o *= 1.0 + 0.10 * wave;
            }
            // Glare: a soft reflection of a ceiling light.
            let d2 = (u - glare_at[0]).powi(2) + (v - glare_at[1]).powi(2);
            out = mix(out, [250.0; 3], 0.6 * (-d2 / 0.02).exp());
        }
    }
    out.map(|o| o.clamp(0.0, 255.0))
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn mean_opaque(l: &Level) -> [f32; 3] {
    let (mut acc, mut n) = ([0.0f32; 3], 0.0f32);
    for p in &l.px {
        if p[3] > 0.9 {
            for k in 0..3 {
                acc[k] += p[k] / p[3];
            }
            n += 1.0;
        }
    }
    if n == 0.0 {
        return [128.0; 3];
    }
    acc.map(|v| v / n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn head() -> Sprite {
        let (w, h) = (40, 48);
        let mut px = vec![[0.0f32; 4]; w * h];
        for (i, p) in px.iter_mut().enumerate() {
            // An opaque disc on a transparent ground, as `Sprite::cut` makes.
            let (x, y) = ((i % w) as f32 - 20.0, (i / w) as f32 - 24.0);
            if x * x + y * y < 300.0 {
                *p = [150.0, 110.0, 90.0, 1.0];
            }
        }
        Sprite {
            levels: vec![Level { w, h, px }],
            face: [10.0, 12.0, 20.0, 24.0],
            keypoints: [[15.0, 20.0]; 6],
            skin: [150.0, 110.0, 90.0],
            surface: Surface::Head,
            video: None,
        }
    }

    #[test]
    fn a_picture_is_an_opaque_card_with_the_face_moved_inside() {
        let mut rng = StdRng::seed_from_u64(1);
        for s in ALL {
            let p = picture(&head(), s, &mut rng);
            let l = &p.levels[0];
            assert!(l.w > 40 && l.h > 48, "{s:?}");
            assert!(
                l.px.iter()
                    .all(|q| q[3] == 1.0 && q[..3].iter().all(|c| c.is_finite()))
            );
            let (mx, my) = ((l.w - 40) / 2, (l.h - 48) / 2);
            assert_eq!(p.face, [10.0 + mx as f32, 12.0 + my as f32, 20.0, 24.0]);
            assert_eq!(p.keypoints[0], [15.0 + mx as f32, 20.0 + my as f32]);
            match (s, p.surface) {
                (Species::CurvedPrint, Surface::Bent { sag }) => assert!((0.3..0.8).contains(&sag)),
                (Species::CurvedPrint, other) => panic!("a curved print drawn {other:?}"),
                (_, other) => assert_eq!(other, Surface::Flat, "{s:?}: a picture is flat"),
            }
            let replay = matches!(s, Species::PhoneVideo | Species::TabletVideo);
            assert_eq!(p.video.is_some(), replay, "{s:?}");
            if let Some(v) = p.video {
                // The screen is the photo's rectangle inside the bezel.
                assert_eq!(
                    v.screen,
                    [mx as f32, my as f32, (mx + 40) as f32, (my + 48) as f32]
                );
            }
            // The border is the species' colour.
            let corner = l.px[0];
            if s == Species::CurvedPrint {
                // Paper turned away from the light at the card's edge: darker, not black.
                let paper = s.border_colour();
                assert!((0..3).all(|k| corner[k] < paper[k] && corner[k] > 0.5 * paper[k]));
            } else {
                assert_eq!(&corner[..3], &s.border_colour()[..]);
            }
            assert_eq!(Species::parse(s.name()).unwrap(), s);
        }
        assert!(Species::parse("mask").is_err());
    }

    /// Footage made before the curved print is made the same now: it is not drawn unless named,
    /// and the other species draw from the seed exactly what they drew before (four values).
    #[test]
    fn the_curved_print_leaves_other_footage_as_it_was() {
        assert!(!DEFAULT.contains(&Species::CurvedPrint));
        assert_eq!(&ALL[..4], &DEFAULT[..]);
        for s in DEFAULT {
            let mut a = StdRng::seed_from_u64(3);
            let mut b = a.clone();
            let _ = picture(&head(), s, &mut a);
            for _ in 0..4 {
                let _: f32 = b.random_range(0.0..1.0f32);
            }
            assert_eq!(a.random::<u64>(), b.random::<u64>(), "{s:?}");
        }
    }
}
