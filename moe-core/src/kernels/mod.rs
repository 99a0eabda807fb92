//! The hot math: products of stored-dtype weights with f32 activations, and the small pointwise ops.
//!
//! Weights arrive as [`FloatData`] (bf16 / f16 / f32 borrowed from the checkpoint map); activations and
//! accumulators are f32. `scalar` holds the reference implementations; `x86` (AVX-512 with VDPBF16PS,
//! AVX2+FMA) and `neon` the fast paths, chosen once at run time ([`isa`]); a program may pick another
//! supported level explicitly with [`force_isa`] before the first product (for comparisons).
//!
//! Products are split over the rayon pool the caller runs in by rows of the weight (so decode, one
//! token, keeps every core streaming its own slice of each matrix). A model may own a dedicated pool
//! ([`build_pool`]) that also fixes the [`Precision`] of its products.

mod choice;
mod float_data;
#[cfg(target_arch = "aarch64")]
mod neon;
pub(crate) mod packed;
pub(crate) mod scalar;
mod topk;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::cell::Cell;
use std::ops::Range;
use std::sync::OnceLock;

use rayon::prelude::*;

pub use choice::{choose, cpu_id, lookup, CpuId, ProductKind, Row, TABLE};
pub use float_data::FloatData;
pub(crate) use topk::{descending, top_k_indices};

/// Below this many multiply-adds a product runs on the calling thread.
const PAR_THRESHOLD: usize = 1 << 16;

/// An instruction-set level the kernels can run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust (the reference, and the fallback everywhere).
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VL (weights widened to f32, FMA).
    Avx512,
    /// AVX-512 plus AVX512_BF16: bf16 weights use VDPBF16PS.
    Avx512Bf16,
    /// aarch64 NEON.
    Neon,
}

impl Isa {
    fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Bf16 => "avx512bf16",
            Isa::Neon => "neon",
        }
    }

    /// Whether this CPU can run kernels of this level.
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Bf16 => Isa::Avx512.supported() && is_x86_feature_detected!("avx512bf16"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every level this CPU supports, slowest first.
pub fn supported_isas() -> Vec<Isa> {
    [
        Isa::Scalar,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Avx512Bf16,
        Isa::Neon,
    ]
    .into_iter()
    .filter(|i| i.supported())
    .collect()
}

static ISA: OnceLock<Isa> = OnceLock::new();

/// Whether `force_isa` fixed the level (then it also overrides the measured choice table).
static FORCED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the level was forced with [`force_isa`].
pub(crate) fn forced() -> bool {
    FORCED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The level the kernels use: the best this CPU supports, unless [`force_isa`] chose another.
pub fn isa() -> Isa {
    *ISA.get_or_init(|| {
        let best = *supported_isas().last().expect("scalar is always supported");
        log::debug!("kernel level: {best} (supported: {:?})", supported_isas());
        best
    })
}

/// Makes every product of this process use `level` (named as [`Isa`]'s `Display`: `scalar`, `avx2`,
/// `avx512`, `avx512bf16`, `neon`). Must be called before the first product; fails if `level` is unknown,
/// not supported by this CPU, or another level is already in use.
pub fn force_isa(level: &str) -> Result<Isa, String> {
    let all = supported_isas();
    let want = all
        .iter()
        .copied()
        .find(|i| i.name() == level)
        .ok_or_else(|| {
            format!("kernel level {level:?} is unknown or unsupported here (supported: {all:?})")
        })?;
    let got = *ISA.get_or_init(|| want);
    if got == want {
        FORCED.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(got)
    } else {
        Err(format!("kernel level already fixed to {got}"))
    }
}

/// How activations meet bf16 weights in products.
///
/// The default is [`Precision::Bf16`], the library's default for bf16 checkpoints (as llama.cpp's
/// BF16 path and PyTorch bf16 compute): a model loaded without [`ComputeOptions`](crate::ComputeOptions)
/// runs its bf16-weight products at it. [`Precision::F32`] is the exact mode (the reference's
/// results, ~1e-4 on the test models' logits), one option away in every binding. Products with
/// f32/f16 weights and packed FP8/int4/int8 weights are the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// The exact mode: f32 activations, the result is the f32 product of the stored weights with
    /// the activations (on AVX512_BF16 the activations are split into two bf16 halves, ~16 bits
    /// each).
    F32,
    /// The default: activations rounded to bf16 in products with bf16 weights, like llama.cpp's
    /// BF16 path and PyTorch bf16: twice the arithmetic rate in prefill, ~3% less work per byte in
    /// decode, ~3 significant digits per product. Where the level chosen for a product has no bf16
    /// arithmetic (AVX2, NEON, the widen + FMA choice of kernels/choice.rs) the product stays exact.
    #[default]
    Bf16,
    /// Products with packed int4/int8 weights quantize the activations to int8 per token and block of
    /// 32 and use integer dot products (AVX512-VNNI, AVX2 or NEON; elsewhere they stay exact): each
    /// activation rounded to 2^-8 of its block's largest magnitude, so not the exact mode (~4e-2 on
    /// the test models' logits, more where an expert choice flips). Every other product keeps f32 as
    /// [`Precision::F32`].
    Int8,
}

impl Precision {
    /// The library's default, [`Precision::Bf16`] (= `Precision::default()`, usable in constants).
    pub const DEFAULT: Precision = Precision::Bf16;

    /// The mode's name as the bindings and examples spell it: `"f32"`, `"bf16"` or `"int8"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "int8" => Ok(Precision::Int8),
            other => Err(format!(
                "precision must be f32, bf16 or int8, not {other:?}"
            )),
        }
    }
}

thread_local! {
    /// Threads of a model's pool hold its precision (set by [`build_pool`]); every other thread
    /// (the caller's, rayon's global pool, a pool of the application) the default, which is the
    /// precision of a model loaded without a dedicated pool.
    static PRECISION: Cell<Precision> = const { Cell::new(Precision::DEFAULT) };
}

/// The precision of products started on this thread (set by a model's pool, see [`build_pool`]).
pub(crate) fn current_precision() -> Precision {
    PRECISION.with(|p| p.get())
}

/// Sets the precision of products started on this thread.
pub(crate) fn set_thread_precision(p: Precision) {
    PRECISION.with(|c| c.set(p));
}

/// A pool over every core at `precision`, built on first use and shared by the models without a
/// dedicated pool that are called from a thread of another precision (a worker of another
/// model's pool): their products must not run at that pool's precision.
pub(crate) fn shared_pool(precision: Precision) -> &'static rayon::ThreadPool {
    static POOLS: [OnceLock<rayon::ThreadPool>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = match precision {
        Precision::F32 => 0,
        Precision::Bf16 => 1,
        Precision::Int8 => 2,
    };
    POOLS[i].get_or_init(|| build_pool(None, precision).expect("building the shared thread pool"))
}

/// A rayon pool of `threads` workers (all cores when `None`) whose products run at `precision`.
pub fn build_pool(
    threads: Option<usize>,
    precision: Precision,
) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    let n = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    rayon::ThreadPoolBuilder::new()
        .num_threads(n.max(1))
        .thread_name(|i| format!("moe-worker-{i}"))
        .start_handler(move |_| set_thread_precision(precision))
        .build()
}

/// Runs `f` on `pool` while its other workers poll for work instead of sleeping.
///
/// A decode step is a few hundred short parallel products separated by short sequential steps; an
/// idle rayon worker falls asleep within microseconds, and waking it costs tens of microseconds on
/// a VM — a sizeable share of a step that streams ~1.5 GB in ~40 ms. The helpers (one per other
/// worker) run [`rayon::yield_now`] in a loop, executing whatever `f` splits off, until `f` returns
/// or they have found no work for [`SPIN_IDLE`] (so a helper that lands under `f` on the same worker
/// never holds it up for longer).
pub(crate) fn run_spinning<R: Send>(pool: &rayon::ThreadPool, f: impl FnOnce() -> R + Send) -> R {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;
    struct Done(Arc<AtomicBool>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    let done = Done(Arc::new(AtomicBool::new(false)));
    for _ in 1..pool.current_num_threads() {
        let flag = done.0.clone();
        pool.spawn(move || {
            let mut idle_since = Instant::now();
            while !flag.load(Ordering::Acquire) {
                match rayon::yield_now() {
                    Some(rayon::Yield::Executed) => idle_since = Instant::now(),
                    _ => {
                        if idle_since.elapsed() > SPIN_IDLE {
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
            }
        });
    }
    let _done = done;
    pool.install(f)
}

/// How long a [`run_spinning`] helper polls without finding work before it gives up.
pub(crate) const SPIN_IDLE: std::time::Duration = std::time::Duration::from_millis(1);

/// A row-major weight matrix borrowed in its stored dtype.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    /// Elements, row-major, in the stored dtype.
    pub data: FloatData<'a>,
    /// Rows (outputs of `x·Wᵀ`).
    pub rows: usize,
    /// Columns (inputs of `x·Wᵀ`).
    pub cols: usize,
}

impl<'a> MatRef<'a> {
    /// A `[rows, cols]` view of `data` (which must hold `rows * cols` elements).
    pub fn new(data: FloatData<'a>, rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "matrix data does not match {rows}x{cols}"
        );
        MatRef { data, rows, cols }
    }

    #[inline]
    /// Row `r`.
    pub fn row(&self, r: usize) -> FloatData<'a> {
        self.data.slice(r * self.cols..(r + 1) * self.cols)
    }
}

/// The output pointer shared by the workers of one product; each writes a disjoint set of rows.
#[derive(Clone, Copy)]
pub(crate) struct YPtr(pub(crate) *mut f32);

// SAFETY: workers of one product write disjoint elements (distinct weight rows) through the pointer,
// and the product returns only after every worker finished.
unsafe impl Send for YPtr {}
// SAFETY: as above.
unsafe impl Sync for YPtr {}

/// Activations prepared for one product.
enum Act<'a> {
    F32(&'a [f32]),
    /// bf16 bit patterns, `lo` the bf16 of the rounding remainder when f32 precision is kept.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Bf16 {
        hi: Vec<u16>,
        lo: Option<Vec<u16>>,
    },
}

impl<'a> Act<'a> {
    fn prepare(isa: Isa, w: &MatRef<'_>, x: &'a [f32], t: usize, precision: Precision) -> Self {
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512Bf16 && matches!(w.data, FloatData::BF16(_)) {
            let mut hi = vec![0u16; x.len()];
            let keep_f32 = precision != Precision::Bf16;
            let mut lo = keep_f32.then(|| vec![0u16; x.len()]);
            // SAFETY: Avx512Bf16 is only chosen where its features were detected.
            unsafe { x86::split_bf16_512(x, &mut hi, lo.as_deref_mut()) };
            return Act::Bf16 { hi, lo };
        }
        let _ = (isa, w, t, precision);
        Act::F32(x)
    }
}

/// Computes the rows `rows` of `y[i·ldy + r] = W[r,:]·x[i,:]` for every token `i < t`.
///
/// # Safety
/// `y` must be valid for writes at those elements and no other thread may access them meanwhile;
/// `isa` must be supported; `w` and `x` have the shapes the caller checked.
unsafe fn rows_kernel(
    isa: Isa,
    w: &MatRef<'_>,
    act: &Act<'_>,
    rows: Range<usize>,
    t: usize,
    y: YPtr,
    ldy: usize,
) {
    let cols = w.cols;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `isa` was checked by `Isa::supported` (so are its CPU features); shapes and the
        // output region are the caller's guarantee.
        unsafe {
            match (isa, act, w.data) {
                (Isa::Avx512Bf16, Act::Bf16 { hi, lo }, FloatData::BF16(d)) => {
                    return x86::rows_bf16dp(d, cols, rows, hi, lo.as_deref(), t, y, ldy)
                }
                (Isa::Avx512 | Isa::Avx512Bf16, Act::F32(x), d) => {
                    return match d {
                        FloatData::F32(d) => x86::rows_fma512_f32(d, cols, rows, x, t, y, ldy),
                        FloatData::F16(d) => x86::rows_fma512_f16(d, cols, rows, x, t, y, ldy),
                        FloatData::BF16(d) => x86::rows_fma512_bf16(d, cols, rows, x, t, y, ldy),
                    }
                }
                (Isa::Avx2, Act::F32(x), d) => {
                    return match d {
                        FloatData::F32(d) => x86::rows_fma256_f32(d, cols, rows, x, t, y, ldy),
                        FloatData::F16(d) => x86::rows_fma256_f16(d, cols, rows, x, t, y, ldy),
                        FloatData::BF16(d) => x86::rows_fma256_bf16(d, cols, rows, x, t, y, ldy),
                    }
                }
                _ => {}
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    if let (Isa::Neon, Act::F32(x)) = (isa, act) {
        // SAFETY: the caller's guarantee on shapes and the output region.
        unsafe {
            match w.data {
                FloatData::F32(d) => return neon::rows_f32(d, cols, rows, x, t, y, ldy),
                FloatData::BF16(d) => return neon::rows_bf16(d, cols, rows, x, t, y, ldy),
                FloatData::F16(_) => {}
            }
        }
    }
    let x = match act {
        Act::F32(x) => *x,
        Act::Bf16 { .. } => unreachable!("bf16 activations are prepared only for AVX512_BF16"),
    };
    let mut row = vec![0.0f32; cols];
    for r in rows {
        w.data.widen_into(r * cols..(r + 1) * cols, &mut row);
        for i in 0..t {
            let v = scalar::dot_f32(&row, &x[i * cols..(i + 1) * cols]);
            // SAFETY: (i, r) is inside the caller's region.
            unsafe { *y.0.add(i * ldy + r) = v };
        }
    }
}

/// `y[T, rows] = x[T, cols]·Wᵀ` at level `isa` and `precision`, rows split over the current pool.
pub fn matmul_t_with(
    isa: Isa,
    precision: Precision,
    w: MatRef<'_>,
    x: &[f32],
    t: usize,
    y: &mut [f32],
) {
    assert_eq!(x.len(), t * w.cols, "activations do not match the weight");
    assert_eq!(y.len(), t * w.rows, "output does not match the weight");
    let isa = if isa.supported() { isa } else { Isa::Scalar };
    if w.rows == 0 || t == 0 {
        return;
    }
    let act = Act::prepare(isa, &w, x, t, precision);
    let yp = YPtr(y.as_mut_ptr());
    let work = w.rows * w.cols * t;
    let threads = rayon::current_num_threads();
    if work < PAR_THRESHOLD || threads == 1 {
        // SAFETY: `y` is exclusively borrowed and has t·rows elements.
        unsafe { rows_kernel(isa, &w, &act, 0..w.rows, t, yp, w.rows) };
        return;
    }
    // Rows per task: a multiple of 16, about 4 tasks per thread (2 for one token, whose tasks are
    // short streams where each split costs a visible share), none smaller than the threshold.
    let min_rows = (PAR_THRESHOLD / (w.cols * t).max(1)).max(1);
    let split = if t == 1 { 2 } else { 4 };
    let per = w.rows.div_ceil(threads * split).max(min_rows).div_ceil(16) * 16;
    let tasks = w.rows.div_ceil(per);
    (0..tasks).into_par_iter().for_each(|c| {
        let rows = c * per..((c + 1) * per).min(w.rows);
        // SAFETY: tasks own disjoint row ranges of `y`, which outlives the parallel loop.
        unsafe { rows_kernel(isa, &w, &act, rows, t, yp, w.rows) };
    });
}

/// `y[T, rows] = x[T, cols] · Wᵀ` for a weight stored `[rows, cols]` (a `nn.Linear` weight).
pub(crate) fn matmul_t(w: MatRef<'_>, x: &[f32], t: usize, y: &mut [f32]) {
    let precision = current_precision();
    let level = match w.data {
        // bf16 weights: the measured choice between VDPBF16PS and widen + FMA (kernels/choice.rs).
        FloatData::BF16(_) => choose(ProductKind::of(t), precision),
        FloatData::F32(_) | FloatData::F16(_) => isa(),
    };
    matmul_t_with(level, precision, w, x, t, y);
}

/// `y[T, cols] = x[T, rows] · W` for a weight stored `[rows = in, cols = out]` (fused expert tensors
/// of gpt-oss and Llama 4, MLA's key absorption). Output columns are split over the pool; each task
/// widens its slice of every weight row once and adds it to every token.
pub(crate) fn matmul_n(w: MatRef<'_>, x: &[f32], t: usize, y: &mut [f32]) {
    y.fill(0.0);
    matmul_n_add(w, x, t, y);
}

/// `y[T, cols] += x[T, rows] · W`, as [`matmul_n`] but adding to `y`: each output accumulates the
/// weight rows in order, so products over consecutive row ranges of one matrix, added into one `y`
/// one after another, equal the product over the whole matrix bit for bit.
pub(crate) fn matmul_n_add(w: MatRef<'_>, x: &[f32], t: usize, y: &mut [f32]) {
    assert_eq!(x.len(), t * w.rows, "activations do not match the weight");
    assert_eq!(y.len(), t * w.cols, "output does not match the weight");
    if w.cols == 0 || t == 0 {
        return;
    }
    let block = 256.min(w.cols);
    let run = |c0: usize, yp: YPtr| {
        let c1 = (c0 + block).min(w.cols);
        #[cfg(target_arch = "x86_64")]
        if matches!(isa(), Isa::Avx512 | Isa::Avx512Bf16) {
            // SAFETY: the level's features were detected; the shapes were checked above and
            // columns c0..c1 of `y` belong to this task only.
            unsafe { x86::n_fma512(w.data, w.rows, w.cols, c0..c1, x, t, yp) };
            return;
        }
        let mut buf = vec![0.0f32; c1 - c0];
        for r in 0..w.rows {
            w.data
                .widen_into(r * w.cols + c0..r * w.cols + c1, &mut buf);
            for i in 0..t {
                let a = x[i * w.rows + r];
                if a != 0.0 {
                    // SAFETY: columns c0..c1 of token i belong to this task only; `y` has t·cols.
                    let yi = unsafe {
                        std::slice::from_raw_parts_mut(yp.0.add(i * w.cols + c0), c1 - c0)
                    };
                    axpy_f32(a, &buf, yi);
                }
            }
        }
    };
    let yp = YPtr(y.as_mut_ptr());
    if w.rows * w.cols * t < PAR_THRESHOLD || rayon::current_num_threads() == 1 {
        for c0 in (0..w.cols).step_by(block) {
            run(c0, yp);
        }
    } else {
        (0..w.cols.div_ceil(block))
            .into_par_iter()
            .for_each(|b| run(b * block, yp));
    }
}

/// `Σ a[i]·b[i]` over f32 (attention scores).
#[inline]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match isa() {
        // SAFETY: the level's features were detected.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx512Bf16 => unsafe { x86::dot_f32_512(a, b) },
        // SAFETY: the level's features were detected.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::dot_f32_256(a, b) },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::dot_f32(a, b),
        _ => scalar::dot_f32(a, b),
    }
}

/// Softmax numerators in place: `v[i] = e^(v[i]·scale - shift)`; returns their sum.
pub(crate) fn exp_sum(v: &mut [f32], scale: f32, shift: f32) -> f32 {
    match isa() {
        // SAFETY: the level's features were detected.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx512Bf16 => unsafe { x86::exp_sum_512(v, scale, shift) },
        _ => {
            let mut sum = 0.0;
            for x in v.iter_mut() {
                *x = (*x * scale - shift).exp();
                sum += *x;
            }
            sum
        }
    }
}

/// `y += a·x` over f32 (attention's weighted sums).
#[inline]
pub(crate) fn axpy_f32(a: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    match isa() {
        // SAFETY: the level's features were detected.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 | Isa::Avx512Bf16 => unsafe { x86::axpy_f32_512(a, x, y) },
        // SAFETY: the level's features were detected.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { x86::axpy_f32_256(a, x, y) },
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::axpy_f32(a, x, y),
        _ => scalar::axpy(a, FloatData::F32(x), y),
    }
}

/// In-place RMSNorm of each `w.len()`-sized row: `x = w ⊙ x / sqrt(mean(x²) + eps)`.
pub(crate) fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(w.len()) {
        let inv = rms_inv(row, eps);
        for (v, g) in row.iter_mut().zip(w) {
            *v = *v * inv * g;
        }
    }
}

/// In-place weightless RMS (L2) norm of each `dim`-sized row.
pub(crate) fn rms_norm_plain(x: &mut [f32], dim: usize, eps: f32) {
    for row in x.chunks_exact_mut(dim) {
        let inv = rms_inv(row, eps);
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

fn rms_inv(row: &[f32], eps: f32) -> f32 {
    let ms = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    1.0 / (ms + eps).sqrt()
}

/// In-place LayerNorm of each row with affine weight and bias.
pub(crate) fn layer_norm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let n = w.len() as f32;
    for row in x.chunks_exact_mut(w.len()) {
        let mean = row.iter().sum::<f32>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), bb) in row.iter_mut().zip(w).zip(b) {
            *v = (*v - mean) * inv * g + bb;
        }
    }
}

/// In-place softmax.
pub(crate) fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    x.iter_mut().for_each(|v| *v /= sum);
}

#[inline]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[inline]
pub(crate) fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// `a += b`.
pub(crate) fn add_assign(a: &mut [f32], b: &[f32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    fn rand_vec(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    #[test]
    fn matmul_t_matches_naive_on_ragged_shapes() {
        let mut seed = 7;
        for &(rows, cols, t) in &[
            (1, 1, 1),
            (3, 7, 1),
            (17, 33, 5),
            (300, 260, 3),
            (65, 1031, 2),
        ] {
            let w32 = rand_vec(rows * cols, &mut seed);
            let wb: Vec<bf16> = w32.iter().map(|v| bf16::from_f32(*v)).collect();
            let x = rand_vec(t * cols, &mut seed);
            let mut y = vec![0.0; t * rows];
            // The exact mode (a pool's threads hold its precision; others the default, bf16).
            build_pool(Some(2), Precision::F32)
                .unwrap()
                .install(|| matmul_t(MatRef::new(FloatData::BF16(&wb), rows, cols), &x, t, &mut y));
            for i in 0..t {
                for r in 0..rows {
                    let want: f64 = (0..cols)
                        .map(|c| wb[r * cols + c].to_f64() * x[i * cols + c] as f64)
                        .sum();
                    assert!(
                        (y[i * rows + r] as f64 - want).abs() < 1e-4,
                        "{rows}x{cols} t={t}"
                    );
                }
            }
        }
    }

    /// Every supported level, both precisions, all three weight dtypes, on shapes with ragged edges
    /// in every dimension (rows not a multiple of the 4-row tile, cols not a multiple of 8/16/32,
    /// tokens not a multiple of the 2/6-token tile), against the scalar path.
    #[test]
    fn every_isa_matches_scalar_on_ragged_shapes() {
        let mut seed = 11;
        let shapes = [
            (1, 1, 1),
            (5, 3, 1),
            (7, 31, 2),
            (13, 33, 7),
            (64, 64, 6),
            (37, 100, 13),
            (130, 257, 1),
            (9, 1031, 3),
            (300, 520, 17),
        ];
        let pool = build_pool(Some(2), Precision::F32).unwrap();
        for &(rows, cols, t) in &shapes {
            let w32 = rand_vec(rows * cols, &mut seed);
            let wb: Vec<bf16> = w32.iter().map(|v| bf16::from_f32(*v)).collect();
            let wh: Vec<half::f16> = w32.iter().map(|v| half::f16::from_f32(*v)).collect();
            let x = rand_vec(t * cols, &mut seed);
            for data in [
                FloatData::F32(&w32),
                FloatData::F16(&wh),
                FloatData::BF16(&wb),
            ] {
                let w = MatRef::new(data, rows, cols);
                let mut want = vec![0.0; t * rows];
                matmul_t_with(Isa::Scalar, Precision::F32, w, &x, t, &mut want);
                // Σ|w||x| per output bounds the rounding error of a dot product.
                let mag: Vec<f32> = (0..t * rows)
                    .map(|o| {
                        let (i, r) = (o / rows, o % rows);
                        (0..cols)
                            .map(|c| (data.get(r * cols + c) * x[i * cols + c]).abs())
                            .sum()
                    })
                    .collect();
                for isa in supported_isas() {
                    for (prec, tol) in [(Precision::F32, 1e-4), (Precision::Bf16, 1e-2)] {
                        let mut got = vec![f32::NAN; t * rows];
                        pool.install(|| matmul_t_with(isa, prec, w, &x, t, &mut got));
                        for o in 0..t * rows {
                            assert!(
                                (got[o] - want[o]).abs() <= tol * mag[o] + 1e-6,
                                "{isa} {prec:?} {rows}x{cols} t={t} out {o}: {} vs {}",
                                got[o],
                                want[o]
                            );
                        }
                        let err: f32 = got.iter().zip(&want).map(|(a, b)| (a - b) * (a - b)).sum();
                        let norm: f32 = want.iter().map(|v| v * v).sum();
                        if prec == Precision::F32 {
                            assert!(
                                err.sqrt() <= 1e-4 * norm.sqrt() + 1e-6,
                                "{isa} {rows}x{cols}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn exp_sum_matches_libm() {
        let mut seed = 17;
        for n in [0, 1, 5, 16, 33, 300] {
            let base: Vec<f32> = rand_vec(n, &mut seed).iter().map(|v| v * 60.0).collect();
            let mut v = base.clone();
            let sum = exp_sum(&mut v, 0.7, 3.0);
            let want: Vec<f64> = base.iter().map(|x| (*x as f64 * 0.7 - 3.0).exp()).collect();
            for (g, w) in v.iter().zip(&want) {
                assert!(
                    (*g as f64 - w).abs() <= 5e-6 * w.abs() + 1e-30,
                    "{g} vs {w}"
                );
            }
            let ws: f64 = want.iter().sum();
            assert!((sum as f64 - ws).abs() <= 1e-5 * ws.abs() + 1e-30);
        }
        let mut v = vec![-1e4f32, 0.0, 1e4];
        exp_sum(&mut v, 1.0, 0.0);
        assert!(v[0] == 0.0 && v[1] == 1.0 && v[2].is_finite());
    }

    #[test]
    fn vector_helpers_match_scalar() {
        let mut seed = 5;
        for n in [0, 1, 7, 16, 17, 33, 128, 577] {
            let a = rand_vec(n, &mut seed);
            let b = rand_vec(n, &mut seed);
            let want = scalar::dot_f32(&a, &b);
            assert!((dot_f32(&a, &b) - want).abs() < 1e-5, "dot n={n}");
            let mut y1 = b.clone();
            let mut y2 = b.clone();
            axpy_f32(0.7, &a, &mut y1);
            scalar::axpy(0.7, FloatData::F32(&a), &mut y2);
            for (p, q) in y1.iter().zip(&y2) {
                assert!((p - q).abs() < 1e-6, "axpy n={n}");
            }
        }
    }

    #[test]
    fn matmul_n_matches_naive_on_bf16_in_parallel() {
        let mut seed = 9;
        let (rows, cols, t) = (70, 600, 3);
        let w = rand_vec(rows * cols, &mut seed);
        let wb: Vec<bf16> = w.iter().map(|v| bf16::from_f32(*v)).collect();
        let x = rand_vec(t * rows, &mut seed);
        let mut y = vec![0.0; t * cols];
        build_pool(Some(2), Precision::F32)
            .unwrap()
            .install(|| matmul_n(MatRef::new(FloatData::BF16(&wb), rows, cols), &x, t, &mut y));
        for i in 0..t {
            for c in 0..cols {
                let want: f32 = (0..rows)
                    .map(|r| wb[r * cols + c].to_f32() * x[i * rows + r])
                    .sum();
                assert!((y[i * cols + c] - want).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn matmul_n_matches_naive_for_every_dtype_on_ragged_shapes() {
        let mut seed = 23;
        for &(rows, cols, t) in &[(1, 1, 1), (300, 70, 13), (129, 600, 6), (5, 17, 2)] {
            let w32 = rand_vec(rows * cols, &mut seed);
            let wb: Vec<bf16> = w32.iter().map(|v| bf16::from_f32(*v)).collect();
            let wh: Vec<half::f16> = w32.iter().map(|v| half::f16::from_f32(*v)).collect();
            let x = rand_vec(t * rows, &mut seed);
            for data in [
                FloatData::F32(&w32),
                FloatData::F16(&wh),
                FloatData::BF16(&wb),
            ] {
                let mut y = vec![1.0; t * cols];
                matmul_n(MatRef::new(data, rows, cols), &x, t, &mut y);
                for i in 0..t {
                    for c in 0..cols {
                        let want: f32 = (0..rows)
                            .map(|r| data.get(r * cols + c) * x[i * rows + r])
                            .sum();
                        assert!((y[i * cols + c] - want).abs() < 1e-4, "{rows}x{cols} t={t}");
                    }
                }
            }
        }
    }

    #[test]
    fn matmul_n_over_row_ranges_adds_up_to_the_whole_bit_for_bit() {
        let mut seed = 21;
        let (rows, cols, t) = (300, 520, 5);
        let w = rand_vec(rows * cols, &mut seed);
        let x = rand_vec(t * rows, &mut seed);
        let pool = build_pool(Some(2), Precision::F32).unwrap();
        let mut whole = vec![0.0; t * cols];
        pool.install(|| {
            matmul_n(
                MatRef::new(FloatData::F32(&w), rows, cols),
                &x,
                t,
                &mut whole,
            )
        });
        let mut parts = vec![0.0; t * cols];
        for (a, b) in [(0, 77), (77, 256), (256, 300)] {
            let xp: Vec<f32> = x
                .chunks_exact(rows)
                .flat_map(|r| r[a..b].to_vec())
                .collect();
            let wp = MatRef::new(FloatData::F32(&w[a * cols..b * cols]), b - a, cols);
            pool.install(|| matmul_n_add(wp, &xp, t, &mut parts));
        }
        assert_eq!(parts, whole);
    }

    #[test]
    fn matmul_n_is_the_transpose_of_matmul_t() {
        let mut seed = 3;
        let (rows, cols, t) = (9, 13, 4);
        let w = rand_vec(rows * cols, &mut seed);
        let mut wt = vec![0.0; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                wt[c * rows + r] = w[r * cols + c];
            }
        }
        let x = rand_vec(t * rows, &mut seed);
        let (mut a, mut b) = (vec![0.0; t * cols], vec![0.0; t * cols]);
        matmul_n(MatRef::new(FloatData::F32(&w), rows, cols), &x, t, &mut a);
        matmul_t(MatRef::new(FloatData::F32(&wt), cols, rows), &x, t, &mut b);
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-5);
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut x = vec![1.0, 3.0, 2.0, -100.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[2] && x[2] > x[0] && x[3] < 1e-40);
    }
}
#[cfg(test)]
mod consistency {
    use super::*;
    #[test]
    fn outputs_do_not_depend_on_the_token_count() {
        let mut seed = 1u64;
        let mut r = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                })
                .collect()
        };
        for &(rows, cols) in &[(24, 64), (7, 33), (30, 100)] {
            let w = r(rows * cols);
            let x = r(24 * cols);
            let mut all = vec![0.0; 24 * rows];
            matmul_t(
                MatRef::new(FloatData::F32(&w), rows, cols),
                &x,
                24,
                &mut all,
            );
            for t in [1, 2, 5, 8] {
                let mut some = vec![0.0; t * rows];
                matmul_t(
                    MatRef::new(FloatData::F32(&w), rows, cols),
                    &x[..t * cols],
                    t,
                    &mut some,
                );
                assert_eq!(&some[..], &all[..t * rows], "{rows}x{cols} t={t}");
            }
        }
    }
}
