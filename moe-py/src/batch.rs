//! `moe.batch_decode` / `moe.batch_prefill`: several sessions of one model stepped as one forward.

use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;

use moe_core::{Error, LogitsMode, Session};

use crate::args;
use crate::errors::PyResultExt;
use crate::session::{busy, PySession};

/// The sessions of `sessions` (a sequence of `moe.Session`), each named once.
fn session_list<'py>(sessions: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PySession>>> {
    let py = sessions.py();
    let list: Vec<Bound<'py, PySession>> = sessions
        .try_iter()?
        .map(|s| Ok(s?.cast_into::<PySession>()?))
        .collect::<PyResult<_>>()?;
    for (index, s) in list.iter().enumerate() {
        if list[..index].iter().any(|t| t.is(s)) {
            return Err(Error::DuplicateSession { index }).py_err(py);
        }
    }
    Ok(list)
}

/// Runs one batch step over `sessions` with the GIL released: locks every session (in address
/// order, so concurrent batches over overlapping sessions cannot deadlock), then steps them.
fn step<'py>(
    py: Python<'py>,
    sessions: &[Bound<'py, PySession>],
    chunks: &[Vec<u32>],
    mode: LogitsMode,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let objs: Vec<&PySession> = sessions.iter().map(|s| s.get()).collect();
    let logits = py
        .detach(|| {
            let mut order: Vec<usize> = (0..objs.len()).collect();
            order.sort_by_key(|&i| objs[i] as *const PySession as usize);
            let mut guards: Vec<_> = order.iter().map(|&i| (i, objs[i].lock())).collect();
            guards.sort_by_key(|(i, _)| *i);
            let mut refs: Vec<&mut Session> = guards
                .iter_mut()
                .map(|(_, g)| g.as_mut().ok_or_else(busy))
                .collect::<Result<_, _>>()?;
            let slices: Vec<&[u32]> = chunks.iter().map(Vec::as_slice).collect();
            Session::prefill_batch(&mut refs, &slices, mode)
        })
        .py_err(py)?;
    Ok(logits.into_pyarray(py))
}

/// Feeds `tokens[i]` to `sessions[i]`, all as one forward (each session keeps its own cache and
/// position; the weights are read once for the batch). Returns the next-token logits, float32
/// `[B, V]`, row `i` for `sessions[i]`. Sessions may differ from call to call (they join and leave
/// between steps).
#[pyfunction]
pub(crate) fn batch_decode<'py>(
    py: Python<'py>,
    sessions: &Bound<'py, PyAny>,
    tokens: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let list = session_list(sessions)?;
    let tokens = args::token_ids(tokens)?;
    let chunks: Vec<Vec<u32>> = tokens.into_iter().map(|t| vec![t]).collect();
    step(py, &list, &chunks, LogitsMode::Last)
}

/// Feeds `chunks[i]` (a prompt chunk or one token, as ids) to `sessions[i]`, all as one forward.
/// Returns each chunk's last-position logits, float32 `[B, V]`, or with `all_logits=True` every new
/// position's, `[sum of chunk lengths, V]`, chunk after chunk.
#[pyfunction]
#[pyo3(signature = (sessions, chunks, *, all_logits = false))]
pub(crate) fn batch_prefill<'py>(
    py: Python<'py>,
    sessions: &Bound<'py, PyAny>,
    chunks: &Bound<'py, PyAny>,
    all_logits: bool,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let list = session_list(sessions)?;
    let chunks: Vec<Vec<u32>> = chunks
        .try_iter()?
        .map(|c| args::token_ids(&c?))
        .collect::<PyResult<_>>()?;
    let mode = if all_logits {
        LogitsMode::All
    } else {
        LogitsMode::Last
    };
    step(py, &list, &chunks, mode)
}
