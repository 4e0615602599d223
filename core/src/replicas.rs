//! Canary replica arithmetic (being written).
