//! Face geometry around the networks: BlazeFace's SSD anchors, box/keypoint decoding and weighted
//! non-maximum suppression (`blazeface`), and the similarity transform that maps detected landmarks
//! onto SFace's 112×112 template (`align`), and the presentation-attack networks' crops and verdict
//! (`pad`).

pub mod align;
pub mod blazeface;
pub mod pad;
pub mod prepare;
