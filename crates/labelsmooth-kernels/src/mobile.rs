//! The two convolutions of MobileNet's inverted residual blocks on NCHW images, forward and
//! backward: the pointwise (1×1) convolution, a matrix product per image, and the depthwise
//! 3×3 convolution (one filter per channel, zero padding 1, stride 1 or 2), direct loops over
//! each image plane. Neither has a bias: batch norm follows each.
//!
//! Work is split over images (pointwise) or image planes (depthwise). Weight gradients are
//! summed per thread chunk and the chunks added in a fixed order: results are the same at a
//! fixed number of threads.

use rayon::prelude::*;

use crate::matmul::{Mat, Strides, matmul};

/// Shapes of a pointwise convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointwiseDims {
    /// Images.
    pub batch: usize,
    /// Input channels.
    pub inputs: usize,
    /// Output channels.
    pub outputs: usize,
    /// Pixels per channel (height × width).
    pub pixels: usize,
}

/// Batch norm on fixed statistics, as a scale and a shift per channel, and an optional ReLU6,
/// applied to a convolution's output while it is still in cache: `y·scale[c] + shift[c]`, then
/// ReLU6 when `relu6`.
#[derive(Debug, Clone, Copy)]
pub struct Affine<'a> {
    /// Scale per output channel.
    pub scale: &'a [f32],
    /// Shift per output channel.
    pub shift: &'a [f32],
    /// ReLU6 after the shift.
    pub relu6: bool,
}

impl Affine<'_> {
    fn check(&self, channels: usize) {
        assert_eq!(self.scale.len(), channels, "affine: scale");
        assert_eq!(self.shift.len(), channels, "affine: shift");
    }

    /// Applies channel `c`'s scale and shift (and ReLU6) to one plane of it.
    fn apply(&self, plane: &mut [f32], c: usize) {
        affine_in_place(plane, self.scale[c], self.shift[c], self.relu6);
    }
}

/// `y[n] = W · x[n]` for images `x` `[batch, inputs, pixels]` and weights `[outputs, inputs]`;
/// `y` is `[batch, outputs, pixels]`.
pub fn pointwise_forward(d: PointwiseDims, x: &[f32], w: &[f32]) -> Vec<f32> {
    pointwise(d, x, w, None)
}

/// [`pointwise_forward`] followed by `affine` on each output channel, in one pass.
pub fn pointwise_forward_affine(
    d: PointwiseDims,
    x: &[f32],
    w: &[f32],
    affine: Affine,
) -> Vec<f32> {
    affine.check(d.outputs);
    pointwise(d, x, w, Some(affine))
}

fn pointwise(d: PointwiseDims, x: &[f32], w: &[f32], affine: Option<Affine>) -> Vec<f32> {
    let PointwiseDims {
        batch,
        inputs,
        outputs,
        pixels,
    } = d;
    assert_eq!(x.len(), batch * inputs * pixels, "pointwise: x");
    assert_eq!(w.len(), outputs * inputs, "pointwise: w");
    let mut y = vec![0.0f32; batch * outputs * pixels];
    if y.is_empty() {
        return y;
    }
    let each = |(yn, xn): (&mut [f32], &[f32]), parallel: bool| {
        matmul(
            (outputs, pixels, inputs),
            yn,
            Strides::row_major(pixels),
            false,
            1.0,
            Mat::new(w, Strides::row_major(inputs)),
            Mat::new(xn, Strides::row_major(pixels)),
            parallel,
        );
        if let Some(a) = &affine {
            for (c, plane) in yn.chunks_exact_mut(pixels).enumerate() {
                a.apply(plane, c);
            }
        }
    };
    if batch >= rayon::current_num_threads() {
        y.par_chunks_mut(outputs * pixels)
            .zip(x.par_chunks(inputs * pixels))
            .for_each(|p| each(p, false));
    } else {
        y.chunks_mut(outputs * pixels)
            .zip(x.chunks(inputs * pixels))
            .for_each(|p| each(p, true));
    }
    y
}

/// Gradients of [`pointwise_forward`]: `dx` (when `need_dx`) and `dw` from the output gradient
/// `dy`.
pub fn pointwise_backward(
    d: PointwiseDims,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    need_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    let PointwiseDims {
        batch,
        inputs,
        outputs,
        pixels,
    } = d;
    assert_eq!(x.len(), batch * inputs * pixels, "pointwise: x");
    assert_eq!(w.len(), outputs * inputs, "pointwise: w");
    assert_eq!(dy.len(), batch * outputs * pixels, "pointwise: dy");
    let dx = need_dx.then(|| {
        let mut dx = vec![0.0f32; batch * inputs * pixels];
        if !dx.is_empty() {
            // dx[n] = Wᵀ · dy[n].
            dx.par_chunks_mut(inputs * pixels)
                .zip(dy.par_chunks(outputs * pixels))
                .for_each(|(dxn, dyn_)| {
                    matmul(
                        (inputs, pixels, outputs),
                        dxn,
                        Strides::row_major(pixels),
                        false,
                        1.0,
                        Mat::new(w, Strides::transposed(inputs)),
                        Mat::new(dyn_, Strides::row_major(pixels)),
                        false,
                    )
                });
        }
        dx
    });
    // dW = Σ_n dy[n] · x[n]ᵀ, one partial sum per chunk of images.
    let per = batch.div_ceil(rayon::current_num_threads().max(1)).max(1);
    let partials: Vec<Vec<f32>> = dy
        .par_chunks(per * outputs * pixels)
        .zip(x.par_chunks(per * inputs * pixels))
        .map(|(dys, xs)| {
            let mut part = vec![0.0f32; outputs * inputs];
            for (dyn_, xn) in dys.chunks(outputs * pixels).zip(xs.chunks(inputs * pixels)) {
                matmul(
                    (outputs, inputs, pixels),
                    &mut part,
                    Strides::row_major(inputs),
                    true,
                    1.0,
                    Mat::new(dyn_, Strides::row_major(pixels)),
                    Mat::new(xn, Strides::transposed(pixels)),
                    false,
                );
            }
            part
        })
        .collect();
    let mut dw = vec![0.0f32; outputs * inputs];
    for part in partials {
        dw.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    (dx, dw)
}

/// Shapes of a depthwise 3×3 convolution with zero padding 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseDims {
    /// Images.
    pub batch: usize,
    /// Channels (one filter each).
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Stride (1 or 2).
    pub stride: usize,
}

impl DepthwiseDims {
    /// Output height and width.
    pub fn output(&self) -> (usize, usize) {
        (
            (self.height - 1) / self.stride + 1,
            (self.width - 1) / self.stride + 1,
        )
    }
}

/// An input plane with a border of zeros laid out so that every tap of the 3×3 filter reads
/// one contiguous run for all outputs at once: outputs sit on a grid whose rows are as far apart
/// as the rows of the source, and tap (ky, kx) reads the source a fixed offset further on.
///
/// At stride 1 the source is the padded plane `[height + 2, pw]`, pw = width + 2: output
/// (oy, ox) sits at oy·pw + ox and tap (ky, kx) reads ky·pw + kx further on.
///
/// At stride 2 the padded plane is split into four phases by the parity of row and column,
/// phase (a, b) holding padded element (2r + a, 2j + b) at r·half + j (half = ⌈pw / 2⌉): output
/// (oy, ox) sits at oy·half + ox, and tap (ky, kx) reads phase (ky mod 2, kx mod 2)
/// (ky / 2)·half + kx / 2 further on.
#[derive(Default)]
struct Padded {
    /// Distance between rows of the source (and of the output grid).
    pitch: usize,
    /// Stride 1: the padded plane.
    plane: Vec<f32>,
    /// Stride 2: the four phases, (a, b) at index 2a + b.
    phases: [Vec<f32>; 4],
    /// Outputs laid out on the grid; the extra columns of each row are dropped at the end.
    grid: Vec<f32>,
}

impl Padded {
    /// Geometry of plane `d`: (row pitch, rows of each source plane, length of the grid).
    fn geometry(d: &DepthwiseDims) -> (usize, usize, usize) {
        let (oh, ow) = d.output();
        let (pw, ph) = (d.width + 2, d.height + 2);
        let (pitch, rows) = if d.stride == 1 {
            (pw, ph)
        } else {
            (pw.div_ceil(2), ph.div_ceil(2))
        };
        (pitch, rows, (oh - 1) * pitch + ow)
    }

    /// Offset of tap (ky, kx) in its source, and which source (the phase at stride 2).
    fn tap(&self, stride: usize, ky: usize, kx: usize) -> (usize, usize) {
        if stride == 1 {
            (ky * self.pitch + kx, 0)
        } else {
            ((ky / 2) * self.pitch + kx / 2, (ky % 2) * 2 + kx % 2)
        }
    }

    /// The source that tap (ky, kx) reads, from its first output, `len` long.
    fn source(&self, stride: usize, ky: usize, kx: usize, len: usize) -> &[f32] {
        let (offset, phase) = self.tap(stride, ky, kx);
        let src = if stride == 1 {
            &self.plane
        } else {
            &self.phases[phase]
        };
        &src[offset..][..len]
    }

    /// Loads input plane `x` of `d`, with its border of zeros.
    fn fill(&mut self, x: &[f32], d: &DepthwiseDims) {
        let (pitch, rows, _) = Self::geometry(d);
        let w = d.width;
        self.pitch = pitch;
        if d.stride == 1 {
            self.plane.clear();
            self.plane.resize(rows * pitch, 0.0);
            for (iy, row) in x.chunks_exact(w).enumerate() {
                self.plane[(iy + 1) * pitch + 1..][..w].copy_from_slice(row);
            }
            return;
        }
        for phase in &mut self.phases {
            phase.clear();
            phase.resize(rows * pitch, 0.0);
        }
        for (iy, row) in x.chunks_exact(w).enumerate() {
            // Padded row iy + 1; input column ix is padded column ix + 1, so even input
            // columns go to the odd phase and odd ones to the even phase, one place on.
            let py = iy + 1;
            let (a, r) = (py % 2, py / 2);
            let (even, odd) = self.phases[2 * a..2 * a + 2].split_at_mut(1);
            let (even, odd) = (
                &mut even[0][r * pitch..][..pitch],
                &mut odd[0][r * pitch..][..pitch],
            );
            scatter_pairs(row, odd, &mut even[1..]);
        }
    }

    /// Zeros in the layout of plane `d` (to gather a gradient in).
    fn zero(&mut self, d: &DepthwiseDims) {
        let (pitch, rows, _) = Self::geometry(d);
        self.pitch = pitch;
        let sources = if d.stride == 1 {
            std::slice::from_mut(&mut self.plane)
        } else {
            &mut self.phases[..]
        };
        for s in sources {
            s.clear();
            s.resize(rows * pitch, 0.0);
        }
    }

    /// `src` (on the output grid) times `weight` added where tap (ky, kx) reads: the adjoint of
    /// one tap of the forward pass.
    fn add_tap(&mut self, stride: usize, (ky, kx): (usize, usize), src: &[f32], weight: f32) {
        let (offset, phase) = self.tap(stride, ky, kx);
        let dest = if stride == 1 {
            &mut self.plane
        } else {
            &mut self.phases[phase]
        };
        axpy(&mut dest[offset..][..src.len()], src, weight);
    }

    /// The plane without its border, as [`Padded::fill`] laid it out, into `dx`.
    fn interior(&self, dx: &mut [f32], d: &DepthwiseDims) {
        let w = d.width;
        let pitch = self.pitch;
        for (iy, row) in dx.chunks_exact_mut(w).enumerate() {
            if d.stride == 1 {
                row.copy_from_slice(&self.plane[(iy + 1) * pitch + 1..][..w]);
                continue;
            }
            let py = iy + 1;
            let (a, r) = (py % 2, py / 2);
            let even = &self.phases[2 * a][r * pitch..][..pitch];
            let odd = &self.phases[2 * a + 1][r * pitch..][..pitch];
            for (ix, v) in row.iter_mut().enumerate() {
                *v = if ix % 2 == 0 {
                    odd[ix / 2]
                } else {
                    even[ix / 2 + 1]
                };
            }
        }
    }
}

/// `first[j] = row[2j]` and `second[j] = row[2j + 1]`, as far as `row` goes.
fn scatter_pairs(row: &[f32], first: &mut [f32], second: &mut [f32]) {
    let mut pairs = row.chunks_exact(2);
    for ((p, f), s) in (&mut pairs).zip(first.iter_mut()).zip(second.iter_mut()) {
        *f = p[0];
        *s = p[1];
    }
    if let [last] = pairs.remainder() {
        first[row.len() / 2] = *last;
    }
}

/// One output plane of the depthwise convolution.
fn plane_forward(d: DepthwiseDims, x: &[f32], w: &[f32], y: &mut [f32], pad: &mut Padded) {
    let (_, ow) = d.output();
    let (pitch, _, len) = Padded::geometry(&d);
    pad.fill(x, &d);
    let mut grid = std::mem::take(&mut pad.grid);
    grid.clear();
    grid.resize(len, 0.0);
    for ky in 0..3 {
        for kx in 0..3 {
            axpy(&mut grid, pad.source(d.stride, ky, kx, len), w[ky * 3 + kx]);
        }
    }
    for (oy, yrow) in y.chunks_exact_mut(ow).enumerate() {
        yrow.copy_from_slice(&grid[oy * pitch..][..ow]);
    }
    pad.grid = grid;
}

/// Depthwise 3×3 convolution (zero padding 1) of `x` `[batch, channels, height, width]` with
/// weights `[channels, 3, 3]`; `y` is `[batch, channels, out_height, out_width]`.
pub fn depthwise_forward(d: DepthwiseDims, x: &[f32], w: &[f32]) -> Vec<f32> {
    depthwise(d, x, w, None)
}

/// [`depthwise_forward`] followed by `affine` on each channel, in one pass.
pub fn depthwise_forward_affine(
    d: DepthwiseDims,
    x: &[f32],
    w: &[f32],
    affine: Affine,
) -> Vec<f32> {
    affine.check(d.channels);
    depthwise(d, x, w, Some(affine))
}

fn depthwise(d: DepthwiseDims, x: &[f32], w: &[f32], affine: Option<Affine>) -> Vec<f32> {
    let (oh, ow) = d.output();
    let plane = d.height * d.width;
    assert!(d.stride == 1 || d.stride == 2, "depthwise: stride 1 or 2");
    assert_eq!(x.len(), d.batch * d.channels * plane, "depthwise: x");
    assert_eq!(w.len(), d.channels * 9, "depthwise: w");
    let mut y = vec![0.0f32; d.batch * d.channels * oh * ow];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(plane))
        .enumerate()
        .for_each_init(Padded::default, |pad, (i, (yp, xp))| {
            let c = i % d.channels;
            plane_forward(d, xp, &w[c * 9..c * 9 + 9], yp, pad);
            if let Some(a) = &affine {
                a.apply(yp, c);
            }
        });
    y
}

/// Gradients of [`depthwise_forward`]: `dx` (when `need_dx`) and `dw` from `dy`.
pub fn depthwise_backward(
    d: DepthwiseDims,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    need_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    let (oh, ow) = d.output();
    let (h, wd, s) = (d.height, d.width, d.stride);
    let plane = h * wd;
    let oplane = oh * ow;
    assert!(s == 1 || s == 2, "depthwise: stride 1 or 2");
    assert_eq!(x.len(), d.batch * d.channels * plane, "depthwise: x");
    assert_eq!(w.len(), d.channels * 9, "depthwise: w");
    assert_eq!(dy.len(), d.batch * d.channels * oplane, "depthwise: dy");
    // dy laid out on the output grid of its plane, zeros in the extra columns.
    let (pitch, _, len) = Padded::geometry(&d);
    let on_grid = |grid: &mut Vec<f32>, dyp: &[f32]| {
        grid.clear();
        grid.resize(len, 0.0);
        for (oy, dyrow) in dyp.chunks_exact(ow).enumerate() {
            grid[oy * pitch..][..ow].copy_from_slice(dyrow);
        }
    };
    let dx = need_dx.then(|| {
        let mut dx = vec![0.0f32; x.len()];
        if !dx.is_empty() {
            dx.par_chunks_mut(plane)
                .zip(dy.par_chunks(oplane))
                .enumerate()
                .for_each_init(Padded::default, |dpad, (i, (dxp, dyp))| {
                    let c = i % d.channels;
                    let wc = &w[c * 9..c * 9 + 9];
                    // Each tap scatters the output gradient back to where it read.
                    let mut grid = std::mem::take(&mut dpad.grid);
                    on_grid(&mut grid, dyp);
                    dpad.zero(&d);
                    for ky in 0..3 {
                        for kx in 0..3 {
                            dpad.add_tap(s, (ky, kx), &grid, wc[ky * 3 + kx]);
                        }
                    }
                    dpad.interior(dxp, &d);
                    dpad.grid = grid;
                });
        }
        dx
    });
    // dw[c] = Σ over images and output pixels of dy · the input under each tap: one dot product
    // over the grid per tap.
    let dw: Vec<f32> = (0..d.channels)
        .into_par_iter()
        .map_init(Padded::default, |pad, c| {
            let mut acc = [0.0f32; 9];
            let mut grid = std::mem::take(&mut pad.grid);
            for n in 0..d.batch {
                let xp = &x[(n * d.channels + c) * plane..][..plane];
                let dyp = &dy[(n * d.channels + c) * oplane..][..oplane];
                pad.fill(xp, &d);
                on_grid(&mut grid, dyp);
                for ky in 0..3 {
                    for kx in 0..3 {
                        acc[ky * 3 + kx] += dot(&grid, pad.source(s, ky, kx, len));
                    }
                }
            }
            pad.grid = grid;
            acc
        })
        .flat_map_iter(|acc| acc.into_iter())
        .collect();
    (dx, dw)
}

/// Lanes of the partial sums: their order is fixed, so every instruction set gives the same bits.
const LANES: usize = 16;

#[inline(always)]
fn axpy_impl(dst: &mut [f32], src: &[f32], a: f32) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += a * s;
    }
}

crate::simd_dispatch! {
    /// `dst[i] += a · src[i]` over the shorter of the two.
    pub fn axpy(dst: &mut [f32], src: &[f32], a: f32) => axpy_impl, on axpy_on
}

#[inline(always)]
fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            lanes[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

crate::simd_dispatch! {
    /// Σ a_i·b_i over the shorter of the two, in sixteen lanes added in a fixed order.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 => dot_impl, on dot_on
}

#[inline(always)]
fn norm_plane_impl(y: &mut [f32], x: &[f32], scale: f32, shift: f32, relu6: bool) {
    if relu6 {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = (v * scale + shift).clamp(0.0, 6.0);
        }
    } else {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = v * scale + shift;
        }
    }
}

crate::simd_dispatch! {
    /// `y = x·scale + shift`, then ReLU6 when `relu6`.
    pub fn norm_plane(y: &mut [f32], x: &[f32], scale: f32, shift: f32, relu6: bool)
        => norm_plane_impl, on norm_plane_on
}

#[inline(always)]
fn affine_in_place_impl(y: &mut [f32], scale: f32, shift: f32, relu6: bool) {
    if relu6 {
        for v in y.iter_mut() {
            *v = (*v * scale + shift).clamp(0.0, 6.0);
        }
    } else {
        for v in y.iter_mut() {
            *v = *v * scale + shift;
        }
    }
}

crate::simd_dispatch! {
    /// `y = y·scale + shift` in place, then ReLU6 when `relu6` (the same arithmetic as
    /// [`norm_plane`]).
    pub fn affine_in_place(y: &mut [f32], scale: f32, shift: f32, relu6: bool)
        => affine_in_place_impl, on affine_in_place_on
}

#[inline(always)]
fn norm_plane_sums_impl(g: &[f32], x: &[f32], y: Option<&[f32]>, mu: f32) -> (f32, f32) {
    let (mut a, mut b) = ([0.0f32; LANES], [0.0f32; LANES]);
    let n = g.len().min(x.len());
    let (g, x) = (&g[..n], &x[..n]);
    let (mut ta, mut tb) = (0.0f32, 0.0f32);
    match y {
        Some(y) => {
            let y = &y[..n];
            let mut cg = g.chunks_exact(LANES);
            let mut cx = x.chunks_exact(LANES);
            let mut cy = y.chunks_exact(LANES);
            for ((gc, xc), yc) in (&mut cg).zip(&mut cx).zip(&mut cy) {
                for l in 0..LANES {
                    let o = yc[l];
                    let gv = if o > 0.0 && o < 6.0 { gc[l] } else { 0.0 };
                    a[l] += gv;
                    b[l] += gv * (xc[l] - mu);
                }
            }
            for ((&gv, &v), &o) in cg
                .remainder()
                .iter()
                .zip(cx.remainder())
                .zip(cy.remainder())
            {
                let gv = if o > 0.0 && o < 6.0 { gv } else { 0.0 };
                ta += gv;
                tb += gv * (v - mu);
            }
        }
        None => {
            let mut cg = g.chunks_exact(LANES);
            let mut cx = x.chunks_exact(LANES);
            for (gc, xc) in (&mut cg).zip(&mut cx) {
                for l in 0..LANES {
                    a[l] += gc[l];
                    b[l] += gc[l] * (xc[l] - mu);
                }
            }
            for (&gv, &v) in cg.remainder().iter().zip(cx.remainder()) {
                ta += gv;
                tb += gv * (v - mu);
            }
        }
    }
    (a.iter().sum::<f32>() + ta, b.iter().sum::<f32>() + tb)
}

crate::simd_dispatch! {
    /// Σ dz and Σ dz·(x − μ) over one plane, with dz = `g` except where the ReLU6 output `y`
    /// (when given) clipped.
    pub fn norm_plane_sums(g: &[f32], x: &[f32], y: Option<&[f32]>, mu: f32) -> (f32, f32)
        => norm_plane_sums_impl, on norm_plane_sums_on
}

#[inline(always)]
fn norm_plane_dx_impl(
    dx: &mut [f32],
    g: &[f32],
    x: &[f32],
    y: Option<&[f32]>,
    coefficients: [f32; 4],
) {
    let [a, base, slope, mu] = coefficients;
    match y {
        Some(y) => {
            for (((o, &gv), &v), &out) in dx.iter_mut().zip(g).zip(x).zip(y) {
                let gv = if out > 0.0 && out < 6.0 { gv } else { 0.0 };
                *o = a * gv + base + slope * (v - mu);
            }
        }
        None => {
            for ((o, &gv), &v) in dx.iter_mut().zip(g).zip(x) {
                *o = a * gv + base + slope * (v - mu);
            }
        }
    }
}

crate::simd_dispatch! {
    /// `dx = a·dz + base + slope·(x − μ)` over one plane (`coefficients` = `[a, base, slope, μ]`),
    /// dz as in [`norm_plane_sums`].
    pub fn norm_plane_dx(dx: &mut [f32], g: &[f32], x: &[f32], y: Option<&[f32]>, coefficients: [f32; 4])
        => norm_plane_dx_impl, on norm_plane_dx_on
}

/// Shapes of a batch norm over NCHW images: statistics per channel over images and pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormDims {
    /// Images.
    pub batch: usize,
    /// Channels.
    pub channels: usize,
    /// Pixels per channel.
    pub pixels: usize,
}

impl NormDims {
    /// The values of channel `c` in image `n`.
    fn run(&self, n: usize, c: usize) -> std::ops::Range<usize> {
        let start = (n * self.channels + c) * self.pixels;
        start..start + self.pixels
    }
}

#[inline(always)]
fn deviation_sum_impl(values: &[f32], center: f32, square: bool) -> f64 {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            let v = c[l] - center;
            lanes[l] += if square { v * v } else { v };
        }
    }
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&v| {
            let v = v - center;
            if square { v * v } else { v }
        })
        .sum();
    lanes.iter().map(|&v| f64::from(v)).sum::<f64>() + f64::from(tail)
}

crate::simd_dispatch! {
    /// Σ (v − center), or Σ (v − center)² with `square`, in sixteen f32 lanes added in f64.
    pub fn deviation_sum(values: &[f32], center: f32, square: bool) -> f64
        => deviation_sum_impl, on deviation_sum_on
}

/// Mean and biased variance of each channel (two passes; each plane summed in f32 lanes, the
/// planes of a channel added in f64): `[channels]` each.
pub fn channel_statistics(d: NormDims, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), d.batch * d.channels * d.pixels, "batch norm: x");
    let count = (d.batch * d.pixels).max(1) as f64;
    let per_channel = |sums: Vec<f64>| -> Vec<f64> {
        let mut out = vec![0.0f64; d.channels];
        for (i, s) in sums.into_iter().enumerate() {
            out[i % d.channels] += s;
        }
        out.into_iter().map(|s| s / count).collect()
    };
    let plane = d.pixels.max(1);
    let mean = per_channel(
        x.par_chunks(plane)
            .map(|p| deviation_sum(p, 0.0, false))
            .collect(),
    );
    let mean_f32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let var = per_channel(
        x.par_chunks(plane)
            .enumerate()
            .map(|(i, p)| deviation_sum(p, mean_f32[i % d.channels], true))
            .collect(),
    );
    (mean_f32, var.into_iter().map(|v| v as f32).collect())
}

/// Batch norm with the given statistics, `γ·(x − μ)/√(σ² + ε) + β` per channel, then ReLU6
/// when `relu6`.
#[allow(clippy::too_many_arguments)]
pub fn norm_forward(
    d: NormDims,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f32,
    relu6: bool,
) -> Vec<f32> {
    assert_eq!(x.len(), d.batch * d.channels * d.pixels, "batch norm: x");
    let mut y = vec![0.0f32; x.len()];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(d.pixels)
        .zip(x.par_chunks(d.pixels))
        .enumerate()
        .for_each(|(i, (yr, xr))| {
            let c = i % d.channels;
            let scale = gamma[c] / (var[c] + epsilon).sqrt();
            let shift = beta[c] - mean[c] * scale;
            norm_plane(yr, xr, scale, shift, relu6);
        });
    y
}

/// Gradients of [`norm_forward`] when `mean` and `var` are the batch's own statistics of `x`
/// ([`channel_statistics`]), so that they move with `x`: `(dx, dγ, dβ)`. `y` is the forward
/// output, needed only with `relu6` (no gradient where it clipped).
#[allow(clippy::too_many_arguments)]
pub fn norm_backward(
    d: NormDims,
    x: &[f32],
    y: Option<&[f32]>,
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f32,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), d.batch * d.channels * d.pixels, "batch norm: x");
    assert_eq!(dy.len(), x.len(), "batch norm: dy");
    let count = (d.batch * d.pixels).max(1) as f32;
    // Per plane (image, channel), in memory order: Σ dz and Σ dz·(x − μ), with dz = dy except
    // where ReLU6 clipped; eight lanes so that the loops vectorize.
    let planes: Vec<(f32, f32)> = dy
        .par_chunks(d.pixels.max(1))
        .enumerate()
        .map(|(i, gr)| {
            let r = i * d.pixels..(i + 1) * d.pixels;
            norm_plane_sums(gr, &x[r.clone()], y.map(|y| &y[r]), mean[i % d.channels])
        })
        .collect();
    let mut sums = vec![(0.0f64, 0.0f64); d.channels];
    for (i, (a, b)) in planes.into_iter().enumerate() {
        let s = &mut sums[i % d.channels];
        s.0 += f64::from(a);
        s.1 += f64::from(b);
    }
    let sums: Vec<(f32, f32)> = sums
        .into_iter()
        .enumerate()
        .map(|(c, (a, b))| (a as f32, (b / f64::from((var[c] + epsilon).sqrt())) as f32))
        .collect();
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = sums.into_iter().unzip();
    let mut dx = vec![0.0f32; x.len()];
    if !dx.is_empty() {
        dx.par_chunks_mut(d.pixels)
            .enumerate()
            .for_each(|(i, dxr)| {
                let (n, c) = (i / d.channels, i % d.channels);
                let r = d.run(n, c);
                let inv = 1.0 / (var[c] + epsilon).sqrt();
                let k = gamma[c] * inv / count;
                // dx = k·(M·dz − Σdz − x̂·Σdz·x̂) with x̂ = (x − μ)·inv.
                let (base, slope) = (-k * dbeta[c], -k * dgamma[c] * inv);
                norm_plane_dx(
                    dxr,
                    &dy[r.clone()],
                    &x[r.clone()],
                    y.map(|y| &y[r]),
                    [k * count, base, slope, mean[c]],
                );
            });
    }
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let v = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (v % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// The depthwise convolution by its definition, in float64.
    fn depthwise_reference(d: DepthwiseDims, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (oh, ow) = d.output();
        let mut y = vec![0.0f64; d.batch * d.channels * oh * ow];
        for n in 0..d.batch {
            for c in 0..d.channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = 0.0f64;
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let iy = (oy * d.stride + ky) as isize - 1;
                                let ix = (ox * d.stride + kx) as isize - 1;
                                if iy >= 0
                                    && ix >= 0
                                    && (iy as usize) < d.height
                                    && (ix as usize) < d.width
                                {
                                    s += f64::from(w[c * 9 + ky * 3 + kx])
                                        * f64::from(
                                            x[((n * d.channels + c) * d.height + iy as usize)
                                                * d.width
                                                + ix as usize],
                                        );
                                }
                            }
                        }
                        y[((n * d.channels + c) * oh + oy) * ow + ox] = s;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn depthwise_matches_its_definition_and_gradients_match_the_adjoint() {
        for (h, wd, stride) in [(7, 5, 1), (8, 8, 2), (3, 3, 2), (1, 2, 1), (5, 6, 2)] {
            let d = DepthwiseDims {
                batch: 2,
                channels: 3,
                height: h,
                width: wd,
                stride,
            };
            let x = values(2 * 3 * h * wd, 1);
            let w = values(27, 2);
            let y = depthwise_forward(d, &x, &w);
            let want = depthwise_reference(d, &x, &w);
            for (a, b) in y.iter().zip(&want) {
                assert!((f64::from(*a) - b).abs() < 1e-5, "{h}x{wd}/{stride}");
            }
            // <dy, f(x, w)> is linear in x and in w: its gradients are the adjoints, checked
            // against the definition applied to unit vectors.
            let dy = values(y.len(), 3);
            let (dx, dw) = depthwise_backward(d, &x, &w, &dy, true);
            let dx = dx.unwrap();
            let dot = |y: &[f64]| {
                y.iter()
                    .zip(&dy)
                    .map(|(a, b)| a * f64::from(*b))
                    .sum::<f64>()
            };
            for i in 0..x.len() {
                let mut e = vec![0.0f32; x.len()];
                e[i] = 1.0;
                let g = dot(&depthwise_reference(d, &e, &w));
                assert!((f64::from(dx[i]) - g).abs() < 1e-5, "dx[{i}]");
            }
            for j in 0..w.len() {
                let mut e = vec![0.0f32; w.len()];
                e[j] = 1.0;
                let g = dot(&depthwise_reference(d, &x, &e));
                assert!((f64::from(dw[j]) - g).abs() < 1e-4, "dw[{j}]");
            }
        }
    }

    #[test]
    fn pointwise_is_a_product_per_image_and_its_gradients_the_transposes() {
        let d = PointwiseDims {
            batch: 3,
            inputs: 4,
            outputs: 5,
            pixels: 6,
        };
        let x = values(3 * 4 * 6, 4);
        let w = values(5 * 4, 5);
        let y = pointwise_forward(d, &x, &w);
        let dy = values(y.len(), 6);
        let (dx, dw) = pointwise_backward(d, &x, &w, &dy, true);
        let dx = dx.unwrap();
        for n in 0..3 {
            for o in 0..5 {
                for p in 0..6 {
                    let want: f64 = (0..4)
                        .map(|i| f64::from(w[o * 4 + i]) * f64::from(x[(n * 4 + i) * 6 + p]))
                        .sum();
                    assert!((f64::from(y[(n * 5 + o) * 6 + p]) - want).abs() < 1e-5);
                }
            }
            for i in 0..4 {
                for p in 0..6 {
                    let want: f64 = (0..5)
                        .map(|o| f64::from(w[o * 4 + i]) * f64::from(dy[(n * 5 + o) * 6 + p]))
                        .sum();
                    assert!((f64::from(dx[(n * 4 + i) * 6 + p]) - want).abs() < 1e-5);
                }
            }
        }
        for o in 0..5 {
            for i in 0..4 {
                let want: f64 = (0..3)
                    .flat_map(|n| (0..6).map(move |p| (n, p)))
                    .map(|(n, p)| {
                        f64::from(dy[(n * 5 + o) * 6 + p]) * f64::from(x[(n * 4 + i) * 6 + p])
                    })
                    .sum();
                assert!((f64::from(dw[o * 4 + i]) - want).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn batch_norm_gradients_match_finite_differences() {
        let d = NormDims {
            batch: 3,
            channels: 2,
            pixels: 5,
        };
        let x: Vec<f32> = values(30, 7).iter().map(|v| v * 4.0).collect();
        let gamma = [1.5f32, -0.7];
        let beta = [2.0f32, 0.3];
        let r = values(30, 8);
        let eps = 1e-5f32;
        for relu6 in [false, true] {
            // The objective Σ r·y in float64 through the definition.
            let objective = |x: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
                let (m, v) = channel_statistics(d, x);
                let y = norm_forward(d, x, gamma, beta, &m, &v, eps, relu6);
                y.iter()
                    .zip(&r)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum()
            };
            let (m, v) = channel_statistics(d, &x);
            let y = norm_forward(d, &x, &gamma, &beta, &m, &v, eps, relu6);
            if relu6 {
                assert!(y.contains(&0.0) && y.iter().any(|&o| o > 0.0 && o < 6.0));
            }
            let (dx, dg, db) = norm_backward(
                d,
                &x,
                relu6.then_some(y.as_slice()),
                &gamma,
                &m,
                &v,
                eps,
                &r,
            );
            let h = 1e-2f32;
            for i in 0..x.len() {
                let (mut a, mut b) = (x.clone(), x.clone());
                a[i] += h;
                b[i] -= h;
                let fd = (objective(&a, &gamma, &beta) - objective(&b, &gamma, &beta))
                    / f64::from(2.0 * h);
                assert!(
                    (fd - f64::from(dx[i])).abs() < 2e-2 * (1.0 + fd.abs()),
                    "relu6 {relu6} dx[{i}]: {fd} vs {}",
                    dx[i]
                );
            }
            for c in 0..2 {
                let (mut a, mut b) = (gamma, gamma);
                a[c] += h;
                b[c] -= h;
                let fd = (objective(&x, &a, &beta) - objective(&x, &b, &beta)) / f64::from(2.0 * h);
                assert!(
                    (fd - f64::from(dg[c])).abs() < 1e-2 * (1.0 + fd.abs()),
                    "dγ[{c}]"
                );
                let (mut a, mut b) = (beta, beta);
                a[c] += h;
                b[c] -= h;
                let fd =
                    (objective(&x, &gamma, &a) - objective(&x, &gamma, &b)) / f64::from(2.0 * h);
                assert!(
                    (fd - f64::from(db[c])).abs() < 1e-2 * (1.0 + fd.abs()),
                    "dβ[{c}]"
                );
            }
        }
    }
}
