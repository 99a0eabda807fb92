//! A generation in progress, as the Python streams hold it: the engine's generator and, for
//! `Session.generate` / `Session.chat`, the `moe.Session` its session goes back to when generation
//! ends (exhausted, closed, failed or dropped), so the conversation continues from its cache.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;

use moe_core::{FinishReason, Generator, Session, TextGenerator};

/// Where a generation's session goes when it ends.
pub(crate) trait SessionHome: Send + Sync {
    fn put_back(&self, session: Session);
}

/// What the streams need of the engine's two generators.
pub(crate) trait Generation: Send {
    fn produced(&self) -> usize;
    fn finish_reason(&self) -> Option<&FinishReason>;
    fn session(&self) -> &Session;
    fn stop(&mut self);
    fn into_session(self) -> Session;
}

impl Generation for Generator {
    fn produced(&self) -> usize {
        Generator::produced(self)
    }
    fn finish_reason(&self) -> Option<&FinishReason> {
        Generator::finish_reason(self)
    }
    fn session(&self) -> &Session {
        Generator::session(self)
    }
    fn stop(&mut self) {
        Generator::stop(self)
    }
    fn into_session(self) -> Session {
        Generator::into_session(self)
    }
}

impl Generation for TextGenerator {
    fn produced(&self) -> usize {
        TextGenerator::produced(self)
    }
    fn finish_reason(&self) -> Option<&FinishReason> {
        TextGenerator::finish_reason(self)
    }
    fn session(&self) -> &Session {
        TextGenerator::session(self)
    }
    fn stop(&mut self) {
        TextGenerator::stop(self)
    }
    fn into_session(self) -> Session {
        TextGenerator::into_session(self)
    }
}

enum State<G> {
    Live(G),
    /// The generator is gone (its session handed home); what the getters still report.
    Done {
        produced: usize,
        finish: Option<FinishReason>,
        generated: Vec<u32>,
    },
}

/// A generator, where its session goes afterwards, and where its output starts in the session.
pub(crate) struct Running<G: Generation> {
    state: Mutex<State<G>>,
    home: Option<Box<dyn SessionHome>>,
    /// Index in the session's tokens of the first generated token.
    first_generated: usize,
}

impl<G: Generation> Running<G> {
    pub(crate) fn new(g: G, home: Option<Box<dyn SessionHome>>, first_generated: usize) -> Self {
        Running {
            state: Mutex::new(State::Live(g)),
            home,
            first_generated,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<G>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one step on the live generator (GIL released); a generation that ends or fails hands its
    /// session home.
    pub(crate) fn step<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut G) -> moe_core::Result<Option<T>> + Send,
    ) -> moe_core::Result<Option<T>> {
        py.detach(|| {
            let mut st = self.lock();
            let State::Live(g) = &mut *st else {
                return Ok(None);
            };
            let r = f(g);
            if !matches!(r, Ok(Some(_))) {
                self.end(&mut st);
            }
            r
        })
    }

    /// Stops generation (`finish_reason` "cancelled") and hands the session home.
    pub(crate) fn close(&self, py: Python<'_>) {
        py.detach(|| {
            let mut st = self.lock();
            if let State::Live(g) = &mut *st {
                g.stop();
            }
            self.end(&mut st);
        })
    }

    fn end(&self, st: &mut State<G>) {
        let summary = match &*st {
            State::Live(g) => State::Done {
                produced: g.produced(),
                finish: g.finish_reason().cloned(),
                generated: g
                    .session()
                    .tokens()
                    .get(self.first_generated..)
                    .unwrap_or_default()
                    .to_vec(),
            },
            State::Done { .. } => return,
        };
        if let State::Live(g) = std::mem::replace(st, summary) {
            let session = g.into_session();
            if let Some(home) = &self.home {
                home.put_back(session);
            }
        }
    }

    pub(crate) fn produced(&self) -> usize {
        match &*self.lock() {
            State::Live(g) => g.produced(),
            State::Done { produced, .. } => *produced,
        }
    }

    pub(crate) fn finish_reason(&self) -> Option<FinishReason> {
        match &*self.lock() {
            State::Live(g) => g.finish_reason().cloned(),
            State::Done { finish, .. } => finish.clone(),
        }
    }

    /// The token ids generated so far.
    pub(crate) fn generated(&self) -> Vec<u32> {
        match &*self.lock() {
            State::Live(g) => g
                .session()
                .tokens()
                .get(self.first_generated..)
                .unwrap_or_default()
                .to_vec(),
            State::Done { generated, .. } => generated.clone(),
        }
    }
}

impl<G: Generation> Drop for Running<G> {
    /// A stream dropped mid-generation still hands its session home.
    fn drop(&mut self) {
        let mut st = self.lock();
        self.end(&mut st);
    }
}
