//! Output size and effective padding of a 2-D window (Conv and pooling), shared by shape
//! inference and the kernels so both agree on every edge case (SAME padding, ceil mode).

use super::op::{Padding, ResolvedWindow, Window2d};
use crate::tensor::MAX_ELEMENTS;

type R<T> = Result<T, String>;

impl Window2d {
    /// Output size and effective padding for an `[h, w]` input.
    pub fn resolve(&self, input: [usize; 2]) -> R<ResolvedWindow> {
        let mut out = [0; 2];
        let mut pads = [0; 4];
        for ax in 0..2 {
            let (k, s, d) = (self.kernel[ax], self.strides[ax], self.dilations[ax]);
            if k == 0 || s == 0 || d == 0 {
                return Err("kernel, strides and dilations must be positive".into());
            }
            let ek = (k - 1)
                .checked_mul(d)
                .and_then(|v| v.checked_add(1))
                .ok_or("window too large")?;
            let n = input[ax];
            // Nothing real comes near these bounds; keeping every term below them makes
            // all the index arithmetic here and in the kernels overflow-free.
            if ek > MAX_ELEMENTS || n == 0 || n > MAX_ELEMENTS {
                return Err(format!("window {ek} over input {n} is out of range"));
            }
            match self.padding {
                Padding::Explicit(p) => {
                    let (pb, pe) = (p[ax], p[ax + 2]);
                    if pb > MAX_ELEMENTS || pe > MAX_ELEMENTS {
                        return Err("padding too large".into());
                    }
                    let padded = n + pb + pe;
                    if padded < ek {
                        return Err(format!(
                            "window {ek} larger than padded input {padded} on axis {}",
                            ax + 2
                        ));
                    }
                    let span = padded - ek;
                    let mut o = if self.ceil_mode {
                        span.div_ceil(s) + 1
                    } else {
                        span / s + 1
                    };
                    // As in PyTorch and onnxruntime: a ceil-mode window may not start
                    // inside the end padding.
                    if self.ceil_mode && (o - 1) * s >= n + pb {
                        o -= 1;
                    }
                    out[ax] = o;
                    pads[ax] = pb;
                    pads[ax + 2] = pe;
                }
                Padding::SameUpper | Padding::SameLower => {
                    let o = n.div_ceil(s);
                    let total = ((o - 1) * s + ek).saturating_sub(n);
                    let small = total / 2;
                    let (pb, pe) = if self.padding == Padding::SameUpper {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    out[ax] = o;
                    pads[ax] = pb;
                    pads[ax + 2] = pe;
                }
            }
        }
        Ok(ResolvedWindow { out, pads })
    }
}

/// A square `k`×`k` window with stride `s` and explicit pads, no dilation or ceil mode: the window
/// most reference tests use.
#[cfg(test)]
impl Window2d {
    pub(crate) fn square(k: usize, s: usize, pads: [usize; 4]) -> Self {
        Self {
            kernel: [k, k],
            strides: [s, s],
            dilations: [1, 1],
            padding: Padding::Explicit(pads),
            ceil_mode: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win(k: usize, s: usize, p: Padding, ceil: bool) -> Window2d {
        Window2d {
            kernel: [k, k],
            strides: [s, s],
            dilations: [1, 1],
            padding: p,
            ceil_mode: ceil,
        }
    }

    #[test]
    fn window_sizes() {
        let r = win(3, 2, Padding::Explicit([1, 1, 1, 1]), false)
            .resolve([112, 112])
            .unwrap();
        assert_eq!(r.out, [56, 56]);
        // BlazeFace's asymmetric TF-style padding
        let r = win(5, 2, Padding::Explicit([1, 1, 2, 2]), false)
            .resolve([128, 128])
            .unwrap();
        assert_eq!(r.out, [64, 64]);
        let r = win(3, 2, Padding::SameUpper, false)
            .resolve([7, 8])
            .unwrap();
        assert_eq!(r.out, [4, 4]);
        assert_eq!(r.pads, [1, 0, 1, 1]);
        let r = win(3, 2, Padding::SameLower, false)
            .resolve([8, 8])
            .unwrap();
        assert_eq!(r.pads, [1, 1, 0, 0]);
        let r = win(2, 2, Padding::Explicit([0; 4]), true)
            .resolve([5, 5])
            .unwrap();
        assert_eq!(r.out, [3, 3]);
        assert!(
            win(5, 1, Padding::Explicit([0; 4]), false)
                .resolve([3, 3])
                .is_err()
        );
        assert!(
            win(0, 1, Padding::Explicit([0; 4]), false)
                .resolve([3, 3])
                .is_err()
        );
    }
}
