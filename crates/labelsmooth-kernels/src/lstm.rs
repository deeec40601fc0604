//! The LSTM layer over a whole sequence, forward and backward through time, on plain arrays.
//!
//! Gates are ordered input, forget, candidate, output in the columns of the weights:
//! `z = x·W_ih + h·W_hh + b`, `i, f, o = σ(z)`, `g = tanh(z)`, `c = f·c_prev + i·g`,
//! `h = o·tanh(c)`, starting from `h = c = 0`.
//!
//! The batch is split in contiguous parts (a few per thread), and each part runs its recurrence
//! without synchronizing with the others: per step, the products `[rows, I] × [I, 4H]` and
//! `[rows, H] × [H, 4H]` with the register-blocked [`small_matmul_acc`], then the cell
//! update, all on rows still in cache. The backward pass runs the recurrence in reverse in the
//! same parts and keeps the gate gradients of every step; the weight and input gradients are then
//! three products over all steps at once.

use rayon::prelude::*;

use crate::array::{column_sums, transpose};
use crate::math::{sigmoid, tanh};
use crate::matmul::{Mat, Strides, matmul, small_matmul_acc, transposed_product_acc};
use crate::simd_dispatch;

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
    // Four parts per thread, at least eight sequences each: a thread slowed down by other work
    // on its core hands parts to the others instead of holding the whole step back.
    batch
        .div_ceil(4 * rayon::current_num_threads().max(1))
        .max(8)
        .min(batch.max(1))
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
        return (
            h_last,
            keep.then_some(LstmTape {
                gates,
                h_prev,
                c_prev,
                tanh_c,
            }),
        );
    }
    let pr = part_rows(d.batch);
    let x_part = pr * t_len * d.input;
    gates
        .par_chunks_mut(pr * t_len * g4)
        .zip(x.par_chunks(x_part.max(1)))
        .zip(h_prev.par_chunks_mut(pr * t_len * h))
        .zip(c_prev.par_chunks_mut(pr * t_len * h))
        .zip(tanh_c.par_chunks_mut(pr * t_len * h))
        .zip(h_last.par_chunks_mut(pr * h))
        .for_each(|(((((gates, x), h_prev), c_prev), tanh_c), h_last)| {
            let nb = h_last.len() / h;
            let mut c = vec![0.0f32; nb * h];
            for t in 0..t_len {
                // z_t = b + x_t · W_ih (+ h_{t−1} · W_hh below) for the rows of this part.
                for b in 0..nb {
                    let r = b * t_len + t;
                    gates[r * g4..(r + 1) * g4].copy_from_slice(bias);
                }
                small_matmul_acc(
                    (nb, g4, d.input),
                    &x[t * d.input..],
                    t_len * d.input,
                    w_ih,
                    g4,
                    &mut gates[t * g4..],
                    t_len * g4,
                );
                if t > 0 {
                    small_matmul_acc(
                        (nb, g4, h),
                        &h_prev[t * h..],
                        t_len * h,
                        w_hh,
                        g4,
                        &mut gates[t * g4..],
                        t_len * g4,
                    );
                }
                cell_forward(
                    (nb, t, t_len, h),
                    gates,
                    &mut c,
                    c_prev,
                    tanh_c,
                    h_prev,
                    h_last,
                );
            }
        });
    (
        h_last,
        keep.then_some(LstmTape {
            gates,
            h_prev,
            c_prev,
            tanh_c,
        }),
    )
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
    // W_hhᵀ row-major, so that the step products read it by rows.
    let w_hh_t = transpose(h, g4, w_hh);
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
                cell_backward((nb, t, t_len, h), gates, c_prev, tanh_c, &dh, &mut dc, dz);
                if t > 0 {
                    // dh_{t−1} = dz_t · W_hhᵀ
                    dh.fill(0.0);
                    small_matmul_acc(
                        (nb, h, g4),
                        &dz[t * g4..],
                        t_len * g4,
                        &w_hh_t,
                        h,
                        &mut dh,
                        h,
                    );
                }
            }
        });
    let rows = d.rows();
    // dW_ih = xᵀ·dz, dW_hh = h_prevᵀ·dz, dx = dz·W_ihᵀ, db = Σ_rows dz.
    transposed_product_acc((d.input, g4, rows), x, &dz, &mut grads.w_ih, true);
    transposed_product_acc((h, g4, rows), &tape.h_prev, &dz, &mut grads.w_hh, true);
    matmul(
        (rows, d.input, g4),
        &mut grads.x,
        Strides::row_major(d.input),
        false,
        1.0,
        Mat::new(&dz, Strides::row_major(g4)),
        Mat::new(w_ih, Strides::transposed(g4)),
        true,
    );
    grads.bias = column_sums(g4, &dz);
    grads
}

/// Lanes per vector step: one AVX-512 register.
const L: usize = 16;

#[inline(always)]
fn lanes(s: &[f32], j: usize) -> [f32; L] {
    s[j..j + L].try_into().expect("L lanes")
}

/// The cell on one unit: pre-activations and c_prev in; i, f, g, o, c and tanh(c) out.
#[inline(always)]
fn cell(zi: f32, zf: f32, zg: f32, zo: f32, c_prev: f32) -> (f32, f32, f32, f32, f32, f32) {
    let (i, f, g, o) = (sigmoid(zi), sigmoid(zf), tanh(zg), sigmoid(zo));
    let c = f * c_prev + i * g;
    (i, f, g, o, c, tanh(c))
}

/// The cell's derivatives on one unit: from the activations, c_prev, tanh(c), dh and the dc
/// coming from the next step, the pre-activation gradients of i, f, g, o and dc of the
/// previous step.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_grad(
    i: f32,
    f: f32,
    g: f32,
    o: f32,
    c_prev: f32,
    tanh_c: f32,
    dh: f32,
    dc_next: f32,
) -> (f32, f32, f32, f32, f32) {
    let dc = dc_next + dh * o * (1.0 - tanh_c * tanh_c);
    (
        dc * g * i * (1.0 - i),
        dc * c_prev * f * (1.0 - f),
        dc * i * (1.0 - g * g),
        dh * tanh_c * o * (1.0 - o),
        dc * f,
    )
}

/// One step of the cell for the `nb` sequences of a part: activates the gates of row
/// (b, t) in place, updates c, stores c_prev, tanh(c) and h (into the next row's h_prev, or
/// `h_last` at the last step).
#[inline(always)]
fn cell_forward_impl(
    (nb, t, t_len, h): (usize, usize, usize, usize),
    gates: &mut [f32],
    c: &mut [f32],
    c_prev: &mut [f32],
    tanh_c: &mut [f32],
    h_prev: &mut [f32],
    h_last: &mut [f32],
) {
    let g4 = 4 * h;
    for b in 0..nb {
        let r = b * t_len + t;
        let z = &mut gates[r * g4..(r + 1) * g4];
        let cb = &mut c[b * h..(b + 1) * h];
        c_prev[r * h..(r + 1) * h].copy_from_slice(cb);
        let tc = &mut tanh_c[r * h..(r + 1) * h];
        let (zi, rest) = z.split_at_mut(h);
        let (zf, rest) = rest.split_at_mut(h);
        let (zg, zo) = rest.split_at_mut(h);
        // Sixteen lanes at a time through local arrays (which alias nothing, so the loops
        // vectorize), then the tail one by one.
        let full = h - h % L;
        for j in (0..full).step_by(L) {
            let (mut i, mut f, mut g, mut o) =
                (lanes(zi, j), lanes(zf, j), lanes(zg, j), lanes(zo, j));
            let mut cj = lanes(cb, j);
            let mut tcj = [0.0f32; L];
            for l in 0..L {
                (i[l], f[l], g[l], o[l], cj[l], tcj[l]) = cell(i[l], f[l], g[l], o[l], cj[l]);
            }
            zi[j..j + L].copy_from_slice(&i);
            zf[j..j + L].copy_from_slice(&f);
            zg[j..j + L].copy_from_slice(&g);
            zo[j..j + L].copy_from_slice(&o);
            cb[j..j + L].copy_from_slice(&cj);
            tc[j..j + L].copy_from_slice(&tcj);
        }
        for j in full..h {
            (zi[j], zf[j], zg[j], zo[j], cb[j], tc[j]) = cell(zi[j], zf[j], zg[j], zo[j], cb[j]);
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
}

simd_dispatch! {
    pub(crate) fn cell_forward(
        dims: (usize, usize, usize, usize),
        gates: &mut [f32],
        c: &mut [f32],
        c_prev: &mut [f32],
        tanh_c: &mut [f32],
        h_prev: &mut [f32],
        h_last: &mut [f32],
    ) => cell_forward_impl, on cell_forward_on
}

/// One step back through the cell for the sequences of a part: from dh and dc of row (b, t),
/// the gate gradients (pre-activation) into `dz` and dc of the previous step into `dc`.
#[inline(always)]
fn cell_backward_impl(
    (nb, t, t_len, h): (usize, usize, usize, usize),
    gates: &[f32],
    c_prev: &[f32],
    tanh_c: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    dz: &mut [f32],
) {
    let g4 = 4 * h;
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
        let full = h - h % L;
        for j in (0..full).step_by(L) {
            let (i, f, g, o) = (lanes(ai, j), lanes(af, j), lanes(ag, j), lanes(ao, j));
            let (c, t, dh) = (lanes(cp, j), lanes(tc, j), lanes(dhb, j));
            let mut dc = lanes(dcb, j);
            let (mut di, mut df, mut dg, mut d_o) = ([0.0f32; L], [0.0; L], [0.0; L], [0.0; L]);
            for l in 0..L {
                (di[l], df[l], dg[l], d_o[l], dc[l]) =
                    cell_grad(i[l], f[l], g[l], o[l], c[l], t[l], dh[l], dc[l]);
            }
            zi[j..j + L].copy_from_slice(&di);
            zf[j..j + L].copy_from_slice(&df);
            zg[j..j + L].copy_from_slice(&dg);
            zo[j..j + L].copy_from_slice(&d_o);
            dcb[j..j + L].copy_from_slice(&dc);
        }
        for j in full..h {
            (zi[j], zf[j], zg[j], zo[j], dcb[j]) =
                cell_grad(ai[j], af[j], ag[j], ao[j], cp[j], tc[j], dhb[j], dcb[j]);
        }
    }
}

simd_dispatch! {
    pub(crate) fn cell_backward(
        dims: (usize, usize, usize, usize),
        gates: &[f32],
        c_prev: &[f32],
        tanh_c: &[f32],
        dh: &[f32],
        dc: &mut [f32],
        dz: &mut [f32],
    ) => cell_backward_impl, on cell_backward_on
}
