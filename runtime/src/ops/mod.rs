//! The operations layer: every privileged step the runtime takes goes through [`Sys`].
//!
//! [`Linux`] performs a step with the system call and, when `--explain` is on, first renders
//! it as the shell command that does the same thing, from the very arguments it passes to the
//! kernel (so the transcript cannot drift from the code). [`Recorder`] (tests only) records
//! the steps instead, so the rootfs and process logic can be unit-tested without root.
//! youki's `Syscall` trait is the model.
//!
//! The rendering rules live beside each domain: [`mount`] turns mount(2) flags into mount(8)
//! options, [`process`] turns the process attributes into one `setpriv` line, [`terminal`]
//! renders the session and pty steps (several of which no shell command does exactly).

pub mod attrs;
pub mod mount;
pub mod process;
pub mod terminal;
mod tree;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use sysops::explain::{self, Cmd};
use sysops::inroot::{Root, Target};

use crate::error::{check, Error, Result};
use crate::sys::{cstr, cstring};

pub use mount::MountArgs;
pub use process::Identity;
pub use terminal::Stdio;

use crate::pty::{self, Pty, Slave};

/// The privileged steps of the runtime. Each method is one step, explained by [`Linux`].
pub trait Sys {
    /// mount(2), including bind mounts, remounts and propagation changes.
    fn mount(&self, m: &MountArgs) -> Result<()>;
    /// mount_setattr(2): set or clear mount attributes (MOUNT_ATTR_*), optionally on the whole
    /// subtree.
    fn mount_setattr(&self, target: &Path, set: u64, clear: u64, recursive: bool) -> Result<()>;
    /// Puts an idmapped copy of a mount (prepared by `create`, see `crate::idmap`) in place
    /// at `target` (move_mount(2)).
    fn mount_idmapped(&self, m: &mount::Idmapped, target: &Path) -> Result<()>;
    /// umount2(2).
    fn umount(&self, target: &Path, flags: libc::c_int) -> Result<()>;
    /// pivot_root(".", ".") in `new_root`: the new root and the old one stacked on it.
    fn pivot_root_here(&self, new_root: &Path) -> Result<()>;
    /// chroot(2) then chdir("/").
    fn chroot(&self, root: &Path) -> Result<()>;
    /// chdir(2).
    fn chdir(&self, dir: &Path) -> Result<()>;
    /// A mount target inside the root (`mkdir -p` or `touch`, resolved inside the root as
    /// openat2(2) `RESOLVE_IN_ROOT` does): an O_PATH fd to mount onto through /proc/self/fd.
    fn mount_target(&self, root: &Root, rel: &Path, kind: Target) -> Result<OwnedFd>;
    /// mkdir -p with a mode.
    fn mkdir_all(&self, dir: &Path, mode: u32) -> Result<()>;
    /// Creates an empty file if missing (a mount target for a file bind mount).
    fn touch(&self, path: &Path) -> Result<()>;
    /// mknod(2) of a char/block device or FIFO, then chown.
    fn mknod(&self, path: &Path, node: &DeviceNode) -> Result<()>;
    /// symlink(2): `link` pointing at `target`.
    fn symlink(&self, target: &Path, link: &Path) -> Result<()>;
    /// Copies a directory tree (files, directories, symlinks as links, devices, FIFOs) with
    /// modes and owners: `cp -a FROM/. TO`.
    fn copy_tree(&self, from: &Path, to: &Path) -> Result<()>;
    /// rmdir(2).
    fn rmdir(&self, dir: &Path) -> Result<()>;
    /// Writes a small file that already exists (/proc/sys/..., /proc/self/oom_score_adj).
    fn write_file(&self, path: &Path, content: &str) -> Result<()>;
    /// sethostname(2).
    fn sethostname(&self, name: &str) -> Result<()>;
    /// setdomainname(2).
    fn setdomainname(&self, name: &str) -> Result<()>;
    /// unshare(2) of namespaces that only this process enters (the cgroup namespace).
    fn unshare(&self, flags: libc::c_int) -> Result<()>;
    /// setns(2) into the namespace open at `fd` (`path` is what it was opened from).
    fn setns(&self, fd: BorrowedFd<'_>, nstype: libc::c_int, path: &Path) -> Result<()>;
    /// setrlimit(2).
    fn setrlimit(&self, resource: &process::Rlimit) -> Result<()>;
    /// Sets a scheduling or execution attribute of this process (scheduler, I/O priority,
    /// affinity, personality, memory policy).
    fn set_attr(&self, a: &attrs::Attr) -> Result<()>;
    /// Becomes the container's process identity: bounding set, user and groups, capability
    /// sets, no_new_privs (rendered together with the exec, as one `setpriv` line).
    fn set_identity(&self, id: &Identity) -> Result<()>;
    /// setsid(2): the process leads a new session with no controlling terminal, so it can
    /// never reach the terminal of the session minc was started from.
    fn setsid(&self) -> Result<()>;
    /// Opens a new pty pair in the devpts instance at `pts` (the container's /dev/pts).
    fn open_pty(&self, pts: &Path) -> Result<Pty>;
    /// ioctl(TIOCSWINSZ): the terminal's size (`process.consoleSize`, or the caller's).
    fn set_console_size(&self, tty: &Slave, size: pty::Size) -> Result<()>;
    /// ioctl(TIOCSCTTY): the pty becomes the controlling terminal of our session.
    fn set_controlling_terminal(&self, tty: &Slave) -> Result<()>;
    /// fchown(2) of the pty's slave to the process's user (the group stays the devpts one),
    /// so a process that is not root can use its own terminal.
    fn chown_pty(&self, tty: &Slave, uid: u32) -> Result<()>;
    /// dup2(2) the container's stdin, stdout and stderr into place (rendered with the exec
    /// line, as its redirections).
    fn set_stdio(&self, stdio: &Stdio) -> Result<()>;
}

/// A device node or FIFO to make: its type (S_IFCHR, S_IFBLK or S_IFIFO), permission bits,
/// numbers and owner.
#[derive(Debug, Clone, Copy)]
pub struct DeviceNode {
    pub kind: libc::mode_t,
    pub mode: u32,
    pub major: u64,
    pub minor: u64,
    pub uid: u32,
    pub gid: u32,
}

/// The real implementation: explain, then perform.
pub struct Linux;

/// What `minc` shows for an fd path: `/proc/self/fd/N[/rest]` is minc's own fd, meaningless
/// in a transcript, so the file it refers to is shown instead.
pub fn shown(p: &Path) -> PathBuf {
    let mut parts = p.components();
    let prefix: PathBuf = parts.by_ref().take(5).collect(); // / proc self fd N
    if prefix.parent() == Some(Path::new("/proc/self/fd")) {
        if let Ok(real) = std::fs::read_link(&prefix) {
            let rest = parts.as_path();
            return if rest.as_os_str().is_empty() {
                real
            } else {
                real.join(rest)
            };
        }
    }
    p.to_path_buf()
}

impl Sys for Linux {
    fn mount(&self, m: &MountArgs) -> Result<()> {
        if explain::enabled() {
            m.render().emit();
        }
        m.perform()
    }

    fn mount_setattr(&self, target: &Path, set: u64, clear: u64, recursive: bool) -> Result<()> {
        if explain::enabled() {
            mount::render_setattr(&shown(target), set, clear, recursive);
        }
        mount::setattr(target, set, clear, recursive)
    }

    fn mount_idmapped(&self, m: &mount::Idmapped, target: &Path) -> Result<()> {
        if explain::enabled() {
            mount::render_idmapped(m, target).emit();
        }
        mount::move_tree(m.tree.as_fd(), target)
    }

    fn umount(&self, target: &Path, flags: libc::c_int) -> Result<()> {
        if explain::enabled() {
            Cmd::new("umount")
                .arg_if(flags & libc::MNT_DETACH != 0, "-l")
                .arg(shown(target))
                .emit();
        }
        let c = cstr(target);
        // SAFETY: valid C string.
        check(unsafe { libc::umount2(c.as_ptr(), flags) }, || {
            format!("umount {}", target.display())
        })
        .map(|_| ())
    }

    fn pivot_root_here(&self, new_root: &Path) -> Result<()> {
        if explain::enabled() {
            Cmd::new("cd").arg(shown(new_root)).emit();
            Cmd::new("pivot_root")
                .args([".", "."])
                .note("the old root is now stacked on the new one, at .")
                .emit();
        }
        let dir = std::fs::File::open(new_root).map_err(|e| Error::io(new_root, e))?;
        // SAFETY: plain syscalls on a valid fd and static C strings.
        unsafe {
            check(libc::fchdir(dir.as_raw_fd()), || {
                format!("chdir {}", new_root.display())
            })?;
            let dot = c".".as_ptr();
            check(libc::syscall(libc::SYS_pivot_root, dot, dot) as i32, || {
                format!("pivot_root {}", new_root.display())
            })?;
        }
        Ok(())
    }

    fn chroot(&self, root: &Path) -> Result<()> {
        if explain::enabled() {
            Cmd::new("cd").arg(shown(root)).emit();
            Cmd::new("exec")
                .args(["chroot", ".", "sh"])
                .note("no mount namespace: chroot instead of pivot_root (the rest runs inside)")
                .emit();
        }
        let c = cstr(root);
        // SAFETY: valid paths.
        unsafe {
            check(libc::chroot(c.as_ptr()), || {
                format!("chroot {}", root.display())
            })?;
            check(libc::chdir(c"/".as_ptr()), || "chdir /".into())?;
        }
        Ok(())
    }

    fn chdir(&self, dir: &Path) -> Result<()> {
        if explain::enabled() {
            Cmd::new("cd").arg(shown(dir)).emit();
        }
        std::env::set_current_dir(dir).map_err(|e| Error::io(dir, e))
    }

    fn mount_target(&self, root: &Root, rel: &Path, kind: Target) -> Result<OwnedFd> {
        if explain::enabled() && root.open_at(rel, libc::O_PATH, 0).is_err() {
            let cmd = match kind {
                Target::Dir => Cmd::new("mkdir").arg("-p"),
                Target::File => Cmd::new("touch"),
            };
            cmd.arg(root.display(rel)).emit();
        }
        root.mount_target(rel, kind)
            .map_err(|e| Error::io(&root.display(rel), e))
    }

    fn mkdir_all(&self, dir: &Path, mode: u32) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        if dir.is_dir() {
            return Ok(());
        }
        if explain::enabled() {
            Cmd::new("mkdir")
                .arg("-p")
                .arg("-m")
                .arg(format!("{mode:o}"))
                .arg(shown(dir))
                .emit();
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(|e| Error::io(dir, e))
    }

    fn touch(&self, path: &Path) -> Result<()> {
        if explain::enabled() {
            Cmd::new("touch").arg(shown(path)).emit();
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(|_| ())
            .map_err(|e| Error::io(path, e))
    }

    fn mknod(&self, path: &Path, node: &DeviceNode) -> Result<()> {
        let DeviceNode {
            kind,
            mode,
            major,
            minor,
            uid,
            gid,
        } = *node;
        let letter = match kind {
            libc::S_IFBLK => "b",
            libc::S_IFIFO => "p",
            _ => "c",
        };
        if explain::enabled() {
            let mut c = Cmd::new("mknod")
                .arg("-m")
                .arg(format!("{mode:o}"))
                .arg(shown(path))
                .arg(letter);
            if kind != libc::S_IFIFO {
                c = c.arg(major.to_string()).arg(minor.to_string());
            }
            c.emit();
            if uid != 0 || gid != 0 {
                Cmd::new("chown")
                    .arg(format!("{uid}:{gid}"))
                    .arg(shown(path))
                    .emit();
            }
        }
        let c = cstr(path);
        // The node must be exactly what the spec says: replace whatever is there.
        let _ = std::fs::remove_file(path);
        let dev = libc::makedev(major as u32, minor as u32);
        // SAFETY: valid path; the umask is cleared around the call so the mode is exact.
        let r = unsafe {
            let old = libc::umask(0);
            let r = libc::mknod(c.as_ptr(), kind | mode, dev);
            libc::umask(old);
            r
        };
        check(r, || format!("mknod {}", path.display()))?;
        if uid != 0 || gid != 0 {
            // SAFETY: valid path.
            let r = unsafe { libc::lchown(c.as_ptr(), uid, gid) };
            check(r, || format!("chown {}", path.display()))?;
        }
        Ok(())
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        if explain::enabled() {
            Cmd::new("ln").arg("-s").arg(target).arg(shown(link)).emit();
        }
        std::os::unix::fs::symlink(target, link).map_err(|e| Error::io(link, e))
    }

    fn copy_tree(&self, from: &Path, to: &Path) -> Result<()> {
        if explain::enabled() {
            Cmd::new("cp")
                .arg("-a")
                .arg(format!("{}/.", shown(from).display()))
                .arg(shown(to))
                .emit();
        }
        tree::copy(from, to)
    }

    fn rmdir(&self, dir: &Path) -> Result<()> {
        if explain::enabled() {
            Cmd::new("rmdir").arg(shown(dir)).emit();
        }
        std::fs::remove_dir(dir).map_err(|e| Error::io(dir, e))
    }

    fn write_file(&self, path: &Path, content: &str) -> Result<()> {
        if explain::enabled() {
            Cmd::new("echo").arg(content).stdout_to(shown(path)).emit();
        }
        std::fs::write(path, content).map_err(|e| Error::io(path, e))
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        if explain::enabled() {
            Cmd::new("hostname").arg(name).emit();
        }
        let c = CString::new(name).map_err(|_| Error::Init("hostname has a NUL byte".into()))?;
        // SAFETY: valid buffer and length.
        check(unsafe { libc::sethostname(c.as_ptr(), name.len()) }, || {
            format!("sethostname {name}")
        })
        .map(|_| ())
    }

    fn setdomainname(&self, name: &str) -> Result<()> {
        if explain::enabled() {
            Cmd::new("echo")
                .arg(name)
                .stdout_to("/proc/sys/kernel/domainname")
                .note("setdomainname(2)")
                .emit();
        }
        let c = cstring(name);
        // SAFETY: valid buffer and length.
        check(
            unsafe { libc::setdomainname(c.as_ptr(), name.len()) },
            || format!("setdomainname {name}"),
        )
        .map(|_| ())
    }

    fn unshare(&self, flags: libc::c_int) -> Result<()> {
        if explain::enabled() {
            explain::comment(&format!(
                "unshare(2): a new {0} namespace, rooted in the container's cgroup the init \
                 is in now (the --{0} of the unshare line above, run from that cgroup)",
                process::nsenter_name(flags),
            ));
        }
        // SAFETY: unshare with namespace flags only.
        check(unsafe { libc::unshare(flags) }, || {
            format!("unshare {} namespace", process::nsenter_name(flags))
        })
        .map(|_| ())
    }

    fn setns(&self, fd: BorrowedFd<'_>, nstype: libc::c_int, path: &Path) -> Result<()> {
        if explain::enabled() {
            explain::comment(&format!(
                "join the namespace at {} (setns(2)); in a shell: nsenter --{}={} sh",
                path.display(),
                process::nsenter_name(nstype),
                path.display()
            ));
        }
        // SAFETY: setns on a namespace fd.
        check(unsafe { libc::setns(fd.as_raw_fd(), nstype) }, || {
            format!("join namespace {}", path.display())
        })
        .map(|_| ())
    }

    fn setrlimit(&self, r: &process::Rlimit) -> Result<()> {
        if explain::enabled() {
            r.render().emit();
        }
        r.perform()
    }

    fn set_attr(&self, a: &attrs::Attr) -> Result<()> {
        if explain::enabled() {
            if let Some(c) = a.render() {
                c.emit();
            }
        }
        a.perform()
    }

    fn set_identity(&self, id: &Identity) -> Result<()> {
        // Rendered by the exec step that follows (one `setpriv ... -- PROGRAM` line).
        id.perform()
    }

    fn setsid(&self) -> Result<()> {
        if explain::enabled() {
            terminal::render_setsid();
        }
        pty::new_session()
    }

    fn open_pty(&self, pts: &Path) -> Result<Pty> {
        let p = pty::open(pts)?;
        if explain::enabled() {
            // Rendered after the fact: the slave's number is the kernel's answer.
            terminal::render_open(&p);
        }
        Ok(p)
    }

    fn set_console_size(&self, tty: &Slave, size: pty::Size) -> Result<()> {
        if explain::enabled() {
            terminal::render_size(tty, size).emit();
        }
        pty::set_size(tty.fd.as_fd(), size)
    }

    fn set_controlling_terminal(&self, tty: &Slave) -> Result<()> {
        if explain::enabled() {
            terminal::render_ctty(tty);
        }
        pty::make_controlling(tty.fd.as_fd())
    }

    fn chown_pty(&self, tty: &Slave, uid: u32) -> Result<()> {
        if explain::enabled() {
            Cmd::new("chown").arg(uid.to_string()).arg(&tty.path).emit();
        }
        // SAFETY: fchown on our fd; -1 keeps the group.
        check(
            unsafe { libc::fchown(tty.fd.as_raw_fd(), uid, u32::MAX) },
            || format!("chown {}", tty.path.display()),
        )
        .map(|_| ())
    }

    fn set_stdio(&self, stdio: &Stdio) -> Result<()> {
        // Rendered by the exec step that follows (redirections on the `exec` line).
        for (target, fd) in stdio.fds().into_iter().enumerate() {
            // SAFETY: dup2 onto our own stdio descriptors.
            check(unsafe { libc::dup2(fd, target as i32) }, || {
                "set up stdio".into()
            })?;
        }
        Ok(())
    }
}

/// Records the steps instead of performing them (tests).
#[cfg(test)]
#[derive(Default)]
pub struct Recorder {
    pub calls: std::cell::RefCell<Vec<String>>,
}

#[cfg(test)]
impl Recorder {
    fn push(&self, s: String) -> Result<()> {
        self.calls.borrow_mut().push(s);
        Ok(())
    }
}

#[cfg(test)]
impl Sys for Recorder {
    fn mount(&self, m: &MountArgs) -> Result<()> {
        self.push(m.render().render())
    }
    fn mount_setattr(&self, target: &Path, set: u64, clear: u64, recursive: bool) -> Result<()> {
        self.push(format!(
            "mount_setattr {} +{set:#x} -{clear:#x} recursive={recursive}",
            shown(target).display()
        ))
    }
    fn mount_idmapped(&self, m: &mount::Idmapped, target: &Path) -> Result<()> {
        self.push(mount::render_idmapped(m, target).render())
    }
    fn umount(&self, target: &Path, flags: libc::c_int) -> Result<()> {
        self.push(format!("umount {} {flags}", shown(target).display()))
    }
    fn pivot_root_here(&self, new_root: &Path) -> Result<()> {
        self.push(format!("pivot_root {}", shown(new_root).display()))
    }
    fn chroot(&self, root: &Path) -> Result<()> {
        self.push(format!("chroot {}", shown(root).display()))
    }
    fn chdir(&self, dir: &Path) -> Result<()> {
        self.push(format!("cd {}", shown(dir).display()))
    }
    fn mount_target(&self, root: &Root, rel: &Path, kind: Target) -> Result<OwnedFd> {
        let fd = root
            .mount_target(rel, kind)
            .map_err(|e| Error::io(&root.display(rel), e))?;
        self.push(format!("target {} {kind:?}", root.display(rel).display()))?;
        Ok(fd)
    }
    fn mkdir_all(&self, dir: &Path, mode: u32) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        self.push(format!("mkdir {} {mode:o}", shown(dir).display()))
    }
    fn touch(&self, path: &Path) -> Result<()> {
        std::fs::write(path, "").map_err(|e| Error::io(path, e))?;
        self.push(format!("touch {}", shown(path).display()))
    }
    fn mknod(&self, path: &Path, n: &DeviceNode) -> Result<()> {
        self.push(format!(
            "mknod {} {:o} {:o} {}:{}",
            shown(path).display(),
            n.kind,
            n.mode,
            n.major,
            n.minor
        ))
    }
    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        self.push(format!(
            "ln -s {} {}",
            shown(target).display(),
            shown(link).display()
        ))
    }
    fn copy_tree(&self, from: &Path, to: &Path) -> Result<()> {
        self.push(format!("cp -a {}/. {}", from.display(), to.display()))
    }
    fn rmdir(&self, dir: &Path) -> Result<()> {
        self.push(format!("rmdir {}", shown(dir).display()))
    }
    fn write_file(&self, path: &Path, content: &str) -> Result<()> {
        self.push(format!("write {} {content}", shown(path).display()))
    }
    fn sethostname(&self, name: &str) -> Result<()> {
        self.push(format!("hostname {name}"))
    }
    fn setdomainname(&self, name: &str) -> Result<()> {
        self.push(format!("domainname {name}"))
    }
    fn unshare(&self, flags: libc::c_int) -> Result<()> {
        self.push(format!("unshare {flags:#x}"))
    }
    fn setns(&self, _fd: BorrowedFd<'_>, nstype: libc::c_int, path: &Path) -> Result<()> {
        self.push(format!("setns {} {nstype:#x}", shown(path).display()))
    }
    fn setrlimit(&self, r: &process::Rlimit) -> Result<()> {
        self.push(r.render().render())
    }
    fn set_attr(&self, a: &attrs::Attr) -> Result<()> {
        self.push(format!("attr {a:?}"))
    }
    fn set_identity(&self, id: &Identity) -> Result<()> {
        self.push(format!("identity {}", id.render_setpriv().render()))
    }
    fn setsid(&self) -> Result<()> {
        self.push("setsid".into())
    }
    fn open_pty(&self, pts: &Path) -> Result<Pty> {
        // A real pair from the host's devpts (no privilege needed), so callers can use it.
        self.push(format!("open_pty {}", pts.display()))?;
        pty::open(Path::new("/dev/pts"))
    }
    fn set_console_size(&self, _tty: &Slave, size: pty::Size) -> Result<()> {
        self.push(format!("console_size {}x{}", size.rows, size.cols))
    }
    fn set_controlling_terminal(&self, _tty: &Slave) -> Result<()> {
        self.push("ctty".into())
    }
    fn chown_pty(&self, _tty: &Slave, uid: u32) -> Result<()> {
        self.push(format!("chown_pty {uid}"))
    }
    fn set_stdio(&self, stdio: &Stdio) -> Result<()> {
        self.push(format!(
            "stdio {}",
            match stdio {
                Stdio::Fds(_) => "fds",
                Stdio::Pty(_) => "pty",
            }
        ))
    }
}
