//! Dense f32 tensors (row-major, NCHW for images) and the size limits every allocation obeys.

use crate::error::{Error, Result};

/// Largest element count of any single tensor (1 GiB of f32). Shapes come from untrusted
/// files, so every allocation is checked against this before it happens.
pub const MAX_ELEMENTS: usize = 1 << 28;
/// Largest tensor rank accepted; the models need 4, ONNX in general rarely goes past 6.
pub const MAX_RANK: usize = 8;

/// Element count of `shape`, refusing overflow and anything above [`MAX_ELEMENTS`].
pub fn element_count(shape: &[usize]) -> Result<usize> {
    if shape.len() > MAX_RANK {
        return Err(Error::TooLarge(format!(
            "rank {} exceeds {MAX_RANK}",
            shape.len()
        )));
    }
    let mut n: usize = 1;
    for &d in shape {
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| {
                Error::TooLarge(format!(
                    "shape {shape:?} has more than {MAX_ELEMENTS} elements"
                ))
            })?;
    }
    Ok(n)
}

/// Row-major strides in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// An owned f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// Checks that `data` matches `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n = element_count(&shape)?;
        if n != data.len() {
            return Err(Error::Input(format!(
                "shape {shape:?} needs {n} values, got {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    pub fn zeros(shape: Vec<usize>) -> Result<Self> {
        let n = element_count(&shape)?;
        Ok(Tensor {
            shape,
            data: vec![0.0; n],
        })
    }

    pub fn view(&self) -> View<'_> {
        View {
            shape: &self.shape,
            data: &self.data,
        }
    }
}

/// A borrowed f32 tensor: how kernels receive inputs, whether they are activations or
/// constants living in the graph.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_strides() {
        assert_eq!(element_count(&[2, 3, 4]).unwrap(), 24);
        assert_eq!(element_count(&[]).unwrap(), 1);
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert!(element_count(&[usize::MAX, 2]).is_err());
        assert!(element_count(&[1 << 20, 1 << 20]).is_err());
        assert!(Tensor::new(vec![2, 2], vec![0.0; 3]).is_err());
    }
}
