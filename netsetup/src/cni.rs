//! CNI plugin mode (spec 1.0.0).
use std::process::ExitCode;
pub fn main() -> ExitCode {
    ExitCode::FAILURE
}
