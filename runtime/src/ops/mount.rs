//! Mounts: mount(2) and mount_setattr(2) calls, and how each is written with mount(8).
//!
//! One mount(2) call does one of several things depending on its flags (see mount(2)): a new
//! filesystem (`-t TYPE`), a bind mount (`MS_BIND`, `--bind`/`--rbind`), a remount that changes
//! flags (`MS_REMOUNT`, `-o remount,...`), or a propagation change (`MS_SHARED`/`MS_SLAVE`/...,
//! `--make-rslave`). [`MountArgs::render`] picks the same form from the same flags.
//! Man pages: mount(2), mount(8), mount_setattr(2), mount_namespaces(7).

use std::path::{Path, PathBuf};

use sysops::explain::{self, Cmd};

use super::shown;
use crate::error::{check, Result};
use crate::sys::{cstr, cstring};

const PROPAGATION: libc::c_ulong =
    libc::MS_SHARED | libc::MS_PRIVATE | libc::MS_SLAVE | libc::MS_UNBINDABLE;

/// The arguments of one mount(2) call.
#[derive(Debug, Clone, Default)]
pub struct MountArgs {
    pub source: Option<PathBuf>,
    pub target: PathBuf,
    pub fstype: Option<String>,
    pub flags: libc::c_ulong,
    /// Filesystem-specific options (`mode=755,size=65536k`).
    pub data: String,
}

impl MountArgs {
    /// A propagation change: `mount --make-rslave TARGET`.
    pub fn propagation(target: &Path, flags: libc::c_ulong) -> MountArgs {
        MountArgs {
            target: target.into(),
            flags,
            ..Default::default()
        }
    }

    /// A bind mount (`recursive`: with everything mounted below `source`).
    pub fn bind(source: &Path, target: &Path, recursive: bool) -> MountArgs {
        MountArgs {
            source: Some(source.into()),
            target: target.into(),
            flags: libc::MS_BIND | if recursive { libc::MS_REC } else { 0 },
            ..Default::default()
        }
    }

    /// A new filesystem of `fstype` from `source` (proc, tmpfs, ...).
    pub fn fs(
        fstype: &str,
        source: &Path,
        target: &Path,
        flags: libc::c_ulong,
        data: &str,
    ) -> MountArgs {
        MountArgs {
            source: Some(source.into()),
            target: target.into(),
            fstype: Some(fstype.into()),
            flags,
            data: data.into(),
        }
    }

    pub fn perform(&self) -> Result<()> {
        let src = self.source.as_deref().map(cstr);
        let tgt = cstr(&self.target);
        let ty = self.fstype.as_deref().map(cstring);
        let dat = (!self.data.is_empty()).then(|| cstring(&self.data));
        // SAFETY: all pointers are valid C strings or null.
        let r = unsafe {
            libc::mount(
                src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                tgt.as_ptr(),
                ty.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                self.flags,
                dat.as_ref().map_or(std::ptr::null(), |s| s.as_ptr().cast()),
            )
        };
        check(r, || format!("mount {}", shown(&self.target).display())).map(|_| ())
    }

    /// The mount(8) command that makes the same call.
    pub fn render(&self) -> Cmd {
        let target = shown(&self.target);
        let rec = self.flags & libc::MS_REC != 0;
        if self.flags & PROPAGATION != 0 {
            return Cmd::new("mount")
                .arg(propagation_option(self.flags))
                .arg(target);
        }
        let mut opts = flag_options(self.flags);
        if !self.data.is_empty() {
            opts.push(self.data.clone());
        }
        if self.flags & libc::MS_REMOUNT != 0 {
            let mut o = vec!["remount".to_string()];
            let mut c = Cmd::new("mount");
            if self.flags & libc::MS_BIND != 0 {
                o.push("bind".into());
            } else {
                // mount(8) would add the filesystem's current options (read back from
                // mountinfo, e.g. uid= ids a user namespace cannot map): pass only ours.
                c = c.args(["--options-mode", "ignore"]);
            }
            o.extend(opts);
            return c.arg("-o").arg(o.join(",")).arg(target);
        }
        if self.flags & libc::MS_MOVE != 0 {
            let src = self.source.as_deref().map(shown).unwrap_or_default();
            return Cmd::new("mount").arg("--move").arg(src).arg(target);
        }
        if self.flags & libc::MS_BIND != 0 {
            let src = self.source.as_deref().map(shown).unwrap_or_default();
            return Cmd::new("mount")
                .arg(if rec { "--rbind" } else { "--bind" })
                .arg(src)
                .arg(target);
        }
        let fstype = self.fstype.clone().unwrap_or_else(|| "none".into());
        let source = self
            .source
            .as_deref()
            .map(shown)
            .unwrap_or_else(|| PathBuf::from(&fstype));
        let mut c = Cmd::new("mount").arg("-t").arg(&fstype);
        if !opts.is_empty() {
            c = c.arg("-o").arg(opts.join(","));
        }
        c.arg(source).arg(target)
    }
}

/// mount(8)'s names for the MS_* flags that describe a mount (not the operation).
const FLAG_NAMES: &[(libc::c_ulong, &str)] = &[
    (libc::MS_RDONLY, "ro"),
    (libc::MS_NOSUID, "nosuid"),
    (libc::MS_NODEV, "nodev"),
    (libc::MS_NOEXEC, "noexec"),
    (libc::MS_SYNCHRONOUS, "sync"),
    (libc::MS_DIRSYNC, "dirsync"),
    (libc::MS_MANDLOCK, "mand"),
    (libc::MS_NOATIME, "noatime"),
    (libc::MS_NODIRATIME, "nodiratime"),
    (libc::MS_RELATIME, "relatime"),
    (libc::MS_STRICTATIME, "strictatime"),
    (256, "nosymfollow"), // MS_NOSYMFOLLOW
    (libc::MS_LAZYTIME, "lazytime"),
    (libc::MS_I_VERSION, "iversion"),
    (libc::MS_POSIXACL, "acl"),
    (libc::MS_SILENT, "silent"),
];

fn flag_options(flags: libc::c_ulong) -> Vec<String> {
    FLAG_NAMES
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// The `--make-*` option of mount(8) for a propagation flag.
pub fn propagation_option(flag: libc::c_ulong) -> &'static str {
    let rec = flag & libc::MS_REC != 0;
    match (flag & PROPAGATION, rec) {
        (libc::MS_SHARED, false) => "--make-shared",
        (libc::MS_SHARED, true) => "--make-rshared",
        (libc::MS_SLAVE, false) => "--make-slave",
        (libc::MS_SLAVE, true) => "--make-rslave",
        (libc::MS_UNBINDABLE, false) => "--make-unbindable",
        (libc::MS_UNBINDABLE, true) => "--make-runbindable",
        (_, false) => "--make-private",
        (_, true) => "--make-rprivate",
    }
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
use sysops::idmap::AT_RECURSIVE;

const ATTR_NAMES: &[(u64, &str, &str)] = &[
    (MOUNT_ATTR_RDONLY, "ro", "rw"),
    (MOUNT_ATTR_NOSUID, "nosuid", "suid"),
    (MOUNT_ATTR_NODEV, "nodev", "dev"),
    (MOUNT_ATTR_NOEXEC, "noexec", "exec"),
    (MOUNT_ATTR_NOATIME, "noatime", "atime"),
    (MOUNT_ATTR_STRICTATIME, "strictatime", "nostrictatime"),
    (MOUNT_ATTR_NODIRATIME, "nodiratime", "diratime"),
    (MOUNT_ATTR_NOSYMFOLLOW, "nosymfollow", "symfollow"),
];

/// mount_setattr(2) (Linux 5.12): one call changes a mount, and with `recursive` every mount
/// below it; `MS_REMOUNT` would only reach the top one.
pub fn setattr(target: &Path, set: u64, clear: u64, recursive: bool) -> Result<()> {
    let c = cstr(target);
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    sysops::idmap::mount_setattr(libc::AT_FDCWD, &c, flags, set, clear, None).map_err(|e| {
        crate::Error::sys(
            format!("change mount attributes of {}", shown(target).display()),
            e,
        )
    })
}

/// An idmapped copy of a mount, detached, ready to be put in place (see `crate::idmap`).
#[derive(Debug)]
pub struct Idmapped {
    /// The detached mount tree (open_tree(2) with OPEN_TREE_CLONE).
    pub tree: std::os::fd::OwnedFd,
    /// What it is a copy of.
    pub source: PathBuf,
    /// The mappings, as mount(8)'s X-mount.idmap= value.
    pub map: String,
    /// With everything mounted below the source (`ridmap`).
    pub recursive: bool,
}

/// An idmapped copy of `source` (see `sysops::idmap::idmapped_tree`), errors naming it.
pub fn idmapped_tree(
    source: &Path,
    userns: std::os::fd::BorrowedFd<'_>,
    tree: bool,
    all: bool,
) -> Result<std::os::fd::OwnedFd> {
    sysops::idmap::idmapped_tree(source, userns, tree, all).map_err(|e| {
        crate::error::Error::sys(
            format!(
                "idmap the mount of {} (its filesystem must support idmapped mounts, see mount_setattr(2))",
                source.display()
            ),
            e,
        )
    })
}

/// move_mount(2) of a detached tree onto `target`.
pub fn move_tree(tree: std::os::fd::BorrowedFd<'_>, target: &Path) -> Result<()> {
    sysops::idmap::move_tree(tree, target)
        .map_err(|e| crate::error::Error::sys(format!("mount {}", shown(target).display()), e))
}

/// The mount(8) command that makes the same idmapped bind mount (util-linux 2.39 or later;
/// older ones ignore the X-mount option and make a plain bind mount).
pub fn render_idmapped(m: &Idmapped, target: &Path) -> Cmd {
    Cmd::new("mount")
        .arg(if m.recursive { "--rbind" } else { "--bind" })
        .arg("-o")
        .arg(format!("X-mount.idmap={}", m.map))
        .arg(&m.source)
        .arg(shown(target))
        .note("an idmapped copy made by minc with open_tree(2) and mount_setattr(2) MOUNT_ATTR_IDMAP, moved into place with move_mount(2)")
}

/// Which of `data`'s options the filesystem type `fstype` refuses, with the kernel's words
/// for it. mount(2) answers a bad option with a bare EINVAL; here each option is handed on
/// its own to a fresh filesystem context (fsopen(2), fsconfig(2): nothing is mounted), so the
/// kernel names the one it does not take. Only called to explain a mount that failed.
pub fn rejected_option(fstype: &str, data: &str) -> Option<(String, String)> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    let ty = cstring(fstype);
    // SAFETY: valid C string; the fd returned is ours.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, ty.as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh fd.
    let mut ctx = unsafe { std::fs::File::from_raw_fd(fd as i32) };
    for opt in data.split(',').filter(|o| !o.is_empty()) {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (cstring(k), Some(cstring(v))),
            None => (cstring(opt), None),
        };
        let cmd = if value.is_some() {
            FSCONFIG_SET_STRING
        } else {
            FSCONFIG_SET_FLAG
        };
        // SAFETY: valid fd and C strings (or null for a flag).
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fd,
                cmd,
                key.as_ptr(),
                value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
                0,
            )
        };
        if r < 0 {
            let err = std::io::Error::last_os_error();
            // The filesystem's own message, when it left one ("e tmpfs: Bad value for 'size'").
            let mut buf = [0u8; 512];
            let said = match ctx.read(&mut buf) {
                Ok(n) if n > 2 => String::from_utf8_lossy(&buf[2..n]).trim().to_string(),
                _ => err.to_string(),
            };
            return Some((opt.to_string(), said));
        }
    }
    None
}

/// Explains a mount_setattr call as the remount that does the same to the top mount.
pub fn render_setattr(target: &Path, set: u64, clear: u64, recursive: bool) {
    let mut opts = vec!["remount".to_string(), "bind".to_string()];
    for (bit, on, off) in ATTR_NAMES {
        if set & bit != 0 {
            opts.push(on.to_string());
        } else if clear & bit != 0
            && (set & MOUNT_ATTR__ATIME == 0 || *bit & MOUNT_ATTR__ATIME == 0)
        {
            opts.push(off.to_string());
        }
    }
    let mut c = Cmd::new("mount").arg("-o").arg(opts.join(",")).arg(target);
    if recursive {
        c = c.note("and every mount below it: mount_setattr(2) with AT_RECURSIVE");
    }
    if explain::enabled() {
        c.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_form_of_mount() {
        let p = Path::new;
        assert_eq!(
            MountArgs::propagation(p("/"), libc::MS_SLAVE | libc::MS_REC)
                .render()
                .render(),
            "mount --make-rslave /"
        );
        assert_eq!(
            MountArgs::bind(p("/a"), p("/b c"), true).render().render(),
            "mount --rbind /a '/b c'"
        );
        assert_eq!(
            MountArgs::fs(
                "tmpfs",
                p("tmpfs"),
                p("/r/dev"),
                libc::MS_NOSUID | libc::MS_STRICTATIME,
                "mode=755,size=65536k"
            )
            .render()
            .render(),
            "mount -t tmpfs -o nosuid,strictatime,mode=755,size=65536k tmpfs /r/dev"
        );
        let remount = MountArgs {
            target: "/r/x".into(),
            flags: libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID,
            ..Default::default()
        };
        assert_eq!(
            remount.render().render(),
            "mount -o remount,bind,ro,nosuid /r/x"
        );
    }
}
