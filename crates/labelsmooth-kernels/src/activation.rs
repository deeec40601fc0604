//! ReLU6, min(max(x, 0), 6), forward and backward in one pass each, split over threads for
//! large arrays.

use rayon::prelude::*;

#[inline(always)]
fn relu6_chunk_impl(y: &mut [f32], x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = x.clamp(0.0, 6.0);
    }
}

crate::simd_dispatch! {
    /// ReLU6 of `x` into `y`.
    pub(crate) fn relu6_chunk(y: &mut [f32], x: &[f32]) => relu6_chunk_impl, on relu6_chunk_on
}

#[inline(always)]
fn relu6_backward_chunk_impl(dx: &mut [f32], y: &[f32], dy: &[f32]) {
    for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(dy) {
        *dx = if y > 0.0 && y < 6.0 { g } else { 0.0 };
    }
}

crate::simd_dispatch! {
    /// The gradient of ReLU6 into `dx` from its output `y` and `dy`.
    pub(crate) fn relu6_backward_chunk(dx: &mut [f32], y: &[f32], dy: &[f32])
        => relu6_backward_chunk_impl, on relu6_backward_chunk_on
}

/// Elements per task: below this a loop runs on the calling thread.
const CHUNK: usize = 1 << 16;

/// `min(max(x, 0), 6)` of each element.
///
/// ```
/// use labelsmooth_kernels::activation::relu6;
/// assert_eq!(relu6(&[-1.0, 0.5, 7.0]), vec![0.0, 0.5, 6.0]);
/// ```
pub fn relu6(x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| relu6_chunk(y, x));
    y
}

/// The gradient of ReLU6 from its output `y` and the output's gradient `dy`: `dy` where
/// 0 < y < 6, else 0 (as PyTorch's `hardtanh_backward`: no gradient at the corners).
///
/// ```
/// use labelsmooth_kernels::activation::relu6_backward;
/// assert_eq!(relu6_backward(&[0.0, 3.0, 6.0], &[1.0, 2.0, 3.0]), vec![0.0, 2.0, 0.0]);
/// ```
pub fn relu6_backward(y: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        y.len(),
        dy.len(),
        "ReLU6 output and gradient lengths differ"
    );
    let mut dx = vec![0.0f32; y.len()];
    dx.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(dx, (y, dy))| relu6_backward_chunk(dx, y, dy));
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_arrays_split_over_threads_give_the_elementwise_result() {
        let x: Vec<f32> = (0..200_003).map(|i| (i % 97) as f32 * 0.1 - 1.0).collect();
        let y = relu6(&x);
        let dy: Vec<f32> = (0..x.len()).map(|i| i as f32).collect();
        let dx = relu6_backward(&y, &dy);
        for i in 0..x.len() {
            assert_eq!(y[i], x[i].clamp(0.0, 6.0));
            let inside = x[i] > 0.0 && x[i] < 6.0;
            assert_eq!(dx[i], if inside { dy[i] } else { 0.0 });
        }
    }
}
