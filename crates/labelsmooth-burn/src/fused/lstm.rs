//! The LSTM layer over a whole sequence, forward and backward through time, on plain arrays.
//!
//! Gates are ordered input, forget, candidate, output in the columns of the weights:
//! `z = x·W_ih + h·W_hh + b`, `i, f, o = σ(z)`, `g = tanh(z)`, `c = f·c_prev + i·g`,
//! `h = o·tanh(c)`, starting from `h = c = 0`.
//!
//! The input projection of every step is one matrix product; then the batch is split in as many
//! contiguous parts as there are threads, and each part runs its recurrence (one `[rows, H] ×
//! [H, 4H]` product per step, then the cell update) without synchronizing with the others. The
//! backward pass runs the recurrence in reverse in the same parts, keeps the gate gradients of
//! every step, and forms the weight gradients as three products over all steps at once.

use labelsmooth::dense::{self, Mat, Strides, sigmoid, tanh};
use rayon::prelude::*;

/// Sizes of one LSTM call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LstmDims {
    /// Sequences.
    pub batch: usize,
    /// Steps per sequence.
    pub steps: usize,
    /// Input features per step.
    pub input: usize,
    /// Hidden units.
    pub hidden: usize,
}

impl LstmDims {
    fn rows(&self) -> usize {
        self.batch * self.steps
    }
}

/// What the forward pass keeps for the backward pass, all `[batch, steps, ·]` row-major.
#[derive(Debug, Clone)]
pub struct LstmTape {
    /// Activated gates i, f, g, o of every step (`4·hidden` per row).
    gates: Vec<f32>,
    /// h of the previous step (0 at step 0).
    h_prev: Vec<f32>,
    /// c of the previous step (0 at step 0).
    c_prev: Vec<f32>,
    /// tanh(c) of the step.
    tanh_c: Vec<f32>,
}

/// Gradients of the LSTM's inputs.
#[derive(Debug, Clone)]
pub struct LstmGrads {
    /// `[batch, steps, input]`.
    pub x: Vec<f32>,
    /// `[input, 4·hidden]`.
    pub w_ih: Vec<f32>,
    /// `[hidden, 4·hidden]`.
    pub w_hh: Vec<f32>,
    /// `[4·hidden]`.
    pub bias: Vec<f32>,
}

/// Sequences per part when the batch is split over the threads.
fn part_rows(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// Runs the layer over `x` (`[batch, steps, input]`) and returns the last hidden state
/// (`[batch, hidden]`) and, when `keep` is set, the tape for [`lstm_backward`].
pub fn lstm_forward(
    d: LstmDims,
    x: &[f32],
    w_ih: &[f32],
    w_hh: &[f32],
    bias: &[f32],
    keep: bool,
) -> (Vec<f32>, Option<LstmTape>) {
    let (t_len, h, g4) = (d.steps, d.hidden, 4 * d.hidden);
    assert_eq!(x.len(), d.rows() * d.input, "lstm: x");
    assert_eq!(w_ih.len(), d.input * g4, "lstm: w_ih");
    assert_eq!(w_hh.len(), h * g4, "lstm: w_hh");
    assert_eq!(bias.len(), g4, "lstm: bias");
    let mut gates = vec![0.0f32; d.rows() * g4];
    let mut h_prev = vec![0.0f32; d.rows() * h];
    let mut c_prev = vec![0.0f32; d.rows() * h];
    let mut tanh_c = vec![0.0f32; d.rows() * h];
    let mut h_last = vec![0.0f32; d.batch * h];
    if d.rows() == 0 || h == 0 {
        return (h_last, keep.then_some(LstmTape { gates, h_prev, c_prev, tanh_c }));
    }
    for row in gates.chunks_exact_mut(g4) {
        row.copy_from_slice(bias);
    }
    dense::matmul(
        (d.rows(), g4, d.input),
        &mut gates,
        Strides::row_major(g4),
        true,
        1.0,
        Mat::new(x, Strides::row_major(d.input)),
        Mat::new(w_ih, Strides::row_major(g4)),
        true,
    );
    let pr = part_rows(d.batch);
    gates
        .par_chunks_mut(pr * t_len * g4)
        .zip(h_prev.par_chunks_mut(pr * t_len * h))
        .zip(c_prev.par_chunks_mut(pr * t_len * h))
        .zip(tanh_c.par_chunks_mut(pr * t_len * h))
        .zip(h_last.par_chunks_mut(pr * h))
        .for_each(|((((gates, h_prev), c_prev), tanh_c), h_last)| {
            let nb = h_last.len() / h;
            let mut c = vec![0.0f32; nb * h];
            for t in 0..t_len {
                if t > 0 {
                    // z_t += h_{t−1} · W_hh for the rows of this part.
                    dense::matmul(
                        (nb, g4, h),
                        &mut gates[t * g4..],
                        Strides::row_major(t_len * g4),
                        true,
                        1.0,
                        Mat::new(&h_prev[t * h..], Strides::row_major(t_len * h)),
                        Mat::new(w_hh, Strides::row_major(g4)),
                        false,
                    );
                }
                dense::vectorized(|| {
                    for b in 0..nb {
                        let r = b * t_len + t;
                        let z = &mut gates[r * g4..(r + 1) * g4];
                        let cb = &mut c[b * h..(b + 1) * h];
                        c_prev[r * h..(r + 1) * h].copy_from_slice(cb);
                        let tc = &mut tanh_c[r * h..(r + 1) * h];
                        let (zi, rest) = z.split_at_mut(h);
                        let (zf, rest) = rest.split_at_mut(h);
                        let (zg, zo) = rest.split_at_mut(h);
                        for j in 0..h {
                            let i = sigmoid(zi[j]);
                            let f = sigmoid(zf[j]);
                            let g = tanh(zg[j]);
                            let o = sigmoid(zo[j]);
                            let cj = f * cb[j] + i * g;
                            let tcj = tanh(cj);
                            zi[j] = i;
                            zf[j] = f;
                            zg[j] = g;
                            zo[j] = o;
                            cb[j] = cj;
                            tc[j] = tcj;
                        }
                        let hb = if t + 1 < t_len {
                            &mut h_prev[(r + 1) * h..(r + 2) * h]
                        } else {
                            &mut h_last[b * h..(b + 1) * h]
                        };
                        for j in 0..h {
                            hb[j] = zo[j] * tc[j];
                        }
                    }
                });
            }
        });
    (h_last, keep.then_some(LstmTape { gates, h_prev, c_prev, tanh_c }))
}

/// Gradients of every input of [`lstm_forward`] given the gradient of the last hidden state
/// (`[batch, hidden]`).
pub fn lstm_backward(
    d: LstmDims,
    x: &[f32],
    w_ih: &[f32],
    w_hh: &[f32],
    tape: &LstmTape,
    d_h_last: &[f32],
) -> LstmGrads {
    let (t_len, h, g4) = (d.steps, d.hidden, 4 * d.hidden);
    assert_eq!(d_h_last.len(), d.batch * h, "lstm: d_h_last");
    let mut dz = vec![0.0f32; d.rows() * g4];
    let mut grads = LstmGrads {
        x: vec![0.0; d.rows() * d.input],
        w_ih: vec![0.0; d.input * g4],
        w_hh: vec![0.0; h * g4],
        bias: vec![0.0; g4],
    };
    if d.rows() == 0 || h == 0 {
        return grads;
    }
    let pr = part_rows(d.batch);
    dz.par_chunks_mut(pr * t_len * g4)
        .zip(tape.gates.par_chunks(pr * t_len * g4))
        .zip(tape.c_prev.par_chunks(pr * t_len * h))
        .zip(tape.tanh_c.par_chunks(pr * t_len * h))
        .zip(d_h_last.par_chunks(pr * h))
        .for_each(|((((dz, gates), c_prev), tanh_c), dh_last)| {
            let nb = dh_last.len() / h;
            let mut dh = dh_last.to_vec();
            let mut dc = vec![0.0f32; nb * h];
            for t in (0..t_len).rev() {
                dense::vectorized(|| {
                    for b in 0..nb {
                        let r = b * t_len + t;
                        let a = &gates[r * g4..(r + 1) * g4];
                        let (ai, rest) = a.split_at(h);
                        let (af, rest) = rest.split_at(h);
                        let (ag, ao) = rest.split_at(h);
                        let z = &mut dz[r * g4..(r + 1) * g4];
                        let (zi, rest) = z.split_at_mut(h);
                        let (zf, rest) = rest.split_at_mut(h);
                        let (zg, zo) = rest.split_at_mut(h);
                        let cp = &c_prev[r * h..(r + 1) * h];
                        let tc = &tanh_c[r * h..(r + 1) * h];
                        let dhb = &dh[b * h..(b + 1) * h];
                        let dcb = &mut dc[b * h..(b + 1) * h];
                        for j in 0..h {
                            let (i, f, g, o) = (ai[j], af[j], ag[j], ao[j]);
                            let dcj = dcb[j] + dhb[j] * o * (1.0 - tc[j] * tc[j]);
                            zo[j] = dhb[j] * tc[j] * o * (1.0 - o);
                            zi[j] = dcj * g * i * (1.0 - i);
                            zf[j] = dcj * cp[j] * f * (1.0 - f);
                            zg[j] = dcj * i * (1.0 - g * g);
                            dcb[j] = dcj * f;
                        }
                    }
                });
                if t > 0 {
                    // dh_{t−1} = dz_t · W_hhᵀ
                    dense::matmul(
                        (nb, h, g4),
                        &mut dh,
                        Strides::row_major(h),
                        false,
                        1.0,
                        Mat::new(&dz[t * g4..], Strides::row_major(t_len * g4)),
                        Mat::new(w_hh, Strides::transposed(g4)),
                        false,
                    );
                }
            }
        });
    let rows = d.rows();
    // dW_ih = xᵀ·dz, dW_hh = h_prevᵀ·dz, dx = dz·W_ihᵀ, db = Σ_rows dz.
    dense::matmul(
        (d.input, g4, rows),
        &mut grads.w_ih,
        Strides::row_major(g4),
        false,
        1.0,
        Mat::new(x, Strides::transposed(d.input)),
        Mat::new(&dz, Strides::row_major(g4)),
        true,
    );
    dense::matmul(
        (h, g4, rows),
        &mut grads.w_hh,
        Strides::row_major(g4),
        false,
        1.0,
        Mat::new(&tape.h_prev, Strides::transposed(h)),
        Mat::new(&dz, Strides::row_major(g4)),
        true,
    );
    dense::matmul(
        (rows, d.input, g4),
        &mut grads.x,
        Strides::row_major(d.input),
        false,
        1.0,
        Mat::new(&dz, Strides::row_major(g4)),
        Mat::new(w_ih, Strides::transposed(g4)),
        true,
    );
    let mut bias = vec![0.0f64; g4];
    for row in dz.chunks_exact(g4) {
        for (acc, &v) in bias.iter_mut().zip(row) {
            *acc += f64::from(v);
        }
    }
    for (g, s) in grads.bias.iter_mut().zip(bias) {
        *g = s as f32;
    }
    grads
}
