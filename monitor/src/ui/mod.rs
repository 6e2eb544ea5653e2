//! Views (placeholder: being written).
