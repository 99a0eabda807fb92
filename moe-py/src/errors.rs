//! Maps [`moe_core::Error`] onto the exception classes of `moe.errors`: one class per variant, all
//! under `moe.MoeError`; path errors are also `OSError`s and bad input is also a `ValueError`.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;
use pyo3::IntoPyObjectExt;

use moe_core::Error;

/// The `moe.errors` module, imported once.
static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// `ENOENT`, the errno of a missing file, so that `NotFoundError` reads like `FileNotFoundError`.
const ENOENT: i32 = 2;

/// An attribute set on a raised exception.
type Attr<'py> = (&'static str, Bound<'py, PyAny>);

/// Builds the exception `moe.errors.<class_name>(*args)` with `attrs` set on it.
fn build<'py>(
    py: Python<'py>,
    class_name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
    attrs: Vec<Attr<'py>>,
) -> PyResult<PyErr> {
    let module = ERRORS.get_or_try_init(py, || py.import("moe.errors").map(Bound::unbind))?;
    let value = module.bind(py).getattr(class_name)?.call1(args)?;
    for (name, v) in attrs {
        value.setattr(name, v)?;
    }
    Ok(PyErr::from_value(value))
}

/// The exception for an engine error; if even building it fails, that failure is raised instead.
pub(crate) fn to_py(py: Python<'_>, err: Error) -> PyErr {
    convert(py, &err).unwrap_or_else(|e| e)
}

fn convert(py: Python<'_>, err: &Error) -> PyResult<PyErr> {
    let msg = err.to_string();
    let simple = |class: &str| build(py, class, (msg.clone(),), vec![]);
    match err {
        Error::NotFound(path) => build(
            py,
            "NotFoundError",
            (ENOENT, "No such file or directory", lossy(path)),
            vec![],
        ),
        Error::Io { path, source } => match source.raw_os_error() {
            Some(code) => build(
                py,
                "IoError",
                (code, source.to_string(), lossy(path)),
                vec![],
            ),
            None => simple("IoError"),
        },
        Error::Config { path, .. } => build(
            py,
            "ConfigError",
            (msg.clone(),),
            vec![("path", lossy(path).into_bound_py_any(py)?)],
        ),
        Error::Format { path, .. } => build(
            py,
            "FormatError",
            (msg.clone(),),
            vec![("path", lossy(path).into_bound_py_any(py)?)],
        ),
        Error::InconsistentConfig(_) => simple("InconsistentConfigError"),
        Error::UnsupportedArchitecture(name) => build(
            py,
            "UnsupportedArchitectureError",
            (msg.clone(),),
            vec![("architecture", name.into_bound_py_any(py)?)],
        ),
        Error::MissingTensor(name) => build(
            py,
            "MissingTensorError",
            (msg.clone(),),
            vec![("name", name.into_bound_py_any(py)?)],
        ),
        Error::Shape {
            name,
            expected,
            found,
        } => build(
            py,
            "ShapeError",
            (msg.clone(),),
            vec![
                ("name", name.into_bound_py_any(py)?),
                ("expected", expected.into_bound_py_any(py)?),
                ("found", found.into_bound_py_any(py)?),
            ],
        ),
        Error::Dtype { name, .. } => build(
            py,
            "DtypeError",
            (msg.clone(),),
            vec![("name", name.into_bound_py_any(py)?)],
        ),
        Error::TokenOutOfRange { token, vocab_size } => Ok(token_out_of_range(
            &token.into_bound_py_any(py)?,
            Some(*vocab_size),
        )),
        Error::EmptyPrompt => simple("EmptyPromptError"),
        Error::ContextFull {
            needed,
            max_context,
        } => build(
            py,
            "ContextFullError",
            (msg.clone(),),
            vec![
                ("needed", needed.into_bound_py_any(py)?),
                ("max_context", max_context.into_bound_py_any(py)?),
            ],
        ),
        Error::InvalidArgument(_) => simple("InvalidArgumentError"),
        Error::MixedModels { index } => build(
            py,
            "MixedModelsError",
            (msg.clone(),),
            vec![("index", index.into_bound_py_any(py)?)],
        ),
        Error::DuplicateSession { index } => build(
            py,
            "DuplicateSessionError",
            (msg.clone(),),
            vec![("index", index.into_bound_py_any(py)?)],
        ),
        Error::Tokenizer(_) => simple("TokenizerError"),
        Error::UnsupportedQuantization { .. } => simple("UnsupportedQuantizationError"),
        Error::Cancelled { done } => build(
            py,
            "CancelledError",
            (msg.clone(),),
            vec![("done", done.into_bound_py_any(py)?)],
        ),
        Error::SnapshotModelMismatch { expected, found } => build(
            py,
            "SnapshotModelMismatchError",
            (msg.clone(),),
            vec![
                ("expected", expected.into_bound_py_any(py)?),
                ("found", found.into_bound_py_any(py)?),
            ],
        ),
        Error::SnapshotVersion { found, supported } => build(
            py,
            "SnapshotVersionError",
            (msg.clone(),),
            vec![
                ("found", found.into_bound_py_any(py)?),
                ("supported", supported.into_bound_py_any(py)?),
            ],
        ),
        Error::SnapshotTruncated { len, needed } => build(
            py,
            "SnapshotTruncatedError",
            (msg.clone(),),
            vec![
                ("len", len.into_bound_py_any(py)?),
                ("needed", needed.into_bound_py_any(py)?),
            ],
        ),
        Error::SnapshotCorrupt(_) => simple("SnapshotCorruptError"),
        // `Error` is non-exhaustive: a variant added later still raises a `MoeError`.
        #[allow(unreachable_patterns)]
        _ => simple("MoeError"),
    }
}

/// A path as the `str` Python's own `OSError`s carry.
fn lossy(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `TokenOutOfRangeError` for the Python int `token`, which may be negative or too large for the
/// engine's 32-bit ids (then `vocab_size` is `None`).
pub(crate) fn token_out_of_range(token: &Bound<'_, PyAny>, vocab_size: Option<usize>) -> PyErr {
    let py = token.py();
    let msg = match vocab_size {
        Some(v) => format!("token id {token} out of range (vocab size {v})"),
        None => format!("token id {token} out of range (token ids are in 0..2**32)"),
    };
    vocab_size
        .into_bound_py_any(py)
        .and_then(|v| {
            build(
                py,
                "TokenOutOfRangeError",
                (msg,),
                vec![("token", token.clone()), ("vocab_size", v)],
            )
        })
        .unwrap_or_else(|e| e)
}

/// Converts an engine result into a Python one.
pub(crate) trait PyResultExt<T> {
    /// The value, or the engine error as its Python exception.
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> PyResultExt<T> for moe_core::Result<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
