//! The reference: each element decoded on its own, f32 sums in column order, the group's scale applied
//! to each decoded element (as dequantization does).

use std::ops::Range;

use super::PackedRef;
use crate::kernels::YPtr;

/// Same contract as [`super::rows_kernel`].
///
/// # Safety
/// `y` valid for writes at `i·ldy + r` for `r` in `rows`, `i < t`, not accessed by others meanwhile.
pub(super) unsafe fn rows(
    w: &PackedRef<'_>,
    rows: Range<usize>,
    x: &[f32],
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    let mut acc = vec![0.0f32; t]; // [T]
    for r in rows {
        let row = w.row(r);
        let groups = w.groups();
        let p = w.row_params(r, groups);
        acc.fill(0.0);
        for g in 0..groups {
            let (zero, scale) = w.params(p, g);
            for j in g * w.group..((g + 1) * w.group).min(w.cols) {
                let v = (w.code(row, j) - zero) * scale;
                for (i, a) in acc.iter_mut().enumerate() {
                    *a += v * x[i * w.cols + j];
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            // SAFETY: (i, r) is inside the caller's region.
            unsafe { *y.0.add(i * ldy + r) = *a };
        }
    }
}
