//! images (placeholder: being built)
