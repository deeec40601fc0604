//! Whole-array helpers of the layer kernels: transposes and float64 column sums.

/// Writes the transpose of row-major `m` (`[rows, cols]`) into `out` (`[cols, rows]`).
///
/// # Panics
/// If either slice is shorter than `rows · cols`.
pub fn transpose_into(rows: usize, cols: usize, m: &[f32], out: &mut [f32]) {
    assert!(
        m.len() >= rows * cols && out.len() >= rows * cols,
        "transpose: lengths"
    );
    for (i, row) in m[..rows * cols].chunks_exact(cols.max(1)).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            out[j * rows + i] = v;
        }
    }
}

/// The transpose of row-major `m` (`[rows, cols]`), row-major `[cols, rows]`.
pub fn transpose(rows: usize, cols: usize, m: &[f32]) -> Vec<f32> {
    let mut t = vec![0.0f32; rows * cols];
    transpose_into(rows, cols, m, &mut t);
    t
}

/// Column sums of row-major `m` with `cols` columns (a bias gradient), summed in float64.
pub fn column_sums(cols: usize, m: &[f32]) -> Vec<f32> {
    let mut sums = vec![0.0f64; cols];
    for row in m.chunks_exact(cols.max(1)) {
        for (acc, &v) in sums.iter_mut().zip(row) {
            *acc += f64::from(v);
        }
    }
    sums.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_and_column_sums_from_definition() {
        let m: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let t = transpose(3, 4, &m);
        for i in 0..3 {
            for j in 0..4 {
                assert_eq!(t[j * 3 + i], m[i * 4 + j]);
            }
        }
        assert_eq!(column_sums(4, &m), vec![12.0, 15.0, 18.0, 21.0]);
        assert_eq!(column_sums(2, &[]), vec![0.0, 0.0]);
    }
}
