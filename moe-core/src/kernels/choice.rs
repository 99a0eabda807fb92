//! Which kernel runs bf16-weight products, chosen by measurement rather than by feature flags.
//!
//! Where the CPU has AVX512_BF16 there are two ways to multiply bf16 weights: VDPBF16PS (dot
//! products of bf16 pairs; the exact mode splits activations into two bf16 halves, so it needs two)
//! and widening the weights to f32 for FMA. Which is faster depends on the core: on AMD Zen 4/5
//! VDPBF16PS wins; on an Intel Xeon measured in issue 17 it ran at half the f32 FMA rate, and
//! widen + FMA gave exact-mode prefill 134–152 tok/s instead of 75–78; on an AMD Zen 5 (EPYC,
//! family 0x1a model 0x2) VDPBF16PS wins in both modes on a real model. [`TABLE`] records what
//! `tools/calibrate_kernels.sh` measured, per CPU (vendor, family, model), product kind and
//! precision; a CPU not in it keeps VDPBF16PS (the better choice in most rows measured so far).
//! The choice depends on nothing but the CPU, so one machine always computes the same numbers;
//! `force_isa` still overrides it.

use std::sync::OnceLock;

use super::{isa, Isa, Precision};

/// The CPU as the table knows it: `cpuid` vendor string and display family and model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuId {
    /// `GenuineIntel`, `AuthenticAMD`, ... (empty off x86-64).
    pub vendor: String,
    /// Display family (base + extended).
    pub family: u32,
    /// Display model (base + extended).
    pub model: u32,
}

impl std::fmt::Display for CpuId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} family {:#x} model {:#x}",
            self.vendor, self.family, self.model
        )
    }
}

/// This machine's CPU.
pub fn cpu_id() -> CpuId {
    static ID: OnceLock<CpuId> = OnceLock::new();
    ID.get_or_init(read_cpu_id).clone()
}

#[cfg(target_arch = "x86_64")]
fn read_cpu_id() -> CpuId {
    use std::arch::x86_64::__cpuid;
    // CPUID exists on every x86-64 CPU; leaves 0 and 1 are always defined.
    let (l0, l1) = (__cpuid(0), __cpuid(1));
    let mut vendor = Vec::with_capacity(12);
    for r in [l0.ebx, l0.edx, l0.ecx] {
        vendor.extend_from_slice(&r.to_le_bytes());
    }
    let base_family = (l1.eax >> 8) & 0xf;
    let base_model = (l1.eax >> 4) & 0xf;
    let family = if base_family == 0xf {
        base_family + ((l1.eax >> 20) & 0xff)
    } else {
        base_family
    };
    let model = if base_family == 0x6 || base_family == 0xf {
        base_model + (((l1.eax >> 16) & 0xf) << 4)
    } else {
        base_model
    };
    CpuId {
        vendor: String::from_utf8_lossy(&vendor).into_owned(),
        family,
        model,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn read_cpu_id() -> CpuId {
    CpuId {
        vendor: String::new(),
        family: 0,
        model: 0,
    }
}

/// The products the table distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProductKind {
    /// Many tokens against a matrix (prefill): arithmetic-bound.
    Prefill,
    /// One token (decode): bandwidth-bound.
    Decode,
}

impl ProductKind {
    /// The kind of a product over `t` tokens.
    pub fn of(t: usize) -> Self {
        if t == 1 {
            ProductKind::Decode
        } else {
            ProductKind::Prefill
        }
    }
}

/// One measured choice.
#[derive(Debug)]
pub struct Row {
    /// `cpuid` vendor string.
    pub vendor: &'static str,
    /// Display family.
    pub family: u32,
    /// Display model; `None` for every model of the family.
    pub model: Option<u32>,
    /// The product kind.
    pub kind: ProductKind,
    /// The precision asked for.
    pub precision: Precision,
    /// The fastest level measured.
    pub isa: Isa,
    /// What the calibration measured (tokens/s or GB/s of each candidate), for the record.
    pub measured: &'static str,
}

/// The measured choices (rows printed by `tools/calibrate_kernels.sh`).
///
/// For one CPU and precision, both product kinds name the same level: a batched decode stacks the
/// sequences' tokens into products of many rows, and each row must get the numbers it gets decoding
/// alone (issue 12: within 1e-5), which two kernels with different arithmetic (an exact f32 product
/// against a split into two bf16 halves) do not give. The level is the one that wins prefill, which
/// is arithmetic-bound; decode streams its weights at about the bandwidth with either.
pub const TABLE: &[Row] = &[
    // Intel Xeon with AVX512_BF16, 2 vCPU, Qwen3-30B-A3B 8-layer shape (issue 17): VDPBF16PS at half
    // the FMA rate. Family 6 covers Sapphire/Emerald/Granite Rapids alike here.
    Row {
        vendor: "GenuineIntel",
        family: 0x6,
        model: None,
        kind: ProductKind::Prefill,
        precision: Precision::F32,
        isa: Isa::Avx512,
        measured: "prefill-512 avx512 134-152 tok/s vs avx512bf16 75-78",
    },
    Row {
        vendor: "GenuineIntel",
        family: 0x6,
        model: None,
        kind: ProductKind::Prefill,
        precision: Precision::Bf16,
        isa: Isa::Avx512,
        measured: "prefill-512 avx512 143-152 tok/s vs avx512bf16 135-138",
    },
    // Decode follows prefill (see `TABLE`): a decode product streams its weights at the bandwidth
    // with either kernel, and the widen + FMA one is what the forced runs used.
    Row {
        vendor: "GenuineIntel",
        family: 0x6,
        model: None,
        kind: ProductKind::Decode,
        precision: Precision::F32,
        isa: Isa::Avx512,
        measured: "not measured apart: follows prefill",
    },
    Row {
        vendor: "GenuineIntel",
        family: 0x6,
        model: None,
        kind: ProductKind::Decode,
        precision: Precision::Bf16,
        isa: Isa::Avx512,
        measured: "not measured apart: follows prefill",
    },
    // AMD EPYC Zen 5 (family 0x1a model 0x2), 2 vCPU, 2026-12-01: `tools/calibrate_kernels.sh
    // --rounds 7`, then the exact mode settled on the Qwen3-30B-A3B 8-layer model (`formats.sh
    // qwen-bf16-exact qwen-bf16-exact-dp`, alternating, run final-exact-ab), where VDPBF16PS won
    // prefill and decode although calibrate's single 4096-column matrix favoured widen + FMA for
    // prefill. VDPBF16PS everywhere: the rows record the measurement.
    Row {
        vendor: "AuthenticAMD",
        family: 0x1a,
        model: Some(0x2),
        kind: ProductKind::Prefill,
        precision: Precision::F32,
        isa: Isa::Avx512Bf16,
        measured: "Qwen3-30B-A3B 8L prefill-512 avx512bf16 174.4 vs avx512 169.5 tok/s \
                   (calibrate's one matrix: avx512 222.8 vs 176.9 GFLOP/s)",
    },
    Row {
        vendor: "AuthenticAMD",
        family: 0x1a,
        model: Some(0x2),
        kind: ProductKind::Prefill,
        precision: Precision::Bf16,
        isa: Isa::Avx512Bf16,
        measured: "avx512 235.3 GFLOP/s vs avx512bf16 350.2 GFLOP/s",
    },
    Row {
        vendor: "AuthenticAMD",
        family: 0x1a,
        model: Some(0x2),
        kind: ProductKind::Decode,
        precision: Precision::F32,
        isa: Isa::Avx512Bf16,
        measured: "Qwen3-30B-A3B 8L decode avx512bf16 22.06 vs avx512 18.86 tok/s \
                   (calibrate's one matrix: 36.3 vs 31.2 GB/s)",
    },
    Row {
        vendor: "AuthenticAMD",
        family: 0x1a,
        model: Some(0x2),
        kind: ProductKind::Decode,
        precision: Precision::Bf16,
        isa: Isa::Avx512Bf16,
        measured: "avx512 25.1 GB/s vs avx512bf16 29.8 GB/s",
    },
];

/// The level bf16-weight products of `kind` run at, for `precision`: the table's choice for this
/// CPU where it has one (and the CPU supports it), else the best level (`isa()`). A level forced
/// with `force_isa` always wins.
pub fn choose(kind: ProductKind, precision: Precision) -> Isa {
    let best = isa();
    if best != Isa::Avx512Bf16 || super::forced() {
        return best;
    }
    lookup(&cpu_id(), kind, precision)
        .filter(|i| i.supported())
        .unwrap_or(best)
}

/// The table's level for `cpu`, `kind` and `precision` (an exact model first, then the family).
pub fn lookup(cpu: &CpuId, kind: ProductKind, precision: Precision) -> Option<Isa> {
    let rows = || {
        TABLE.iter().filter(move |r| {
            r.vendor == cpu.vendor
                && r.family == cpu.family
                && r.kind == kind
                && r.precision == precision
        })
    };
    rows()
        .find(|r| r.model == Some(cpu.model))
        .or_else(|| rows().find(|r| r.model.is_none()))
        .map(|r| r.isa)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_prefers_the_model_then_the_family_then_nothing() {
        let intel = CpuId {
            vendor: "GenuineIntel".into(),
            family: 6,
            model: 0x8f,
        };
        assert_eq!(
            lookup(&intel, ProductKind::Prefill, Precision::F32),
            Some(Isa::Avx512)
        );
        let zen4 = CpuId {
            vendor: "AuthenticAMD".into(),
            family: 0x19,
            model: 0x11,
        };
        assert_eq!(lookup(&zen4, ProductKind::Decode, Precision::F32), None);
        let other = CpuId {
            vendor: "SomeoneElse".into(),
            family: 6,
            model: 0x8f,
        };
        assert_eq!(lookup(&other, ProductKind::Prefill, Precision::F32), None);
    }

    #[test]
    fn both_kinds_agree_for_every_cpu_and_precision() {
        for r in TABLE {
            let cpu = CpuId {
                vendor: r.vendor.into(),
                family: r.family,
                model: r.model.unwrap_or(u32::MAX),
            };
            for kind in [ProductKind::Prefill, ProductKind::Decode] {
                assert_eq!(
                    lookup(&cpu, kind, r.precision),
                    Some(r.isa),
                    "{cpu} {:?} {kind:?}: batched rows must use the level single rows use",
                    r.precision
                );
            }
        }
    }

    #[test]
    fn zen5_rows_pick_vdpbf16ps_in_both_modes() {
        let zen5 = CpuId {
            vendor: "AuthenticAMD".into(),
            family: 0x1a,
            model: 0x2,
        };
        for kind in [ProductKind::Prefill, ProductKind::Decode] {
            for p in [Precision::F32, Precision::Bf16] {
                assert_eq!(
                    lookup(&zen5, kind, p),
                    Some(Isa::Avx512Bf16),
                    "{kind:?} {p:?}"
                );
            }
        }
        let other_model = CpuId {
            model: 0x44,
            ..zen5
        };
        assert_eq!(
            lookup(&other_model, ProductKind::Prefill, Precision::F32),
            None
        );
    }
}
