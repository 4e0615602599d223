//! Gateway API router tests.
