//! Python bindings for moe: the private extension module `moe._native`.
//!
//! The public package `moe` (moe-py/python/moe) re-exports these classes and defines the exception
//! hierarchy in `moe.errors`; engine errors are mapped onto it in [`errors`]. All model compute runs
//! with the GIL released, so one model can serve sessions on several Python threads.

mod args;
mod batch;
mod errors;
mod estimate;
mod json;
mod loaded;
mod model;
mod options;
mod prompt;
mod quantize;
mod running;
mod session;
mod stream;
mod text;

use pyo3::prelude::*;

pub use loaded::PyModel;
pub use session::PySession;
pub use stream::PyTokenStream;
pub use text::{PyStreamDecoder, PyTextStream, PyTokenizer};

/// The native half of the `moe` package.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The engine's log records go to Python's `logging` (loggers `moe_core.*`), silent at the default
    // WARNING level. Levels are looked up on every record (no caching), so configuring `logging`
    // after import takes effect; records are few. A host that installed another Rust logger keeps it.
    if let Ok(logger) = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::Nothing) {
        let _ = logger.install();
    }
    m.add_class::<PyModel>()?;
    m.add_class::<PySession>()?;
    m.add_class::<PyTokenStream>()?;
    m.add_class::<PyTokenizer>()?;
    m.add_class::<PyTextStream>()?;
    m.add_class::<PyStreamDecoder>()?;
    m.add_function(wrap_pyfunction!(estimate::estimate_memory, m)?)?;
    m.add_function(wrap_pyfunction!(batch::batch_decode, m)?)?;
    m.add_function(wrap_pyfunction!(batch::batch_prefill, m)?)?;
    m.add_function(wrap_pyfunction!(quantize::quantize_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(quantize::fidelity, m)?)?;
    m.add("__version__", moe_core::VERSION)?;
    Ok(())
}
