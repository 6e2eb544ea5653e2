//! The SQL behind every analysis (placeholder: being written).

pub mod report;
