//! Quantization through the C ABI: `moe_model_params.quantize_*` loads the demo model quantized with
//! the same logits as moe-core's `LoadOptions::with_quantization`, `moe_checkpoint_quantize` writes a
//! checkpoint that loads to the same logits again and generates, and bad options are statuses.

mod common;

use std::ffi::{c_void, CString};
use std::path::Path;
use std::sync::Arc;

use common::{c_greedy, last_error, ok, repo_root, CModel};
use moe::{moe_model, moe_quantize_scope, moe_status};
use moe_core::{LoadOptions, LogitsMode, Model, QuantizeOptions, QuantizeScope, Session};

fn load(dir: &Path, bits: u32, group: u32, scope: u32) -> Result<CModel, moe_status> {
    let path = CString::new(dir.to_str().unwrap()).unwrap();
    let mut params = moe::moe_model_default_params();
    params.quantize_bits = bits;
    params.quantize_group_size = group;
    params.quantize_scope = scope;
    let mut m: *mut moe_model = std::ptr::null_mut();
    // SAFETY: valid C string, valid params, valid out-pointer.
    let s = unsafe { moe::moe_model_load(path.as_ptr(), &params, &mut m) };
    if s == moe_status::MOE_OK {
        Ok(CModel(m))
    } else {
        Err(s)
    }
}

unsafe extern "C" fn count_calls(_done: usize, _total: usize, user: *mut c_void) {
    // SAFETY: the test passes a pointer to a live usize.
    unsafe { *(user as *mut usize) += 1 };
}

#[test]
fn quantize_on_load_save_reload_and_generate_through_the_c_abi() {
    let demo = repo_root().join("models/tiny-deepseek-pycode");
    let prompt = [1u32, 5, 9, 2, 11];
    let linear = moe_quantize_scope::MOE_QUANTIZE_SCOPE_LINEAR as u32;
    let c = load(&demo, 4, 0, linear).unwrap();
    let c_logits = c.session().prefill_all(&prompt);
    let rust = Model::load_with(
        &demo,
        LoadOptions::default()
            .with_quantization(QuantizeOptions::new(4).with_scope(QuantizeScope::Linear)),
    )
    .unwrap();
    let mut s = Session::new(Arc::new(rust), &Default::default()).unwrap();
    assert_eq!(c_logits, s.prefill(&prompt, LogitsMode::All).unwrap());

    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("q4");
    let (src_c, dst_c) = (
        CString::new(demo.to_str().unwrap()).unwrap(),
        CString::new(dst.to_str().unwrap()).unwrap(),
    );
    let mut params = moe::moe_quantize_default_params();
    assert_eq!(params.bits, 4);
    params.scope = linear;
    let mut calls = 0usize;
    params.progress = Some(count_calls);
    params.progress_user_data = &mut calls as *mut usize as *mut c_void;
    // SAFETY: valid C strings and params.
    ok(unsafe { moe::moe_checkpoint_quantize(src_c.as_ptr(), dst_c.as_ptr(), &params) });
    assert!(calls > 0);
    let reloaded = CModel::load_default(&dst); // the defaults, as `c` was loaded
    let mut session = reloaded.session();
    assert_eq!(session.prefill_all(&prompt), c_logits);
    // Greedy decoding runs on the reloaded checkpoint.
    let mut next = c_greedy(&c_logits[c_logits.len() - reloaded.vocab()..]);
    for _ in 0..4 {
        let l = session.decode(next);
        next = c_greedy(&l);
        assert!((next as usize) < reloaded.vocab());
    }
    // Writing into a non-empty folder is refused.
    // SAFETY: valid C strings, NULL params.
    let s =
        unsafe { moe::moe_checkpoint_quantize(src_c.as_ptr(), dst_c.as_ptr(), std::ptr::null()) };
    assert_eq!(s, moe_status::MOE_ERR_INVALID_ARGUMENT, "{}", last_error());
    // Quantizing the quantized checkpoint again is refused.
    let again = tmp.path().join("again");
    let again_c = CString::new(again.to_str().unwrap()).unwrap();
    // SAFETY: valid C strings, NULL params.
    let s =
        unsafe { moe::moe_checkpoint_quantize(dst_c.as_ptr(), again_c.as_ptr(), std::ptr::null()) };
    assert_eq!(
        s,
        moe_status::MOE_ERR_UNSUPPORTED_QUANTIZATION,
        "{}",
        last_error()
    );
    assert_eq!(
        load(&dst, 8, 0, 0).err(),
        Some(moe_status::MOE_ERR_UNSUPPORTED_QUANTIZATION)
    );
}

#[test]
fn bad_quantize_params_are_invalid_arguments() {
    let demo = repo_root().join("models/tiny-deepseek-pycode");
    for (bits, group, scope) in [(5, 0, 0), (4, 12, 0), (4, 0, 7), (8, 3, 1)] {
        assert_eq!(
            load(&demo, bits, group, scope).err(),
            Some(moe_status::MOE_ERR_INVALID_ARGUMENT),
            "{bits} {group} {scope}"
        );
    }
    let src = CString::new(demo.to_str().unwrap()).unwrap();
    let mut params = moe::moe_quantize_default_params();
    params.bits = 3;
    // SAFETY: valid C string; NULL dst is refused.
    let s = unsafe { moe::moe_checkpoint_quantize(src.as_ptr(), std::ptr::null(), &params) };
    assert_eq!(s, moe_status::MOE_ERR_NULL_ARGUMENT);
    let tmp = tempfile::tempdir().unwrap();
    let dst = CString::new(tmp.path().join("x").to_str().unwrap()).unwrap();
    // SAFETY: valid C strings and params.
    let s = unsafe { moe::moe_checkpoint_quantize(src.as_ptr(), dst.as_ptr(), &params) };
    assert_eq!(s, moe_status::MOE_ERR_INVALID_ARGUMENT);
}
