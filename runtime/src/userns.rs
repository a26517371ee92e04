//! User namespaces: the container's uids and gids are a window onto a range of the host's.
//!
//! A process cloned with CLONE_NEWUSER starts in a user namespace with no mapping at all: it
//! holds every capability there, but only over objects its namespace owns, and its uid is the
//! overflow uid (65534) until a process outside writes `/proc/PID/uid_map` and `gid_map`
//! ("inside outside count" lines). minc's parent writes them while the init waits for `Go`,
//! as runc does; the init then becomes uid 0 of its namespace. An unprivileged user may map
//! only its own uid (after writing `deny` to `/proc/PID/setgroups`); wider ranges from
//! /etc/subuid go through the setuid helpers newuidmap(1) and newgidmap(1).
//!
//! A user namespace given by path is joined instead. Every other namespace belongs to the
//! user namespace its creator was in, so when the container also gets new namespaces, the
//! init must be cloned from *inside* the joined one: an intermediate process joins it
//! (setns) and clones the init with CLONE_PARENT, so the init is still `create`'s child
//! (runc's nsexec does the same with its stage-1 child). The caller itself cannot join:
//! a process never leaves a user namespace it entered.
//! Man pages: user_namespaces(7), subuid(5), newuidmap(1), unshare(1), setns(2), clone(2).

use oci_spec::runtime::LinuxIdMapping;
use sysops::explain::Cmd;

use crate::error::{Error, Result};
use crate::spec::{self, LinuxNamespaceType, Spec};

/// The spec's id mappings.
#[derive(Debug, Clone, Default)]
pub struct Maps {
    pub uid: Vec<LinuxIdMapping>,
    pub gid: Vec<LinuxIdMapping>,
}

impl Maps {
    pub fn of(spec: &Spec) -> Maps {
        let l = spec.linux().as_ref();
        Maps {
            uid: l.and_then(|l| l.uid_mappings().clone()).unwrap_or_default(),
            gid: l.and_then(|l| l.gid_mappings().clone()).unwrap_or_default(),
        }
    }

    /// Checks the mappings the spec gives a new user namespace.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (what, m) in [("uidMappings", &self.uid), ("gidMappings", &self.gid)] {
            if m.is_empty() {
                return Err(format!(
                    "a new user namespace needs linux.{what} (the container's ids on the host)"
                ));
            }
            if m.len() > 340 {
                return Err(format!(
                    "linux.{what}: at most 340 ranges (the kernel's limit)"
                ));
            }
            for r in m {
                if r.size() == 0 {
                    return Err(format!("linux.{what}: a range of size 0"));
                }
                if u64::from(r.container_id()) + u64::from(r.size()) > 1 << 32
                    || u64::from(r.host_id()) + u64::from(r.size()) > 1 << 32
                {
                    return Err(format!("linux.{what}: a range past the last uid"));
                }
            }
        }
        Ok(())
    }

    /// The host uid that uid `inside` of the container is.
    pub fn host_uid(&self, inside: u32) -> Option<u32> {
        to_host(&self.uid, inside)
    }

    pub fn host_gid(&self, inside: u32) -> Option<u32> {
        to_host(&self.gid, inside)
    }

    /// The unshare(1) options that make the same mappings (util-linux takes one range per
    /// option: `--map-users=OUTER,INNER,COUNT`).
    pub fn unshare_args(&self, cmd: Cmd) -> Cmd {
        let mut c = cmd;
        for r in &self.uid {
            c = c.arg(format!(
                "--map-users={},{},{}",
                r.host_id(),
                r.container_id(),
                r.size()
            ));
        }
        for r in &self.gid {
            c = c.arg(format!(
                "--map-groups={},{},{}",
                r.host_id(),
                r.container_id(),
                r.size()
            ));
        }
        c
    }

    /// Writes the mappings of the new user namespace of process `pid` (its parent's job).
    pub fn write(&self, pid: i32) -> Result<()> {
        // SAFETY: geteuid cannot fail.
        let privileged = unsafe { libc::geteuid() } == 0;
        let text = |m: &[LinuxIdMapping]| {
            m.iter()
                .map(|r| format!("{} {} {}\n", r.container_id(), r.host_id(), r.size()))
                .collect::<String>()
        };
        let own_only = |m: &[LinuxIdMapping], own: u32| {
            m.len() == 1 && m[0].size() == 1 && m[0].host_id() == own
        };
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        if privileged || (own_only(&self.uid, uid) && own_only(&self.gid, gid)) {
            if !privileged {
                // An unprivileged writer may map its own gid only once setgroups is denied.
                write_proc(pid, "setgroups", "deny")?;
            }
            write_proc(pid, "uid_map", &text(&self.uid))?;
            write_proc(pid, "gid_map", &text(&self.gid))?;
            return Ok(());
        }
        // Ranges beyond one's own uid: the setuid helpers check them against /etc/subuid.
        for (helper, m) in [("newuidmap", &self.uid), ("newgidmap", &self.gid)] {
            let mut cmd = std::process::Command::new(helper);
            cmd.arg(pid.to_string());
            for r in m {
                cmd.args([
                    r.container_id().to_string(),
                    r.host_id().to_string(),
                    r.size().to_string(),
                ]);
            }
            let out = cmd
                .output()
                .map_err(|e| Error::sys(format!("run {helper} (package uidmap)"), e))?;
            if !out.status.success() {
                return Err(Error::Init(format!(
                    "{helper}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        Ok(())
    }
}

impl Maps {
    /// A user namespace with these mappings and nothing in it, as an open fd: what an
    /// idmapped mount takes (mount_setattr(2) MOUNT_ATTR_IDMAP only reads its mappings). A
    /// child is cloned into a new user namespace, mapped, its namespace opened, and killed.
    pub fn namespace(&self) -> Result<std::os::fd::OwnedFd> {
        // SAFETY: create runs single-threaded (checked); the child only waits to be killed.
        let pid = unsafe { crate::sys::clone_fork(libc::CLONE_NEWUSER) }?;
        if pid == 0 {
            loop {
                // SAFETY: waiting for the parent's SIGKILL.
                unsafe { libc::pause() };
            }
        }
        let opened = self.write(pid).and_then(|_| {
            let path = format!("/proc/{pid}/ns/user");
            std::fs::File::open(&path)
                .map(std::os::fd::OwnedFd::from)
                .map_err(|e| Error::sys(format!("open {path}"), e))
        });
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        opened
    }

    /// The mappings as mount(8)'s `X-mount.idmap=` value (util-linux 2.39):
    /// `u:0:100000:65536 g:0:100000:65536`.
    pub fn idmap_option(&self) -> String {
        let one = |kind: &str, m: &[LinuxIdMapping]| {
            m.iter()
                .map(|r| format!("{kind}:{}:{}:{}", r.container_id(), r.host_id(), r.size()))
                .collect::<Vec<_>>()
        };
        let mut all = one("u", &self.uid);
        all.extend(one("g", &self.gid));
        all.join(" ")
    }
}

fn to_host(m: &[LinuxIdMapping], inside: u32) -> Option<u32> {
    m.iter().find_map(|r| {
        let off = inside.checked_sub(r.container_id())?;
        (off < r.size()).then(|| r.host_id() + off)
    })
}

fn write_proc(pid: i32, file: &str, text: &str) -> Result<()> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, text).map_err(|e| Error::sys(format!("write {path}"), e))
}

/// The user namespace the spec joins by path, if any.
pub fn joined(spec: &Spec) -> Option<&std::path::Path> {
    spec::namespaces(spec)
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)
        .and_then(|n| n.path().as_deref())
}

/// The user namespace joined by path that the init must be cloned inside of: when the spec
/// also creates other namespaces (see the module docs).
pub fn clone_inside_of(spec: &Spec) -> Option<&std::path::Path> {
    let creates = spec::namespaces(spec)
        .iter()
        .any(|n| n.typ() != LinuxNamespaceType::User && n.path().is_none());
    joined(spec).filter(|_| creates)
}

/// Clones the init inside the user namespace open at `userns` (see the module docs), with
/// the namespaces of `flags` created there, and in the v2 cgroup `cgroup` when given and
/// the kernel can. Returns as a clone does: 0 in the init, its PID in the caller; and
/// whether it was born in the cgroup. The intermediate process never returns.
///
/// # Safety
/// As `sys::clone_fork`: the process must be single-threaded.
pub unsafe fn clone_inside(
    userns: &std::os::fd::OwnedFd,
    path: &std::path::Path,
    flags: libc::c_int,
    cgroup: Option<std::os::fd::RawFd>,
) -> Result<(i32, bool)> {
    use std::os::fd::AsRawFd;
    let (rd, wr) = crate::sys::socketpair()?;
    // SAFETY: the caller guarantees a single thread.
    let mid = unsafe { crate::sys::clone_fork(0) }?;
    if mid == 0 {
        // The intermediate: join, become root there when root is mapped (as runc's nsexec;
        // otherwise the ids stay the overflow ids until the process's user is set), clone.
        // SAFETY: setns on an open namespace fd; plain id calls.
        let joined = unsafe { libc::setns(userns.as_raw_fd(), libc::CLONE_NEWUSER) } == 0;
        let reply: [i32; 2] = if !joined {
            [
                -std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EPERM),
                0,
            ]
        } else {
            unsafe {
                libc::setresgid(0, 0, 0);
                libc::setresuid(0, 0, 0);
            }
            let flags = flags | libc::CLONE_PARENT;
            // SAFETY: still single-threaded.
            let born =
                cgroup.and_then(|fd| unsafe { crate::sys::clone3_into_cgroup(flags, fd) }.ok());
            let pid = match born {
                Some(pid) => Ok(pid),
                None => unsafe { crate::sys::clone_fork(flags) },
            };
            match pid {
                Ok(0) => return Ok((0, born.is_some())),
                Ok(pid) => [pid, i32::from(born.is_some())],
                Err(Error::Sys { err, .. }) => [-err.raw_os_error().unwrap_or(libc::EINVAL), 0],
                Err(_) => [-libc::EINVAL, 0],
            }
        };
        let bytes: Vec<u8> = reply.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let _ = crate::sys::send(&wr, &bytes);
        // SAFETY: leaving the forked copy without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    drop(wr);
    let got = crate::sys::recv(&rd);
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(mid, std::ptr::null_mut(), 0) };
    let got = got.map_err(|e| Error::sys("clone the init in the joined user namespace", e))?;
    let word = |i: usize| {
        got.get(i * 4..i * 4 + 4)
            .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
    };
    match (word(0), word(1)) {
        (Some(pid), Some(born)) if pid > 0 => Ok((pid, born != 0)),
        (Some(e), _) if e < 0 => Err(Error::sys(
            format!(
                "join the user namespace {} and clone the init there",
                path.display()
            ),
            std::io::Error::from_raw_os_error(-e),
        )),
        _ => Err(Error::Init(
            "the process joining the user namespace died".into(),
        )),
    }
}

/// Whether the spec asks for a new user namespace (not one given by path).
pub fn new_userns(spec: &Spec) -> bool {
    spec::namespaces(spec)
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none())
}

/// Whether the container runs in a user namespace at all.
pub fn in_userns(spec: &Spec) -> bool {
    spec::has_namespace(spec, LinuxNamespaceType::User)
}

/// In the init, once its mappings exist: become root of the new namespace (the uid the
/// clone left is unmapped).
pub fn become_root() -> Result<()> {
    // SAFETY: plain syscalls.
    unsafe {
        crate::error::check(libc::setresgid(0, 0, 0), || {
            "setgid 0 in the user namespace (is gid 0 mapped?)".into()
        })?;
        crate::error::check(libc::setresuid(0, 0, 0), || {
            "setuid 0 in the user namespace (is uid 0 mapped?)".into()
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(json: &str) -> Maps {
        let m: Vec<LinuxIdMapping> = serde_json::from_str(json).unwrap();
        Maps {
            uid: m.clone(),
            gid: m,
        }
    }

    #[test]
    fn translation_and_rules() {
        let m = maps(
            r#"[{"containerID":0,"hostID":100000,"size":1000},{"containerID":1000,"hostID":1000,"size":1}]"#,
        );
        assert_eq!(m.host_uid(0), Some(100_000));
        assert_eq!(m.host_uid(999), Some(100_999));
        assert_eq!(m.host_uid(1000), Some(1000));
        assert_eq!(m.host_uid(1001), None);
        m.validate().unwrap();
        assert!(Maps::default().validate().is_err());
        assert!(maps(r#"[{"containerID":0,"hostID":4294967295,"size":2}]"#)
            .validate()
            .is_err());
        assert_eq!(
            m.unshare_args(Cmd::new("unshare")).render(),
            "unshare --map-users=100000,0,1000 --map-users=1000,1000,1 \
             --map-groups=100000,0,1000 --map-groups=1000,1000,1"
        );
    }
}
