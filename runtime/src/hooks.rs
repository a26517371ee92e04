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
use crate::explain;
use crate::spec::Hook;
use crate::sys;

/// Runs the hooks of one stage in order; the first failure stops the stage.
pub fn run(stage: &str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    for hook in hooks {
        run_one(stage, hook, state)?;
    }
    Ok(())
}

fn run_one(stage: &str, hook: &Hook, state: &[u8]) -> Result<()> {
    let fail = |reason: String| Error::Hook {
        path: hook.path.clone(),
        reason: format!("{stage}: {reason}"),
    };
    explain!(
        "{} < state.json   # {stage} hook",
        std::iter::once(hook.path.display().to_string())
            .chain(hook.args.iter().skip(1).cloned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut cmd = Command::new(&hook.path);
    if let Some(arg0) = hook.args.first() {
        use std::os::unix::process::CommandExt;
        cmd.arg0(arg0);
    }
    cmd.args(hook.args.iter().skip(1))
        .env_clear()
        .envs(hook.env.iter().filter_map(|kv| kv.split_once('=')))
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(e.to_string()))?;
    // A hook that exits without reading its stdin is fine: ignore EPIPE.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(state);
    }
    let status = match hook.timeout {
        Some(secs) if secs > 0 => {
            let pidfd = sys::pidfd_open(child.id() as i32)?;
            if !sys::pidfd_wait(&pidfd, (secs as i32).saturating_mul(1000)) {
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
