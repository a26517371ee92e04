//! How the session and terminal steps read in a transcript.
//!
//! Some of them have an exact shell form (`stty -F /dev/pts/N rows R cols C`; the stdio
//! becomes redirections of the final `exec` line, see `init::explain_exec`); opening a pty
//! pair and taking a controlling terminal have none, so they are comments that name the system call and the closest runnable command
//! (`script -qfc`, `setsid --ctty`). See `crate::pty` for the concepts.

use std::os::fd::RawFd;

use sysops::explain::{self, Cmd};

use crate::pty::{Pty, Size, Slave};

/// The container's stdin, stdout and stderr.
pub enum Stdio<'a> {
    /// Descriptors given by the runtime (its own, pipes it relays, a log file, /dev/null).
    Fds([RawFd; 3]),
    /// The slave of the container's pty, for all three.
    Pty(&'a Slave),
}

impl Stdio<'_> {
    pub fn fds(&self) -> [RawFd; 3] {
        match self {
            Stdio::Fds(f) => *f,
            Stdio::Pty(s) => [std::os::fd::AsRawFd::as_raw_fd(&s.fd); 3],
        }
    }
}

/// setsid(2) is the init's first step; the shell equivalent is the `setsid sh` that ends
/// the `unshare` (or `nsenter`) line above, since a second shell started with `exec` would
/// not see the rest of a transcript its parent shell has already read.
pub fn render_setsid() {
    explain::comment(
        "setsid(2): a session of its own, away from the caller's terminal (the `setsid sh` above)",
    );
}

pub fn render_open(p: &Pty) {
    explain::comment(&format!(
        "open {}/ptmx: a new pty pair whose slave is {} (posix_openpt(3), ioctl TIOCGPTPEER); \
         no shell command only opens one: `script -qfc CMD /dev/null` runs CMD on a new pty",
        p.slave.path.parent().unwrap_or(&p.slave.path).display(),
        p.slave.path.display()
    ));
}

pub fn render_size(slave: &Slave, s: Size) -> Cmd {
    Cmd::new("stty")
        .arg("-F")
        .arg(&slave.path)
        .arg("rows")
        .arg(s.rows.to_string())
        .arg("cols")
        .arg(s.cols.to_string())
}

pub fn render_ctty(slave: &Slave) {
    explain::comment(&format!(
        "ioctl(TIOCSCTTY): {} becomes the controlling terminal of this session \
         (closest shell form: `setsid --ctty CMD <{}`)",
        slave.path.display(),
        slave.path.display()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn size_renders_as_stty() {
        let p = crate::pty::open(Path::new("/dev/pts")).unwrap();
        let line = render_size(&p.slave, Size { rows: 24, cols: 80 }).render();
        assert_eq!(
            line,
            format!("stty -F {} rows 24 cols 80", p.slave.path.display())
        );
    }
}
