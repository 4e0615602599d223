//! Property tests of the core: generators in this crate, properties in `tests/`.
