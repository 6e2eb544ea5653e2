//! Direct polling of collectors (placeholder: being written).
