//! Top-k selection over scores (router choices, DSA key selection).

/// Indices of the `k` largest values, largest first; ties go to the lower index.
pub(crate) fn top_k_indices(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| {
        v[b].partial_cmp(&v[a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_is_ordered_and_breaks_ties_towards_lower_index() {
        let v = [0.5, 2.0, 0.5, 3.0, 0.5, -1.0];
        assert_eq!(top_k_indices(&v, 3), vec![3, 1, 0]);
        assert_eq!(top_k_indices(&v, 4), vec![3, 1, 0, 2]);
        assert_eq!(top_k_indices(&v, 10).len(), 6);
        assert!(top_k_indices(&v, 0).is_empty());
    }
}
