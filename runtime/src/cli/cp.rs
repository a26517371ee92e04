//! `minc cp`: files between the host and a running container, both ways, as `docker cp`:
//! `minc cp CONTAINER:SRC DEST` and `minc cp SRC CONTAINER:DEST`; a directory is copied
//! with everything in it, `SRC/.` copies a directory's contents, an existing directory as
//! the destination receives the source by its name.
//!
//! The container's side is its own view of its files (`/proc/PID/root`: its rootfs with its
//! volumes and tmpfs mounts), held as an fd; every path there is resolved inside it
//! (openat2 `RESOLVE_IN_ROOT`, `sysops::inroot`), so a symlink the container planted
//! (`/tmp/x -> /etc`, `../../..`) leads to the container's own `/etc`, never the host's,
//! and the copy itself never follows a link (`sysops::copy`). The host side is the user's
//! and is taken as given.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use sysops::copy::{copy_contents, copy_entry, CopyOptions};
use sysops::inroot::{Dir, Root};

use super::containers::Containers;

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Keep owners (uid/gid) as in the source
    #[arg(short, long)]
    pub archive: bool,
    /// CONTAINER:PATH or a host path
    pub source: String,
    /// CONTAINER:PATH or a host path
    pub destination: String,
}

/// `NAME:PATH` (a container), or a host path (one starting with `/` or `.`, or without a
/// colon).
fn split(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    arg.split_once(':').filter(|(c, _)| !c.is_empty())
}

/// The container's root as the container sees it, held as an fd.
fn container_root(data_root: &Path, rt: &crate::Runtime, key: &str) -> Result<Root> {
    let r = Containers::new(data_root).find(key)?;
    let state = rt.state(&r.id).map_err(|_| {
        anyhow!(
            "container {} is not running (cp needs a running container)",
            r.name
        )
    })?;
    use crate::state::Status;
    if !matches!(state.status, Status::Running | Status::Created) {
        bail!(
            "container {} is not running (cp needs a running container)",
            r.name
        );
    }
    let pid = state.pid;
    // The pidfd pins the process: if it is gone after /proc/PID/root was opened, that PID
    // may have been reused by another process, whose root we must not use.
    let pidfd = crate::sys::pidfd_open(pid)?;
    let root = Root::open(Path::new(&format!("/proc/{pid}/root")))
        .with_context(|| format!("container {}: its root", r.name))?;
    // SAFETY: signal 0 on a pidfd we own only checks that the process is alive.
    let alive = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    } == 0;
    if !alive {
        bail!("container {} stopped", r.name);
    }
    Ok(root)
}

/// A path's parts: the lexically clean parent, the last name (None for `/`), and whether
/// it ends in `/.` (copy the contents).
fn parts(p: &str) -> (PathBuf, Option<OsString>, bool) {
    let contents = p.ends_with("/.") || p == ".";
    let clean = sysops::inroot::clean(Path::new(p));
    let mut parent: Vec<OsString> = clean;
    let name = parent.pop();
    (parent.iter().collect(), name, contents)
}

/// A trusted host directory as a `Dir`.
fn host_dir(p: &Path) -> Result<Dir> {
    let f = std::fs::File::open(p).with_context(|| format!("{}", p.display()))?;
    if !f.metadata()?.is_dir() {
        bail!("{}: not a directory", p.display());
    }
    Ok(Dir::from_fd(f.into())?)
}

pub fn cp(data_root: &Path, rt: &crate::Runtime, a: &CpArgs) -> Result<()> {
    let opts = CopyOptions { owners: a.archive };
    match (split(&a.source), split(&a.destination)) {
        (Some((c, src)), None) => from_container(
            &container_root(data_root, rt, c)?,
            src,
            Path::new(&a.destination),
            opts,
        )
        .with_context(|| format!("cp {}:{src} {}", c, a.destination)),
        (None, Some((c, dst))) => to_container(
            Path::new(&a.source),
            &container_root(data_root, rt, c)?,
            dst,
            opts,
        )
        .with_context(|| format!("cp {} {c}:{dst}", a.source)),
        (Some(_), Some(_)) => bail!("cp: copying between two containers is not supported"),
        (None, None) => bail!("cp: one side must be CONTAINER:PATH"),
    }
}

fn from_container(root: &Root, src: &str, dest: &Path, opts: CopyOptions) -> Result<()> {
    let (parent, name, contents) = parts(src);
    // The source: its parent directory resolved inside the container, its last name not
    // followed (a symlink is copied as a symlink).
    let (src_dir, src_name): (Dir, Option<OsString>) = match &name {
        None => (root.dir(Path::new(""))?, None),
        Some(n) => (
            root.dir(&parent)
                .with_context(|| format!("{src}: no such directory"))?,
            Some(n.clone()),
        ),
    };
    let is_dir = match &src_name {
        None => true,
        Some(n) => {
            let st = src_dir
                .stat(n)?
                .ok_or_else(|| anyhow!("{src}: no such file or directory in the container"))?;
            st.st_mode & libc::S_IFMT == libc::S_IFDIR
        }
    };
    if contents || src_name.is_none() {
        if !is_dir {
            bail!("{src}: not a directory");
        }
        let from = match &src_name {
            Some(n) => src_dir.subdir(n)?,
            None => src_dir,
        };
        std::fs::create_dir_all(dest).with_context(|| format!("{}", dest.display()))?;
        return Ok(copy_contents(&from, &host_dir(dest)?, opts)?);
    }
    let src_name = src_name.expect("checked");
    // Into an existing directory under the source's name, or as the destination's name.
    let (dir, to_name) = if dest.is_dir() {
        (host_dir(dest)?, src_name.clone())
    } else {
        let dp = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dn = dest
            .file_name()
            .ok_or_else(|| anyhow!("{}: not a file name", dest.display()))?;
        (host_dir(dp)?, dn.to_os_string())
    };
    Ok(copy_entry(&src_dir, &src_name, &dir, &to_name, opts)?)
}

fn to_container(src: &Path, root: &Root, dst: &str, opts: CopyOptions) -> Result<()> {
    let meta = std::fs::symlink_metadata(src).with_context(|| format!("{}", src.display()))?;
    let contents = src.to_str().is_some_and(|s| s.ends_with("/.") || s == ".");
    let (dst_parent, dst_name, _) = parts(dst);
    // An existing directory (symlinks followed inside the container) receives the source.
    let existing_dir = root.dir(Path::new(dst)).ok();
    if contents {
        if !meta.is_dir() {
            bail!("{}: not a directory", src.display());
        }
        let to = match existing_dir {
            Some(d) => d,
            None => {
                let n = dst_name.ok_or_else(|| anyhow!("{dst}: not a directory"))?;
                let parent = root
                    .dir(&dst_parent)
                    .with_context(|| format!("{dst}: no such directory in the container"))?;
                parent.mkdir(&n, 0o755)?;
                parent.subdir(&n)?
            }
        };
        return Ok(copy_contents(&host_dir(src)?, &to, opts)?);
    }
    let src_parent = src
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let src_name = src
        .file_name()
        .ok_or_else(|| anyhow!("{}: name a file or directory", src.display()))?;
    let from = host_dir(src_parent)?;
    let (to, to_name): (Dir, OsString) = match existing_dir {
        Some(d) => (d, src_name.to_os_string()),
        None => {
            let n =
                dst_name.ok_or_else(|| anyhow!("{dst}: the container's root is a directory"))?;
            let parent = root
                .dir(&dst_parent)
                .with_context(|| format!("{dst}: no such directory in the container"))?;
            (parent, n)
        }
    };
    copy_entry(&from, OsStr::new(src_name), &to, &to_name, opts)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides() {
        assert_eq!(split("web:/etc/x"), Some(("web", "/etc/x")));
        assert_eq!(split("./a:b"), None);
        assert_eq!(split("/abs:x"), None);
        assert_eq!(split("plain"), None);
        let (p, n, c) = parts("/a/b/.");
        assert_eq!((p, n, c), (PathBuf::from("a"), Some("b".into()), true));
        let (p, n, _) = parts("/");
        assert_eq!((p, n), (PathBuf::new(), None));
    }
}
