//! The `--explain` mechanism: every privileged step is a `tracing` event on the target
//! `explain` whose message is the shell command the step stands for. Libraries emit these
//! events; the CLI decides whether to print them (`+ unshare ...` on stderr).

/// Records one privileged step as the shell command it stands for; `--explain` prints these.
#[macro_export]
macro_rules! explain {
    ($($arg:tt)*) => { ::tracing::info!(target: "explain", $($arg)*) };
}
