//! Placeholder crate: see ARCHITECTURE.md for what it will hold.
