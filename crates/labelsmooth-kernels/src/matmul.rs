//! Matrix products on `f32` slices: [`matmul`], a strided and optionally multi-threaded product
//! on the `gemm` crate, for large matrices; [`small_matmul_acc`], register-blocked and on the
//! calling thread, for the small products of recurrent steps and per-image convolutions; and
//! [`transposed_product_acc`], the weight gradient aᵀ·b summed over many rows.

use crate::simd_dispatch;

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// c[i, j0..j0+W] += a[i, ..k] · b[..k, j0..j0+W] for every row, four rows at a time with the
/// accumulators in registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn column_panel<const W: usize, const FMA: bool>(
    m: usize,
    k: usize,
    a: &[f32],
    sa: Strides,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    j0: usize,
) {
    let mut i = 0;
    while i + 4 <= m {
        let mut acc = [[0.0f32; W]; 4];
        if sa.cols == 1 {
            // Rows of a contiguous: four row slices, read along.
            let rows: [&[f32]; 4] =
                std::array::from_fn(|r| &a[(i + r) * sa.rows..(i + r) * sa.rows + k]);
            for l in 0..k {
                let bl: [f32; W] = b[l * ldb + j0..l * ldb + j0 + W]
                    .try_into()
                    .expect("W columns");
                for r in 0..4 {
                    let av = rows[r][l];
                    for w in 0..W {
                        acc[r][w] = madd::<FMA>(av, bl[w], acc[r][w]);
                    }
                }
            }
        } else {
            for l in 0..k {
                let base = i * sa.rows + l * sa.cols;
                let av: [f32; 4] = std::array::from_fn(|r| a[base + r * sa.rows]);
                let bl: [f32; W] = b[l * ldb + j0..l * ldb + j0 + W]
                    .try_into()
                    .expect("W columns");
                for r in 0..4 {
                    for w in 0..W {
                        acc[r][w] = madd::<FMA>(av[r], bl[w], acc[r][w]);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let cr = &mut c[(i + r) * ldc + j0..(i + r) * ldc + j0 + W];
            for w in 0..W {
                cr[w] += acc[w];
            }
        }
        i += 4;
    }
    while i < m {
        let mut acc = [0.0f32; W];
        for l in 0..k {
            let av = a[i * sa.rows + l * sa.cols];
            let bl: [f32; W] = b[l * ldb + j0..l * ldb + j0 + W]
                .try_into()
                .expect("W columns");
            for w in 0..W {
                acc[w] = madd::<FMA>(av, bl[w], acc[w]);
            }
        }
        let cr = &mut c[i * ldc + j0..i * ldc + j0 + W];
        for w in 0..W {
            cr[w] += acc[w];
        }
        i += 1;
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn small_matmul_impl<const FMA: bool>(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    sa: Strides,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let mut j0 = 0;
    while j0 + 64 <= n {
        column_panel::<64, FMA>(m, k, a, sa, b, ldb, c, ldc, j0);
        j0 += 64;
    }
    while j0 + 16 <= n {
        column_panel::<16, FMA>(m, k, a, sa, b, ldb, c, ldc, j0);
        j0 += 16;
    }
    if j0 < n {
        // The last columns, fewer than 16: through a zero-padded copy, as one more panel.
        let rest = n - j0;
        let mut b_tail = vec![0.0f32; k * 16];
        for l in 0..k {
            b_tail[l * 16..l * 16 + rest].copy_from_slice(&b[l * ldb + j0..l * ldb + n]);
        }
        let mut c_tail = vec![0.0f32; m * 16];
        column_panel::<16, FMA>(m, k, a, sa, &b_tail, 16, &mut c_tail, 16, 0);
        for i in 0..m {
            let dst = &mut c[i * ldc + j0..i * ldc + n];
            for (d, &v) in dst.iter_mut().zip(&c_tail[i * 16..i * 16 + rest]) {
                *d += v;
            }
        }
    }
}

/// c += a · b on this thread for the small products of recurrent steps (a few dozen rows, `k`
/// and `n` in the hundreds): a is `[m, k]` with rows `lda` apart, b is `[k, n]` with rows `ldb`
/// apart, c is `[m, n]` with rows `ldc` apart. Accumulators stay in vector registers; no
/// packing, no threads, so each call costs only its arithmetic.
///
/// # Panics
/// If a matrix is shorter than its dimensions and strides say.
#[allow(clippy::too_many_arguments)]
pub fn small_matmul_acc(
    dims: (usize, usize, usize),
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(lda >= dims.2, "small_matmul_acc: lda");
    small_matmul_acc_strided(dims, Mat::new(a, Strides::row_major(lda)), b, ldb, c, ldc)
}

/// [`small_matmul_acc`] with any strides for a (a transposed matrix: `Strides::transposed`).
///
/// # Panics
/// If a matrix is shorter than its dimensions and strides say.
pub fn small_matmul_acc_strided(
    (m, n, k): (usize, usize, usize),
    a: Mat<'_>,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let sa = a.strides;
    let a = a.data;
    assert!(ldb >= n && ldc >= n, "small_matmul_acc: strides");
    assert!(
        a.len() > (m - 1) * sa.rows + (k - 1) * sa.cols,
        "small_matmul_acc: a is too short"
    );
    assert!(
        b.len() >= (k - 1) * ldb + n,
        "small_matmul_acc: b is too short"
    );
    assert!(
        c.len() >= (m - 1) * ldc + n,
        "small_matmul_acc: c is too short"
    );
    small_matmul_dispatch((m, n, k), a, sa, b, ldb, c, ldc)
}

#[inline(always)]
fn small_matmul_fma(
    d: (usize, usize, usize),
    a: &[f32],
    sa: Strides,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    small_matmul_impl::<true>(d, a, sa, b, ldb, c, ldc)
}

fn small_matmul_plain(
    d: (usize, usize, usize),
    a: &[f32],
    sa: Strides,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    small_matmul_impl::<false>(d, a, sa, b, ldb, c, ldc)
}

simd_dispatch! {
    /// The product of [`small_matmul_acc_strided`] after its checks: fused multiply-add with
    /// AVX-512 or AVX2, separate multiply and add on the baseline.
    pub(crate) fn small_matmul_dispatch(
        d: (usize, usize, usize),
        a: &[f32],
        sa: Strides,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
    ) => small_matmul_fma, baseline small_matmul_plain, on small_matmul_on
}

/// c[m, n] += aᵀ · b for row-major a `[rows, m]` and b `[rows, n]` (a weight gradient: inputs
/// transposed times output gradients, summed over the rows), in blocks of 256 rows that stay in
/// cache. With `parallel` and enough work the rows are split over the threads, each summing into
/// its own copy of c; the copies are added in a fixed order.
pub fn transposed_product_acc(
    (m, n, rows): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    parallel: bool,
) {
    use rayon::prelude::*;
    const BLOCK: usize = 256;
    assert!(a.len() >= rows * m && b.len() >= rows * n && c.len() >= m * n);
    let blocks = |r0: usize, r1: usize, c: &mut [f32]| {
        let mut start = r0;
        while start < r1 {
            let len = BLOCK.min(r1 - start);
            small_matmul_acc_strided(
                (m, n, len),
                Mat::new(&a[start * m..], Strides::transposed(m)),
                &b[start * n..],
                n,
                c,
                n,
            );
            start += len;
        }
    };
    let threads = rayon::current_num_threads();
    if !parallel || threads < 2 || m * n * rows < 1 << 21 || rows < 2 * BLOCK {
        blocks(0, rows, c);
        return;
    }
    let per = rows.div_ceil(threads);
    let parts: Vec<Vec<f32>> = (0..threads)
        .into_par_iter()
        .map(|t| {
            let mut part = vec![0.0f32; m * n];
            blocks((t * per).min(rows), ((t + 1) * per).min(rows), &mut part);
            part
        })
        .collect();
    for part in parts {
        for (x, v) in c.iter_mut().zip(part) {
            *x += v;
        }
    }
}

/// Row and column strides of a matrix stored in a slice: element (i, j) is at
/// `i * rows + j * cols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strides {
    /// Distance between consecutive rows.
    pub rows: usize,
    /// Distance between consecutive columns.
    pub cols: usize,
}

impl Strides {
    /// A row-major matrix with `cols` columns (or rows `cols` apart).
    pub fn row_major(cols: usize) -> Strides {
        Strides {
            rows: cols,
            cols: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(cols: usize) -> Strides {
        Strides { rows: 1, cols }
    }
}

/// One matrix of a product: its elements and their strides.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Where element (i, j) lies.
    pub strides: Strides,
}

impl<'a> Mat<'a> {
    /// A matrix view.
    pub fn new(data: &'a [f32], strides: Strides) -> Mat<'a> {
        Mat { data, strides }
    }
}

/// One past the last element a `[rows, cols]` matrix with strides `s` reaches (0 when it is
/// empty), or `None` when that does not fit in `usize`.
fn extent(rows: usize, cols: usize, s: Strides) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(s.rows)?
        .checked_add((cols - 1).checked_mul(s.cols)?)?
        .checked_add(1)
}

/// Whether the strides give every element of a `[rows, cols]` matrix its own place: one stride
/// steps over a whole line of the other (row-major or column-major with any padding), or a
/// dimension of 1 needs only the other stride to be non-zero.
fn distinct_elements(rows: usize, cols: usize, s: Strides) -> bool {
    let spans = |count: usize, stride: usize| (count - 1).saturating_mul(stride).saturating_add(1);
    match (rows, cols) {
        (0, _) | (_, 0) | (1, 1) => true,
        (1, _) => s.cols >= 1,
        (_, 1) => s.rows >= 1,
        _ => {
            (s.cols >= 1 && s.rows >= spans(cols, s.cols))
                || (s.rows >= 1 && s.cols >= spans(rows, s.rows))
        }
    }
}

/// c = (c if `accumulate`, else 0) + alpha · a · b, where a is `[m, k]`, b is `[k, n]` and c is
/// `[m, n]` with the given strides; on the rayon pool when `parallel`, else on this thread.
///
/// The strides of a and b may repeat elements (a stride of 0 broadcasts); those of c must give
/// each element its own place, since threads write disjoint parts of c.
///
/// # Panics
/// If a matrix reaches outside its slice, a stride exceeds `isize::MAX`, or two elements of c
/// share a place (e.g. `Strides { rows: 0, cols: 1 }` for more than one row).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    c: &mut [f32],
    c_strides: Strides,
    accumulate: bool,
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    parallel: bool,
) {
    let fits = |len: usize, rows: usize, cols: usize, s: Strides| {
        extent(rows, cols, s).is_some_and(|end| end <= len)
    };
    assert!(fits(c.len(), m, n, c_strides), "matmul: c is too short");
    assert!(
        fits(a.data.len(), m, k, a.strides),
        "matmul: a is too short"
    );
    assert!(
        fits(b.data.len(), k, n, b.strides),
        "matmul: b is too short"
    );
    assert!(
        [c_strides, a.strides, b.strides]
            .iter()
            .all(|s| isize::try_from(s.rows).is_ok() && isize::try_from(s.cols).is_ok()),
        "matmul: a stride exceeds isize::MAX"
    );
    assert!(
        distinct_elements(m, n, c_strides),
        "matmul: c's strides {c_strides:?} put two elements of a [{m}, {n}] matrix in one place"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    c[i * c_strides.rows + j * c_strides.cols] = 0.0;
                }
            }
        }
        return;
    }
    let parallelism = if parallel && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every element the strides reach inside its slice (the
    // extents computed without overflow) and every stride representable as `isize`; c's
    // elements lie at distinct places, so the threads of `gemm`, which write disjoint sets of
    // elements, never write one place twice at once; `c` is borrowed mutably, so it aliases
    // neither `a` nor `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_strides.cols as isize,
            c_strides.rows as isize,
            accumulate,
            a.data.as_ptr(),
            a.strides.cols as isize,
            a.strides.rows as isize,
            b.data.as_ptr(),
            b.strides.cols as isize,
            b.strides.rows as isize,
            1.0,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_matmul_matches_loops() {
        for (m, n, k) in [(1, 1, 1), (5, 80, 7), (9, 256, 64), (4, 64, 3), (7, 19, 33)] {
            let (lda, ldb, ldc) = (k + 2, n + 1, n + 3);
            let a: Vec<f32> = (0..m * lda).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * ldb).map(|i| (i as f32 * 0.11).cos()).collect();
            let c0: Vec<f32> = (0..m * ldc).map(|i| (i as f32 * 0.05).sin()).collect();
            let mut c = c0.clone();
            small_matmul_acc((m, n, k), &a, lda, &b, ldb, &mut c, ldc);
            // The same product with a stored transposed.
            let mut a_t = vec![0.0f32; k * m];
            for i in 0..m {
                for l in 0..k {
                    a_t[l * m + i] = a[i * lda + l];
                }
            }
            let mut c_t = c0.clone();
            small_matmul_acc_strided(
                (m, n, k),
                Mat::new(&a_t, Strides::transposed(m)),
                &b,
                ldb,
                &mut c_t,
                ldc,
            );
            assert_eq!(c, c_t, "{m}x{n}x{k}: transposed a");
            for i in 0..m {
                for j in 0..ldc {
                    let want = if j < n {
                        c0[i * ldc + j]
                            + (0..k).map(|l| a[i * lda + l] * b[l * ldb + j]).sum::<f32>()
                    } else {
                        c0[i * ldc + j]
                    };
                    assert!(
                        (c[i * ldc + j] - want).abs() < 1e-4,
                        "{m}x{n}x{k} ({i}, {j})"
                    );
                }
            }
        }
    }

    #[test]
    fn transposed_product_matches_loops() {
        for (m, n, rows, parallel) in [(3, 5, 7, false), (64, 256, 1000, true), (16, 20, 600, true)]
        {
            let a: Vec<f32> = (0..rows * m).map(|i| (i as f32 * 0.013).sin()).collect();
            let b: Vec<f32> = (0..rows * n).map(|i| (i as f32 * 0.007).cos()).collect();
            let mut c = vec![0.5f32; m * n];
            transposed_product_acc((m, n, rows), &a, &b, &mut c, parallel);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = 0.5
                        + (0..rows)
                            .map(|r| f64::from(a[r * m + i]) * f64::from(b[r * n + j]))
                            .sum::<f64>();
                    assert!((f64::from(c[i * n + j]) - want).abs() < 1e-3, "({i}, {j})");
                }
            }
        }
    }

    #[test]
    fn matmul_matches_loops_for_every_stride() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for (transpose_a, transpose_b, parallel) in [
            (false, false, true),
            (true, false, false),
            (false, true, false),
            (true, true, true),
        ] {
            let sa = if transpose_a {
                Strides::transposed(m)
            } else {
                Strides::row_major(k)
            };
            let sb = if transpose_b {
                Strides::transposed(k)
            } else {
                Strides::row_major(n)
            };
            let mut c = vec![1.0f32; m * n];
            matmul(
                (m, n, k),
                &mut c,
                Strides::row_major(n),
                true,
                0.5,
                Mat::new(&a, sa),
                Mat::new(&b, sb),
                parallel,
            );
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = 1.0
                        + 0.5
                            * (0..k)
                                .map(|l| {
                                    a[i * sa.rows + l * sa.cols] * b[l * sb.rows + j * sb.cols]
                                })
                                .sum::<f32>();
                    assert!((c[i * n + j] - want).abs() < 1e-5, "({i}, {j})");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "put two elements")]
    fn matmul_refuses_an_output_whose_rows_overlap() {
        let (m, n, k) = (64, 64, 64);
        let a = vec![1.0f32; m * k];
        let b = vec![1.0f32; k * n];
        let mut c = vec![0.0f32; n];
        matmul(
            (m, n, k),
            &mut c,
            Strides { rows: 0, cols: 1 },
            false,
            1.0,
            Mat::new(&a, Strides::row_major(k)),
            Mat::new(&b, Strides::row_major(n)),
            true,
        );
    }

    #[test]
    #[should_panic(expected = "c is too short")]
    fn matmul_refuses_strides_whose_extent_overflows() {
        // Two row steps of 2^63 wrap around to 0 in unchecked arithmetic, which would pass.
        let a = [1.0f32; 6];
        let b = [1.0f32; 4];
        let mut c = [0.0f32; 6];
        matmul(
            (3, 2, 2),
            &mut c,
            Strides {
                rows: usize::MAX / 2 + 1,
                cols: 1,
            },
            false,
            1.0,
            Mat::new(&a, Strides::row_major(2)),
            Mat::new(&b, Strides::row_major(2)),
            false,
        );
    }

    #[test]
    fn output_strides_that_overlap_are_told_apart() {
        let s = |rows, cols| Strides { rows, cols };
        // Row-major and column-major with padding, and single rows or columns.
        assert!(distinct_elements(3, 4, s(4, 1)));
        assert!(distinct_elements(3, 4, s(9, 2)));
        assert!(distinct_elements(3, 4, s(1, 3)));
        assert!(distinct_elements(1, 4, s(0, 1)));
        assert!(distinct_elements(4, 1, s(1, 0)));
        assert!(distinct_elements(0, 4, s(0, 0)));
        // Rows on top of each other, interleaved, or a column stride of 0.
        assert!(!distinct_elements(3, 4, s(0, 1)));
        assert!(!distinct_elements(3, 4, s(3, 1)));
        assert!(!distinct_elements(3, 4, s(4, 0)));
        assert!(!distinct_elements(1, 2, s(5, 0)));
    }
}
