//! netsetup (placeholder: being built)
