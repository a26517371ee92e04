//! The container's terminal (`process.terminal`), made from inside the container by the init
//! (at `create`, after pivot_root) or by the exec helper (after joining the namespaces), as
//! runc does: the pty comes from the container's own devpts instance, becomes the
//! controlling terminal of the process's session, and its master is handed to the runtime
//! over the socket it is already talking on. See `crate::pty` for the concepts.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::channel::{self, Msg};
use crate::error::{Error, Result};
use crate::ops::{MountArgs, Sys};
use crate::pty::{Size, Slave};

/// Opens the pty, sizes it, makes it our controlling terminal (we must be a session leader:
/// setsid came first), gives it to `uid`, and sends its master to the runtime on `report`.
/// With `console`, the slave is also bound over /dev/console (the init's terminal is the
/// container's console, as in runc). Returns the slave, for stdio just before exec.
pub fn open(
    sys: &dyn Sys,
    report: &OwnedFd,
    size: Option<Size>,
    uid: u32,
    console: bool,
) -> Result<Slave> {
    let pty = sys.open_pty(Path::new("/dev/pts"))?;
    let slave = pty.slave;
    if let Some(s) = size {
        sys.set_console_size(&slave, s)?;
    }
    if console {
        let dev_console = Path::new("/dev/console");
        match dev_console.symlink_metadata() {
            Err(_) => sys.touch(dev_console)?,
            // A mount follows a symlink: never let one redirect the console elsewhere.
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::Rootfs {
                    path: dev_console.into(),
                    reason: "is a symlink; refusing to mount the terminal over it".into(),
                })
            }
            Ok(_) => {}
        }
        sys.mount(&MountArgs::bind(&slave.path, dev_console, false))?;
    }
    sys.set_controlling_terminal(&slave)?;
    if uid != 0 {
        sys.chown_pty(&slave, uid)?;
    }
    let index = slave
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    channel::send_with_fd(report, &Msg::Console { index }, pty.master.as_fd())?;
    // The master leaves with the message: nothing in the container keeps it.
    drop(pty.master);
    Ok(slave)
}

/// `process.consoleSize` as a terminal size (None when absent or zero).
pub fn spec_size(p: &oci_spec::runtime::Process) -> Option<Size> {
    let b = p.console_size()?;
    let rows = u16::try_from(b.height()).ok()?;
    let cols = u16::try_from(b.width()).ok()?;
    (rows > 0 && cols > 0).then_some(Size { rows, cols })
}
