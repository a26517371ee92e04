//! OCI hooks: programs run at lifecycle points with the container's state JSON on stdin.
//!
//! Which process runs each stage (so the hook lands in the right namespaces):
//! - `prestart`, `createRuntime`: the runtime, after the namespaces exist (create)
//! - `createContainer`: the container init, in the container's namespaces, before pivot_root
//! - `startContainer`: the container init, after pivot_root, just before the program runs
//! - `poststart`: the runtime, after the program started (start)
//! - `poststop`: the runtime, after the container is gone (delete)

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::spec::Hook;
use crate::sys;
use sysops::explain::{self, Cmd};

/// Runs the hooks of a stage that must succeed (prestart, createRuntime, createContainer,
/// startContainer) in order; the first failure stops the stage and fails the operation.
///
/// A hook whose spec gives no `env` gets `default_env` (the container process's
/// environment, for the stages the init runs), or else minc's own, as runc does.
pub fn run_stage(
    stage: &str,
    hooks: Option<&[Hook]>,
    state: &[u8],
    default_env: Option<&[String]>,
) -> Result<()> {
    for hook in hooks.unwrap_or(&[]) {
        run_one(stage, hook, state, default_env)?;
    }
    Ok(())
}

/// Runs every hook of a stage whose failures are only warnings (poststart, poststop: the
/// spec says the remaining hooks still run).
pub fn run_stage_warn(stage: &str, hooks: Option<&[Hook]>, state: &[u8]) {
    for hook in hooks.unwrap_or(&[]) {
        if let Err(e) = run_one(stage, hook, state, None) {
            tracing::warn!("{e}");
        }
    }
}

fn run_one(stage: &str, hook: &Hook, state: &[u8], default_env: Option<&[String]>) -> Result<()> {
    let fail = |reason: String| Error::Hook {
        path: hook.path().clone(),
        reason: format!("{stage}: {reason}"),
    };
    let args = hook.args().as_deref().unwrap_or(&[]);
    let env = hook.env().as_deref().or(default_env);
    if explain::enabled() {
        Cmd::new(&hook.path().display().to_string())
            .args(args.iter().skip(1))
            .stdin(String::from_utf8_lossy(state).into_owned())
            .note(format!("{stage} hook, the container's state on stdin"))
            .emit();
    }
    let mut cmd = Command::new(hook.path());
    if let Some(arg0) = args.first() {
        use std::os::unix::process::CommandExt;
        cmd.arg0(arg0);
    }
    cmd.args(args.iter().skip(1)).stdin(Stdio::piped());
    if let Some(env) = env {
        cmd.env_clear()
            .envs(env.iter().filter_map(|kv| kv.split_once('=')));
    }
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    // A hook that exits without reading its stdin is fine: ignore EPIPE.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(state);
    }
    let status = match hook.timeout() {
        // validated > 0; a huge timeout waits as long as it says, without wrapping
        Some(secs) if secs > 0 => {
            let pidfd = sys::pidfd_open(child.id() as i32)?;
            if !sys::pidfd_wait_secs(&pidfd, secs as u64) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("timed out after {secs}s")));
            }
            child.wait()
        }
        _ => child.wait(),
    }
    .map_err(|e| fail(e.to_string()))?;
    if status.success() {
        Ok(())
    } else if let Some(sig) = status.signal() {
        Err(fail(format!("killed by signal {sig}")))
    } else {
        Err(fail(format!("exit status {}", status.code().unwrap_or(-1))))
    }
}
