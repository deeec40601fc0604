//! A convolution block on plain arrays: square `k × k` convolution (stride 1, zero padding
//! `k / 2`, so the output keeps the input's size) with bias, then ReLU, then 2 × 2 max-pooling
//! with stride 2, forward and backward. Images are NCHW, weights `[filters, channels, k, k]`.
//!
//! Each image is unrolled into a `[channels·k·k, height·width]` patch matrix (kept for the
//! backward pass) and the convolution is one product with the weights; images are spread over
//! the threads, and each thread accumulates its own weight gradient.

use rayon::prelude::*;

use crate::array::{transpose, transpose_into};
use crate::matmul::small_matmul_acc;

/// Marks a pooled output whose maximum was not positive (ReLU let no gradient through).
const DEAD: u8 = u8::MAX;

/// Sizes of one convolution block call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvDims {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    /// Input height (even).
    pub height: usize,
    /// Input width (even).
    pub width: usize,
    /// Output channels.
    pub filters: usize,
    /// Kernel side (odd).
    pub kernel: usize,
}

impl ConvDims {
    fn patch(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }
    fn pixels(&self) -> usize {
        self.height * self.width
    }
    fn pooled(&self) -> usize {
        (self.height / 2) * (self.width / 2)
    }
    /// Shape of the block's output: `[batch, filters, height / 2, width / 2]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.filters, self.height / 2, self.width / 2]
    }
}

/// What the forward pass keeps for the backward pass.
#[derive(Debug, Clone)]
pub struct ConvTape {
    /// Patch matrix of every image, `[batch, channels·k·k, height·width]`.
    patches: Vec<f32>,
    /// Which of the four pooled positions won (0..4, row-major in the window), or [`DEAD`].
    winner: Vec<u8>,
}

/// Gradients of the block's inputs.
#[derive(Debug, Clone)]
pub struct ConvGrads {
    /// Of the images (when asked for).
    pub x: Option<Vec<f32>>,
    /// Of the weights.
    pub weight: Vec<f32>,
    /// Of the bias.
    pub bias: Vec<f32>,
}

/// Unrolls one image `[channels, height, width]` into its patch matrix.
fn im2col(d: &ConvDims, image: &[f32], patches: &mut [f32]) {
    let (h, w, k) = (d.height as isize, d.width as isize, d.kernel);
    let pad = (k / 2) as isize;
    let p = d.pixels();
    for c in 0..d.channels {
        let plane = &image[c * d.pixels()..(c + 1) * d.pixels()];
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut patches[((c * k + ky) * k + kx) * p..][..p];
                let (dy, dx) = (ky as isize - pad, kx as isize - pad);
                for y in 0..h {
                    let out = &mut row[(y * w) as usize..((y + 1) * w) as usize];
                    let sy = y + dy;
                    if sy < 0 || sy >= h {
                        out.fill(0.0);
                        continue;
                    }
                    let src = &plane[(sy * w) as usize..((sy + 1) * w) as usize];
                    // Columns whose source x + dx lies inside the row.
                    let lo = (-dx).clamp(0, w) as usize;
                    let hi = (w - dx).clamp(0, w) as usize;
                    out[..lo].fill(0.0);
                    out[hi.max(lo)..].fill(0.0);
                    if hi > lo {
                        let s0 = (lo as isize + dx) as usize;
                        out[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
                    }
                }
            }
        }
    }
}

/// Adds a patch-matrix gradient back onto the image it was unrolled from.
fn col2im(d: &ConvDims, patches: &[f32], image: &mut [f32]) {
    let (h, w, k) = (d.height as isize, d.width as isize, d.kernel);
    let pad = (k / 2) as isize;
    let p = d.pixels();
    for c in 0..d.channels {
        let plane = &mut image[c * d.pixels()..(c + 1) * d.pixels()];
        for ky in 0..k {
            for kx in 0..k {
                let row = &patches[((c * k + ky) * k + kx) * p..][..p];
                let (dy, dx) = (ky as isize - pad, kx as isize - pad);
                for y in 0..h {
                    let sy = y + dy;
                    if sy < 0 || sy >= h {
                        continue;
                    }
                    let lo = (-dx).clamp(0, w) as usize;
                    let hi = (w - dx).clamp(0, w) as usize;
                    if hi > lo {
                        let s0 = (lo as isize + dx) as usize;
                        let dst = &mut plane[(sy * w) as usize + s0..][..hi - lo];
                        let src = &row[(y * w) as usize + lo..(y * w) as usize + hi];
                        for (a, &b) in dst.iter_mut().zip(src) {
                            *a += b;
                        }
                    }
                }
            }
        }
    }
}

fn check(d: &ConvDims, x: &[f32], weight: &[f32], bias: &[f32]) {
    assert!(d.kernel % 2 == 1, "conv block: odd kernel");
    assert!(
        d.height.is_multiple_of(2) && d.width.is_multiple_of(2),
        "conv block: even sides"
    );
    assert_eq!(x.len(), d.batch * d.channels * d.pixels(), "conv block: x");
    assert_eq!(weight.len(), d.filters * d.patch(), "conv block: weight");
    assert_eq!(bias.len(), d.filters, "conv block: bias");
}

/// Images per part when the batch is split over the threads.
fn part_images(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// Runs the block on `x` and returns its output (`[batch, filters, height/2, width/2]`) and,
/// when `keep` is set, the tape for [`conv_block_backward`].
pub fn conv_block_forward(
    d: ConvDims,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    keep: bool,
) -> (Vec<f32>, Option<ConvTape>) {
    check(&d, x, weight, bias);
    let (kp, p, q, o) = (d.patch(), d.pixels(), d.pooled(), d.filters);
    let in_len = d.channels * p;
    let mut y = vec![0.0f32; d.batch * o * q];
    let mut winner = vec![DEAD; d.batch * o * q];
    let mut patches = vec![0.0f32; if keep { d.batch * kp * p } else { 0 }];
    let pi = part_images(d.batch);
    let half_w = d.width / 2;
    let run = |images: &[f32], y: &mut [f32], winner: &mut [u8], kept: Option<&mut [f32]>| {
        let n = images.len() / in_len.max(1);
        let mut local = if kept.is_none() {
            vec![0.0f32; kp * p]
        } else {
            Vec::new()
        };
        let mut kept = kept;
        let mut out = vec![0.0f32; o * p];
        for i in 0..n {
            let cols: &mut [f32] = match kept.as_deref_mut() {
                Some(all) => &mut all[i * kp * p..(i + 1) * kp * p],
                None => &mut local,
            };
            im2col(&d, &images[i * in_len..(i + 1) * in_len], cols);
            for (row, &b) in out.chunks_exact_mut(p).zip(bias) {
                row.fill(b);
            }
            small_matmul_acc((o, p, kp), weight, kp, cols, p, &mut out, p);
            let (yi, wi) = (
                &mut y[i * o * q..(i + 1) * o * q],
                &mut winner[i * o * q..(i + 1) * o * q],
            );
            for f in 0..o {
                let plane = &out[f * p..(f + 1) * p];
                for py in 0..d.height / 2 {
                    for px in 0..half_w {
                        let base = 2 * py * d.width + 2 * px;
                        let cand = [
                            plane[base],
                            plane[base + 1],
                            plane[base + d.width],
                            plane[base + d.width + 1],
                        ];
                        let mut best = 0;
                        for (j, &v) in cand.iter().enumerate().skip(1) {
                            if v > cand[best] {
                                best = j;
                            }
                        }
                        let at = f * q + py * half_w + px;
                        if cand[best] > 0.0 {
                            yi[at] = cand[best];
                            wi[at] = best as u8;
                        } else {
                            yi[at] = 0.0;
                            wi[at] = DEAD;
                        }
                    }
                }
            }
        }
    };
    if keep {
        x.par_chunks(pi * in_len)
            .zip(y.par_chunks_mut(pi * o * q))
            .zip(winner.par_chunks_mut(pi * o * q))
            .zip(patches.par_chunks_mut(pi * kp * p))
            .for_each(|(((xs, ys), ws), ps)| run(xs, ys, ws, Some(ps)));
    } else {
        x.par_chunks(pi * in_len)
            .zip(y.par_chunks_mut(pi * o * q))
            .zip(winner.par_chunks_mut(pi * o * q))
            .for_each(|((xs, ys), ws)| run(xs, ys, ws, None));
    }
    (y, keep.then_some(ConvTape { patches, winner }))
}

/// Gradients of the block's inputs given the gradient of its output; the images' gradient
/// only when `want_x`.
pub fn conv_block_backward(
    d: ConvDims,
    weight: &[f32],
    tape: &ConvTape,
    dy: &[f32],
    want_x: bool,
) -> ConvGrads {
    let (kp, p, q, o) = (d.patch(), d.pixels(), d.pooled(), d.filters);
    let in_len = d.channels * p;
    assert_eq!(dy.len(), d.batch * o * q, "conv block: dy");
    // Wᵀ row-major [k·k·c, filters], for the patch gradient.
    let w_t = transpose(o, kp, weight);
    let mut dx = vec![0.0f32; if want_x { d.batch * in_len } else { 0 }];
    let pi = part_images(d.batch);
    let half_w = d.width / 2;
    let part = |first: usize, dx: &mut [f32]| -> (Vec<f32>, Vec<f64>) {
        let n = pi.min(d.batch - first);
        let mut dw = vec![0.0f32; o * kp];
        let mut db = vec![0.0f64; o];
        let mut dout = vec![0.0f32; o * p];
        let mut cols_t = vec![0.0f32; p * kp];
        let mut dcols = vec![0.0f32; if want_x { kp * p } else { 0 }];
        for i in first..first + n {
            dout.fill(0.0);
            let (dyi, wi) = (
                &dy[i * o * q..(i + 1) * o * q],
                &tape.winner[i * o * q..(i + 1) * o * q],
            );
            for f in 0..o {
                for py in 0..d.height / 2 {
                    for px in 0..half_w {
                        let at = f * q + py * half_w + px;
                        if wi[at] != DEAD {
                            let (wy, wx) = (usize::from(wi[at] / 2), usize::from(wi[at] % 2));
                            dout[f * p + (2 * py + wy) * d.width + 2 * px + wx] = dyi[at];
                            db[f] += f64::from(dyi[at]);
                        }
                    }
                }
            }
            let cols = &tape.patches[i * kp * p..(i + 1) * kp * p];
            transpose_into(kp, p, cols, &mut cols_t);
            // dW += dout · colsᵀ
            small_matmul_acc((o, kp, p), &dout, p, &cols_t, kp, &mut dw, kp);
            if want_x {
                // dcols = Wᵀ · dout, folded back onto the image.
                dcols.fill(0.0);
                small_matmul_acc((kp, p, o), &w_t, o, &dout, p, &mut dcols, p);
                let local = i - first;
                col2im(&d, &dcols, &mut dx[local * in_len..(local + 1) * in_len]);
            }
        }
        (dw, db)
    };
    let parts: Vec<(Vec<f32>, Vec<f64>)> = if want_x {
        dx.par_chunks_mut(pi * in_len)
            .enumerate()
            .map(|(j, dx)| part(j * pi, dx))
            .collect()
    } else {
        (0..d.batch.div_ceil(pi))
            .into_par_iter()
            .map(|j| part(j * pi, &mut []))
            .collect()
    };
    let mut weight_grad = vec![0.0f32; o * kp];
    let mut bias_grad = vec![0.0f64; o];
    for (dw, db) in parts {
        for (a, v) in weight_grad.iter_mut().zip(dw) {
            *a += v;
        }
        for (a, v) in bias_grad.iter_mut().zip(db) {
            *a += v;
        }
    }
    ConvGrads {
        x: want_x.then_some(dx),
        weight: weight_grad,
        bias: bias_grad.into_iter().map(|v| v as f32).collect(),
    }
}
