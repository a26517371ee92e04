//! The freezer: stops every process of a cgroup at once (they stay in memory, cannot run,
//! and do not notice), and lets them go again. `pause` and `resume` use it; so does killing
//! every process on v1, so that none can fork while the list is walked.
//!
//! - v1: the `freezer` controller's `freezer.state`: write FROZEN or THAWED; reading gives
//!   FREEZING until every task stopped (kernel: cgroup-v1/freezer-subsystem.rst).
//! - v2: `cgroup.freeze` (1 or 0); `cgroup.events` says `frozen 1` once done
//!   (kernel: cgroup-v2.rst, "Core Interface Files").

use std::time::{Duration, Instant};

use super::fs::{self, write};
use super::{Cgroup, Error, Mode, Result};

/// Freezes the cgroup and waits (up to a few seconds) until the kernel reports it frozen.
pub fn freeze(cg: &Cgroup) -> Result<()> {
    set(cg, true)
}

pub fn thaw(cg: &Cgroup) -> Result<()> {
    set(cg, false)
}

/// Whether the cgroup is frozen (or freezing).
pub fn frozen(cg: &Cgroup) -> bool {
    match cg.mode {
        Mode::V2 => cg
            .unified_dir()
            .and_then(|d| fs::read(&d.path.join("cgroup.freeze")).ok())
            .is_some_and(|v| v == "1"),
        _ => cg
            .dir("freezer")
            .and_then(|d| fs::read(&d.path.join("freezer.state")).ok())
            .is_some_and(|v| v != "THAWED"),
    }
}

fn set(cg: &Cgroup, on: bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    match cg.mode {
        Mode::V2 => {
            let d = cg.unified_dir().expect("v2 dir");
            write(&d.path.join("cgroup.freeze"), if on { "1" } else { "0" })?;
            let events = d.path.join("cgroup.events");
            let want = if on { 1 } else { 0 };
            wait(deadline, || {
                Ok(fs::read_keyed(&events)?.get("frozen").copied() == Some(want))
            })
        }
        _ => {
            let d = cg.dir("freezer").ok_or_else(|| Error::Unsupported {
                what: "pause".into(),
                why: "the freezer controller is not mounted on this host".into(),
            })?;
            let file = d.path.join("freezer.state");
            let want = if on { "FROZEN" } else { "THAWED" };
            // A task that was just forking can make FREEZING linger: write again until the
            // state sticks, as runc does.
            wait(deadline, || {
                write(&file, want)?;
                Ok(fs::read(&file)? == want)
            })
        }
    }
}

fn wait(deadline: Instant, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let mut delay = Duration::from_micros(100);
    loop {
        if done()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Sys {
                what: "freezer".into(),
                err: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the cgroup did not reach the requested state in 5 s",
                ),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}
