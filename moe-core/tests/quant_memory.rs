//! No dequantized copy of a packed weight exists after load: a loaded packed model retains about the
//! heap of its float twin (both keep their weights in the file's map; the difference is per-tensor
//! metadata), far less than a dequantized copy would take. A counting allocator (this test binary
//! only) measures the heap.

mod common;
#[path = "common/quant_twins.rs"]
mod twins;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use moe_core::Model;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn a_loaded_packed_model_keeps_its_weights_in_the_map() {
    let scheme = twins::IntScheme {
        bits: 4,
        group: Some(32),
        symmetric: true,
        scale: twins::ScaleType::BF16,
        ignore: vec!["lm_head", "re:.*mlp.gate$"],
        quantize: |m| m != "lm_head",
    };
    let tmp = tempfile::tempdir().unwrap();
    let (p, f) = (tmp.path().join("packed"), tmp.path().join("float"));
    twins::write_int_twins(&common::own_fixtures().join("qwen3_moe"), &p, &f, &scheme);
    let measure = |dir: &std::path::Path| {
        let before = LIVE.load(Ordering::SeqCst);
        let m = Model::load(dir).unwrap();
        let retained = LIVE.load(Ordering::SeqCst) - before;
        drop(m);
        retained
    };
    let (packed_heap, float_heap) = (measure(&p), measure(&f));
    // A dequantized copy would add the packed modules as f32: the float twin's file minus the
    // packed file (the other tensors are the same bf16 in both).
    let file = |d: &std::path::Path| {
        std::fs::metadata(d.join("model.safetensors"))
            .unwrap()
            .len()
    };
    let dequantized = file(&f) as isize - file(&p) as isize;
    eprintln!(
        "heap retained after load: packed model {packed_heap} B, its float twin {float_heap} B; \
         a dequantized copy would add about {dequantized} B"
    );
    // Both keep their weights in the map; the heap holds norms, RoPE tables and per-tensor metadata
    // (the packed checkpoint has 2.6x as many tensors here: ~650 B each), never a weight copy.
    assert!(
        (packed_heap - float_heap) * 4 < dequantized,
        "the packed model retains {packed_heap} B of heap against {float_heap} B for its float twin"
    );
}
