//! Python bindings for moe (built with maturin).
