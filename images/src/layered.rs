//! The tree that overlayfs will show, seen while unpacking one more layer on top of it.
//!
//! In overlay mode each layer is unpacked into a directory of its own, but its entries are
//! resolved the way they will be seen: through the layers below (a lower layer's
//! `var/run -> /run` is followed by an upper layer's `var/run/x`), with whiteouts (a 0/0
//! character device) hiding what is below them and opaque directories
//! (`trusted.overlay.opaque=y`) hiding the lower directories of the same path. See the
//! kernel's Documentation/filesystems/overlayfs.rst and the OCI image-spec's layer.md.
//!
//! Every look into a layer is one openat2(2) relative to that layer's root fd with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: the paths looked up here are already free of
//! symlinks (symlinks are read and followed here, inside the merged root), so the kernel is
//! asked never to follow one, and never to leave the layer.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use sysops::inroot::{self, Root, Stat};

const MAX_LINKS: usize = 40;
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What one layer has at a path.
pub enum Found {
    Missing,
    /// A 0/0 character device: the path is deleted from the layers below.
    Whiteout,
    Symlink {
        target: PathBuf,
        st: Stat,
    },
    Dir {
        opaque: bool,
        st: Stat,
    },
    /// A file, device node or FIFO (`fd` is an O_PATH fd of it).
    Other {
        st: Stat,
        fd: OwnedFd,
    },
}

/// Looks at `path` (a symlink-free path inside the layer) in one layer, without following.
pub fn lookup(layer: &Root, path: &[OsString]) -> io::Result<Found> {
    let p: PathBuf = path.iter().collect();
    let resolve = libc::RESOLVE_BENEATH
        | libc::RESOLVE_NO_SYMLINKS
        | libc::RESOLVE_NO_MAGICLINKS
        | libc::RESOLVE_NO_XDEV;
    let fd = match inroot::openat2(
        layer.as_fd(),
        &p,
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        resolve,
    ) {
        Ok(fd) => fd,
        // Missing here; or a symlink or file on the way, hidden by a directory above.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
            ) =>
        {
            return Ok(Found::Missing)
        }
        Err(e) => return Err(e),
    };
    let d = inroot::Dir::from_fd(fd)?;
    let st = d.stat_self()?;
    Ok(match st.st_mode & libc::S_IFMT {
        libc::S_IFLNK => Found::Symlink {
            target: d.readlink_self()?,
            st,
        },
        libc::S_IFCHR if st.st_rdev == 0 => Found::Whiteout,
        libc::S_IFDIR => {
            let opaque = inroot::openat2(
                d.as_fd(),
                Path::new("."),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
                libc::RESOLVE_BENEATH,
            )
            .and_then(|f| inroot::get_xattr(f.as_fd(), OPAQUE_XATTR))?
            .is_some_and(|v| v == b"y");
            Found::Dir { opaque, st }
        }
        _ => Found::Other {
            st,
            fd: d.into_fd(),
        },
    })
}

/// The stack of layers, top first (the layer being unpacked, then the ones below).
pub struct Stack<'a> {
    pub layers: Vec<&'a Root>,
}

/// A path resolved in the merged view: its symlink-free components, and how many layers
/// (from the top) can still show something below it.
pub struct Resolved {
    pub parts: Vec<OsString>,
    pub visible: usize,
}

impl Stack<'_> {
    /// Resolves `rel` in the merged view: symlinks met in any layer are followed inside the
    /// merged root (absolute targets restart at it, `..` stops at it); the last component is
    /// followed only if `follow_last`. A component that is a file where a directory is
    /// needed is an error.
    pub fn resolve(&self, rel: &[OsString], follow_last: bool) -> Result<Resolved, String> {
        let mut pending: Vec<OsString> = rel.iter().rev().cloned().collect();
        let mut parts: Vec<OsString> = Vec::new();
        // visible[i]: layers that can show something below parts[..i].
        let mut visible: Vec<usize> = vec![self.layers.len()];
        let mut links = 0;
        while let Some(c) = pending.pop() {
            if c == ".." {
                if parts.pop().is_some() {
                    visible.pop();
                }
                continue;
            }
            if pending.is_empty() && !follow_last {
                parts.push(c);
                let v = *visible.last().expect("root");
                return Ok(Resolved { parts, visible: v });
            }
            parts.push(c);
            let (found, below) = self.find(&parts, *visible.last().expect("root"))?;
            match found {
                Found::Symlink { target, .. } => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err("too many levels of symbolic links".into());
                    }
                    parts.pop();
                    if target.is_absolute() {
                        parts.clear();
                        visible.truncate(1);
                    }
                    let comps: Vec<OsString> = target
                        .components()
                        .filter_map(|c| match c {
                            std::path::Component::Normal(n) => Some(n.to_os_string()),
                            std::path::Component::ParentDir => Some("..".into()),
                            _ => None,
                        })
                        .collect();
                    pending.extend(comps.into_iter().rev());
                }
                Found::Dir { .. } => visible.push(below),
                // Nothing there yet: it will be made in the top layer, and nothing below can
                // show through a path that no layer has.
                Found::Missing | Found::Whiteout => visible.push(1),
                Found::Other { .. } if pending.is_empty() => visible.push(0),
                Found::Other { .. } => {
                    let shown: PathBuf = parts.iter().collect();
                    return Err(format!("{} is not a directory", shown.display()));
                }
            }
        }
        let v = *visible.last().expect("root");
        Ok(Resolved { parts, visible: v })
    }

    /// What the merged view shows at `path` (whose parent is visible in `visible` layers),
    /// which layer shows it, and how many layers can show something below it.
    pub fn find(&self, path: &[OsString], visible: usize) -> Result<(Found, usize), String> {
        let err = |e: io::Error| {
            let p: PathBuf = path.iter().collect();
            format!("{}: {e}", p.display())
        };
        for (i, layer) in self.layers.iter().enumerate().take(visible) {
            match lookup(layer, path).map_err(err)? {
                Found::Missing => continue,
                Found::Dir { opaque, st } => {
                    // Lower directories of the same path merge in, down to an opaque one or
                    // to a layer where the path is not a directory.
                    let mut below = visible;
                    if opaque {
                        below = i + 1;
                    } else {
                        for (j, lower) in self.layers.iter().enumerate().take(visible).skip(i + 1) {
                            match lookup(lower, path).map_err(err)? {
                                Found::Missing => {}
                                Found::Dir { opaque: true, .. } => {
                                    below = j + 1;
                                    break;
                                }
                                Found::Dir { .. } => {}
                                _ => {
                                    below = j;
                                    break;
                                }
                            }
                        }
                    }
                    return Ok((Found::Dir { opaque, st }, below));
                }
                other => return Ok((other, i)),
            }
        }
        Ok((Found::Missing, 0))
    }

    /// The topmost layer showing `path` (and what it has there), within `visible` layers.
    pub fn owner(
        &self,
        path: &[OsString],
        visible: usize,
    ) -> Result<Option<(usize, Found)>, String> {
        for (i, layer) in self.layers.iter().enumerate().take(visible) {
            let p: PathBuf = path.iter().collect();
            match lookup(layer, path).map_err(|e| format!("{}: {e}", p.display()))? {
                Found::Missing => continue,
                Found::Whiteout => return Ok(None),
                f => return Ok(Some((i, f))),
            }
        }
        Ok(None)
    }
}
