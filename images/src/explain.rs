//! The `--explain` mechanism (see the runtime's docs): each privileged step is a `tracing`
//! event on target `explain` carrying its shell equivalent.

/// Records one privileged step as the shell command it stands for; `--explain` prints these.
macro_rules! explain {
    ($($arg:tt)*) => { ::tracing::info!(target: "explain", $($arg)*) };
}
