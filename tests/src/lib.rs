//! Helpers for minc's end-to-end tests.
