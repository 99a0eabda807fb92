//! Criterion benchmarks of the product kernels at the shapes of the benchmark models
//! (Qwen3-30B-A3B: hidden 2048, expert intermediate 768, vocab 151936; DeepSeek-V2-Lite: kv_lora 512).
//!
//! `cargo bench -p moe-core --bench kernels` (all levels the CPU has; `-- matvec` to filter).
//! Throughput is reported in bytes of weights for matvec (memory-bound) and in multiply-adds for matmul.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::bf16;
use moe_core::internals::kernels::{self, build_pool, FloatData, Isa, MatRef, Precision};

fn rand_bf16(n: usize, seed: u64) -> Vec<bf16> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            bf16::from_f32(((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04)
        })
        .collect()
}

fn rand_f32(n: usize, seed: u64) -> Vec<f32> {
    rand_bf16(n, seed)
        .iter()
        .map(|v| v.to_f32() * 25.0)
        .collect()
}

fn threads() -> usize {
    std::env::var("MOE_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn matvec(c: &mut Criterion) {
    let pool = build_pool(Some(threads()), Precision::F32).unwrap();
    let mut g = c.benchmark_group("matvec_bf16");
    g.sample_size(20);
    for &(name, rows, cols) in &[
        ("expert_gate_768x2048", 768, 2048),
        ("q_proj_4096x2048", 4096, 2048),
        ("lm_head_151936x2048", 151936, 2048),
    ] {
        let w = rand_bf16(rows * cols, 1);
        let x = rand_f32(cols, 2);
        let mut y = vec![0.0; rows];
        g.throughput(Throughput::Bytes((rows * cols * 2) as u64));
        for isa in kernels::supported_isas() {
            if isa == Isa::Scalar && rows > 10000 {
                continue;
            }
            g.bench_with_input(BenchmarkId::new(name, isa), &isa, |b, &isa| {
                let m = MatRef::new(FloatData::BF16(&w), rows, cols);
                b.iter(|| {
                    pool.install(|| kernels::matmul_t_with(isa, Precision::F32, m, &x, 1, &mut y))
                })
            });
        }
    }
    // The same lm_head product from memory backed by 2 MiB pages (what the machine-limits read
    // test uses), to separate TLB/page effects from the kernel.
    let (rows, cols) = (151936, 2048);
    let mut map = memmap2::MmapMut::map_anon(rows * cols * 2 + (2 << 20)).unwrap();
    let _ = map.advise(memmap2::Advice::HugePage);
    let off = map.as_ptr().align_offset(2 << 20);
    let buf: &mut [bf16] = bytemuck::cast_slice_mut(&mut map[off..off + rows * cols * 2]);
    buf.copy_from_slice(&rand_bf16(rows * cols, 1));
    let x = rand_f32(cols, 2);
    let mut y = vec![0.0; rows];
    g.throughput(Throughput::Bytes((rows * cols * 2) as u64));
    let isa = kernels::isa();
    g.bench_with_input(
        BenchmarkId::new("lm_head_hugepages", isa),
        &isa,
        |b, &isa| {
            let m = MatRef::new(FloatData::BF16(buf), rows, cols);
            b.iter(|| {
                pool.install(|| kernels::matmul_t_with(isa, Precision::F32, m, &x, 1, &mut y))
            })
        },
    );
    g.bench_with_input(
        BenchmarkId::new("lm_head_hugepages_bf16act", isa),
        &isa,
        |b, &isa| {
            let m = MatRef::new(FloatData::BF16(buf), rows, cols);
            b.iter(|| {
                pool.install(|| kernels::matmul_t_with(isa, Precision::Bf16, m, &x, 1, &mut y))
            })
        },
    );
    g.finish();
}

fn matmul(c: &mut Criterion) {
    let pool = build_pool(Some(threads()), Precision::F32).unwrap();
    let mut g = c.benchmark_group("matmul_bf16");
    g.sample_size(10);
    for &(name, rows, cols, t) in &[
        ("expert_768x2048_t32", 768, 2048, 32),
        ("q_proj_4096x2048_t512", 4096, 2048, 512),
    ] {
        let w = rand_bf16(rows * cols, 3);
        let x = rand_f32(t * cols, 4);
        let mut y = vec![0.0; t * rows];
        g.throughput(Throughput::Elements((rows * cols * t) as u64));
        for isa in kernels::supported_isas() {
            if isa == Isa::Scalar {
                continue;
            }
            for prec in [Precision::F32, Precision::Bf16] {
                if prec == Precision::Bf16 && isa != Isa::Avx512Bf16 {
                    continue;
                }
                let id = format!("{isa}/{prec:?}");
                g.bench_with_input(BenchmarkId::new(name, id), &isa, |b, &isa| {
                    let m = MatRef::new(FloatData::BF16(&w), rows, cols);
                    b.iter(|| pool.install(|| kernels::matmul_t_with(isa, prec, m, &x, t, &mut y)))
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, matvec, matmul);
criterion_main!(benches);
