//! The explain mechanism: every privileged step is also logged as the shell command it stands for.

/// Records one privileged step as the shell command it stands for; `--explain` prints these.
macro_rules! explain { ($($arg:tt)*) => { tracing::info!(target: "explain", $($arg)*) } }
pub(crate) use explain;
