//! Top-k selection over scores (router choices, DSA key selection).

/// Indices of the `k` largest values, largest first; ties go to the lower index; NaN ranks below
/// every number.
pub(crate) fn top_k_indices(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| descending(v[a], v[b]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Larger first, NaN last: a total order (the standard sort panics on an inconsistent one, which
/// `partial_cmp` with NaN is), equal to `partial_cmp` reversed wherever there is no NaN.
pub(crate) fn descending(a: f32, b: f32) -> std::cmp::Ordering {
    let key = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    key(b)
        .partial_cmp(&key(a))
        .unwrap_or(std::cmp::Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_ranks_last_and_never_breaks_the_sort() {
        // The standard sort checks the order on longer slices: many NaNs among numbers.
        let v: Vec<f32> = (0..200)
            .map(|i| {
                if i % 3 == 0 {
                    f32::NAN
                } else {
                    (i % 17) as f32
                }
            })
            .collect();
        let top = top_k_indices(&v, 200);
        assert_eq!(top.len(), 200);
        let first_nan = top.iter().position(|&i| v[i].is_nan()).unwrap();
        assert!(top[first_nan..].iter().all(|&i| v[i].is_nan()));
        assert!(top[..first_nan].windows(2).all(|w| v[w[0]] >= v[w[1]]));
    }

    #[test]
    fn top_k_is_ordered_and_breaks_ties_towards_lower_index() {
        let v = [0.5, 2.0, 0.5, 3.0, 0.5, -1.0];
        assert_eq!(top_k_indices(&v, 3), vec![3, 1, 0]);
        assert_eq!(top_k_indices(&v, 4), vec![3, 1, 0, 2]);
        assert_eq!(top_k_indices(&v, 10).len(), 6);
        assert!(top_k_indices(&v, 0).is_empty());
    }
}
