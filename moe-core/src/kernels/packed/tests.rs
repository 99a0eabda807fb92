//! Every supported level against the scalar reference, and the reference against the exactly
//! dequantized matrix, on ragged shapes, for each code kind, scale dtype and zero-point choice.

use half::{bf16, f16};

use super::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn f(&mut self) -> f32 {
        (self.next() % 100_000) as f32 / 100_000.0 - 0.5
    }
}

/// Owned buffers behind a [`PackedRef`].
struct Owned {
    kind: CodeKind,
    codes: Vec<u8>,
    row_bytes: usize,
    rows: usize,
    cols: usize,
    group: usize,
    scales_f32: Vec<f32>,
    scales_bf16: Vec<bf16>,
    scales_f16: Vec<f16>,
    scales_e8m0: Vec<u8>,
    zeros: Option<Vec<u8>>,
}

impl Owned {
    fn random(
        kind: CodeKind,
        rows: usize,
        cols: usize,
        group: usize,
        asym: bool,
        rng: &mut Rng,
    ) -> Self {
        let row_bytes = match kind {
            CodeKind::Mxfp4 => cols / 2,
            k => (cols * k.bits()).div_ceil(32) * 4,
        };
        let groups = cols.div_ceil(group);
        let codes = (0..rows * row_bytes).map(|_| rng.next() as u8).collect();
        let scales_f32: Vec<f32> = (0..rows * groups)
            .map(|_| 0.01 + rng.f().abs() * 0.1)
            .collect();
        let per_word = 32 / kind.bits();
        let zeros = asym.then(|| {
            (0..rows.div_ceil(per_word) * groups * 4)
                .map(|_| rng.next() as u8)
                .collect()
        });
        Owned {
            kind,
            codes,
            row_bytes,
            rows,
            cols,
            group,
            scales_bf16: scales_f32.iter().map(|s| bf16::from_f32(*s)).collect(),
            scales_f16: scales_f32.iter().map(|s| f16::from_f32(*s)).collect(),
            scales_e8m0: (0..rows * groups)
                .map(|_| 120 + (rng.next() % 10) as u8)
                .collect(),
            scales_f32,
            zeros,
        }
    }

    fn view(&self, which: usize) -> PackedRef<'_> {
        let scales = match (self.kind, which) {
            (CodeKind::Mxfp4, _) => Scales::E8M0(&self.scales_e8m0),
            (_, 0) => Scales::BF16(&self.scales_bf16),
            (_, 1) => Scales::F16(&self.scales_f16),
            _ => Scales::F32(&self.scales_f32),
        };
        PackedRef::new(
            self.kind,
            &self.codes,
            self.row_bytes,
            self.rows,
            self.cols,
            self.group,
            scales,
            self.zeros.as_deref(),
        )
        .unwrap()
    }
}

fn cases() -> Vec<(CodeKind, usize, usize, usize, bool)> {
    let mut v = vec![];
    for &(rows, cols, t) in &[
        (1, 32, 1),
        (5, 64, 3),
        (13, 96, 7),
        (37, 160, 2),
        (70, 512, 5),
    ] {
        v.push((CodeKind::Mxfp4, rows, cols, t, false));
        let _ = t;
    }
    for kind in [CodeKind::Int4, CodeKind::Int8] {
        // (24, 256): whole groups of 32 and 128, the decode path's two-accumulator layout.
        for &(rows, cols) in &[
            (1, 1),
            (3, 7),
            (17, 33),
            (9, 100),
            (40, 257),
            (66, 1031),
            (24, 256),
        ] {
            for asym in [false, true] {
                v.push((kind, rows, cols, 0, asym));
            }
        }
    }
    v
}

fn groups_for(kind: CodeKind, cols: usize) -> Vec<usize> {
    match kind {
        CodeKind::Mxfp4 => vec![32],
        _ => vec![32, 128, 6, 7, cols],
    }
}

#[test]
fn packed_reference_is_the_product_with_the_dequantized_matrix() {
    let mut rng = Rng(5);
    for (kind, rows, cols, _, asym) in cases() {
        for group in groups_for(kind, cols) {
            let o = Owned::random(kind, rows, cols, group, asym, &mut rng);
            for which in 0..3 {
                let w = o.view(which);
                let t = 3;
                let x: Vec<f32> = (0..t * cols).map(|_| rng.f()).collect();
                let mut y = vec![0.0; t * rows];
                packed_matmul_t_with(Isa::Scalar, Precision::F32, &w, &x, t, &mut y);
                for i in 0..t {
                    for r in 0..rows {
                        let want: f64 = (0..cols)
                            .map(|j| w.value(r, j) as f64 * x[i * cols + j] as f64)
                            .sum();
                        let got = y[i * rows + r] as f64;
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{kind:?} {rows}x{cols} g{group}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_isa_matches_scalar_on_ragged_shapes() {
    let mut rng = Rng(9);
    for isa in crate::kernels::supported_isas() {
        for (kind, rows, cols, _, asym) in cases() {
            for group in groups_for(kind, cols) {
                let o = Owned::random(kind, rows, cols, group, asym, &mut rng);
                for which in 0..3 {
                    let w = o.view(which);
                    for t in [1, 2, 5, 9] {
                        let x: Vec<f32> = (0..t * cols).map(|_| rng.f()).collect();
                        let (mut a, mut b) = (vec![0.0; t * rows], vec![0.0; t * rows]);
                        packed_matmul_t_with(Isa::Scalar, Precision::F32, &w, &x, t, &mut a);
                        packed_matmul_t_with(isa, Precision::F32, &w, &x, t, &mut b);
                        for (p, q) in a.iter().zip(&b) {
                            assert!(
                                (p - q).abs() <= 1e-4 * (1.0 + p.abs()),
                                "{isa} {kind:?} {rows}x{cols} g{group} t{t} asym={asym}: {p} vs {q}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn codes_decode_as_the_formats_define() {
    // e2m1: 0b0111 = 6, 0b1001 = -0.5; e8m0 127 = 1, 128 = 2.
    assert_eq!(e8m0(127), 1.0);
    assert_eq!(e8m0(128), 2.0);
    assert_eq!(e8m0(1), 2f32.powi(-126));
    assert!(e8m0(255).is_nan());
    let codes = [0x97u8; 16]; // low nibble 7 (6.0), high nibble 9 (-0.5)
    let scales = [128u8];
    let w = PackedRef::new(
        CodeKind::Mxfp4,
        &codes,
        16,
        1,
        32,
        32,
        Scales::E8M0(&scales),
        None,
    )
    .unwrap();
    assert_eq!((w.value(0, 0), w.value(0, 1)), (12.0, -1.0));
    // int4 word 0x0000_00f8: element 0 stored 8 (0), element 1 stored 15 (7), others stored 0 (-8).
    let word = 0x0000_00f8u32.to_le_bytes();
    let s = [bf16::from_f32(0.5)];
    let w = PackedRef::new(CodeKind::Int4, &word, 4, 1, 8, 8, Scales::BF16(&s), None).unwrap();
    assert_eq!(
        (w.value(0, 0), w.value(0, 1), w.value(0, 2)),
        (0.0, 3.5, -4.0)
    );
    // int8 with a zero point stored 130 (2): element 0 stored 140 → (12 - 2)·0.5.
    let word = [140u8, 128, 0, 255];
    let z = 130u32.to_le_bytes();
    let w = PackedRef::new(
        CodeKind::Int8,
        &word,
        4,
        1,
        4,
        4,
        Scales::BF16(&s),
        Some(&z),
    )
    .unwrap();
    assert_eq!(
        (w.value(0, 0), w.value(0, 1), w.value(0, 2), w.value(0, 3)),
        (5.0, -1.0, -65.0, 62.5)
    );
}

#[test]
fn layouts_that_do_not_cover_the_matrix_are_refused() {
    let codes = [0u8; 16];
    let s = [0u8; 1];
    assert!(PackedRef::new(
        CodeKind::Mxfp4,
        &codes,
        16,
        1,
        32,
        32,
        Scales::E8M0(&s[..0]),
        None
    )
    .is_err());
    assert!(PackedRef::new(
        CodeKind::Mxfp4,
        &codes,
        8,
        2,
        16,
        32,
        Scales::E8M0(&s),
        None
    )
    .is_err());
    assert!(PackedRef::new(
        CodeKind::Int4,
        &codes,
        4,
        4,
        9,
        9,
        Scales::E8M0(&[0; 4]),
        None
    )
    .is_err());
}

#[test]
fn e4m3_bit_placement_is_the_format_for_every_non_nan_byte() {
    for b in 0..=255u8 {
        let want = crate::layers::decode_e4m3(b);
        if want.is_nan() {
            continue;
        }
        assert_eq!(e4m3(b).to_bits(), want.to_bits(), "byte {b:#04x}");
    }
}

#[test]
fn fp8_blocks_every_isa_matches_the_dequantized_matrix() {
    let mut rng = Rng(21);
    for &(rows, cols, br, bc) in &[
        (1usize, 1usize, 128usize, 128usize),
        (5, 33, 8, 16),
        (40, 64, 32, 32),
        (12, 256, 128, 128),
        (37, 100, 3, 5),
        (130, 257, 128, 128),
        (66, 520, 16, 48),
    ] {
        let codes: Vec<u8> = (0..rows * cols)
            .map(|_| {
                let b = rng.next() as u8;
                if b & 0x7f == 0x7f {
                    b ^ 1
                } else {
                    b
                }
            })
            .collect();
        let scales: Vec<f32> = (0..rows.div_ceil(br) * cols.div_ceil(bc))
            .map(|_| 0.01 + rng.f().abs() * 0.05)
            .collect();
        let w = PackedRef::fp8(&codes, rows, cols, (br, bc), &scales).unwrap();
        for t in [1, 3, 6] {
            let x: Vec<f32> = (0..t * cols).map(|_| rng.f()).collect();
            let mut want = vec![0.0f32; t * rows];
            for i in 0..t {
                for r in 0..rows {
                    want[i * rows + r] = (0..cols)
                        .map(|j| {
                            let s = scales[(r / br) * cols.div_ceil(bc) + j / bc] as f64;
                            crate::layers::decode_e4m3(codes[r * cols + j]) as f64
                                * s
                                * x[i * cols + j] as f64
                        })
                        .sum::<f64>() as f32;
                }
            }
            for isa in crate::kernels::supported_isas() {
                let mut y = vec![0.0; t * rows];
                packed_matmul_t_with(isa, Precision::F32, &w, &x, t, &mut y);
                for (p, q) in want.iter().zip(&y) {
                    assert!(
                        (p - q).abs() <= 1e-4 * (1.0 + p.abs()),
                        "{isa} {rows}x{cols} {br}x{bc} t{t}: {p} vs {q}"
                    );
                }
            }
        }
    }
    assert!(PackedRef::fp8(&[0; 4], 2, 2, (1, 1), &[0.0; 3]).is_err());
}

/// The int8-activation mode: the VNNI kernel computes exactly the integer arithmetic of its
/// reference, and differs from the exact mode by no more than the activations' rounding allows.
#[test]
fn int8_activation_mode_matches_its_reference_and_its_error_bound() {
    let mut rng = Rng(33);
    let mut int8_ran = false;
    for kind in [CodeKind::Int4, CodeKind::Int8] {
        for &(rows, cols) in &[(1usize, 32usize), (7, 64), (37, 160), (70, 512)] {
            for group in [32, 64, cols] {
                if group > cols || !group.is_multiple_of(32) {
                    continue;
                }
                for asym in [false, true] {
                    let o = Owned::random(kind, rows, cols, group, asym, &mut rng);
                    let w = o.view(0);
                    assert!(int8act::usable(&w));
                    for t in [1, 3, 6] {
                        let x: Vec<f32> = (0..t * cols).map(|_| rng.f()).collect();
                        let a = int8act::quantize(&x, t, cols);
                        let want = int8act::rows_reference(&w, &a, t);
                        let mut exact = vec![0.0; t * rows];
                        packed_matmul_t_with(Isa::Scalar, Precision::F32, &w, &x, t, &mut exact);
                        for isa in crate::kernels::supported_isas() {
                            let mut y = vec![0.0; t * rows];
                            packed_matmul_t_with(isa, Precision::Int8, &w, &x, t, &mut y);
                            let int8 = int8act::kernel_for(isa, &w).is_some();
                            for i in 0..t {
                                for r in 0..rows {
                                    let (p, e) = (y[i * rows + r], exact[i * rows + r]);
                                    if int8 {
                                        int8_ran |= p != e;
                                        let q = want[i * rows + r];
                                        assert!(
                                            (p - q).abs() <= 1e-5 * (1.0 + q.abs()),
                                            "{isa} {kind:?} {rows}x{cols} g{group}: {p} vs {q}"
                                        );
                                    }
                                    // |Δy| <= Σ_j |w_j|·s_b(j)/2.
                                    let bound: f32 = (0..cols)
                                        .map(|j| {
                                            w.value(r, j).abs() * a.scale[(i * cols + j) / 32] / 2.0
                                        })
                                        .sum();
                                    assert!(
                                        (p - e).abs() <= bound * 1.01 + 1e-5,
                                        "{isa} {kind:?} {rows}x{cols}: {p} vs exact {e}, bound {bound}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(
        int8_ran,
        crate::kernels::Isa::Avx2.supported() || crate::kernels::Isa::Neon.supported(),
        "an int8-activation kernel ran where one exists"
    );
}
