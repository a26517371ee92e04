//! Applying tar layers to a directory, safely.
//!
//! The tar crate parses; the writes are ours, so that every path is resolved inside the
//! rootfs (see `safepath`) and whiteouts, hard links, ownership, modes (setuid included) and
//! xattrs come out right. Two whiteout styles:
//! - `Whiteouts::Apply` (flattening into one tree): `.wh.NAME` deletes NAME, `.wh..wh..opq`
//!   empties the directory of what lower layers put there.
//! - `Whiteouts::Overlay` (one directory per layer, stacked by overlayfs): `.wh.NAME` becomes
//!   a 0/0 character device and an opaque directory gets `trusted.overlay.opaque=y`.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::safepath;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    Apply,
    Overlay,
}

const WH_PREFIX: &str = ".wh.";
const WH_OPAQUE: &str = ".wh..wh..opq";

/// A reader that hashes what passes through (to check a layer's diff_id while unpacking).
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks one layer (compressed or not) into `dest`. `layer` names it in errors;
/// `diff_id`, when given, is checked against the uncompressed stream. `lowers` are the
/// directories of the layers below (overlay mode), where a hard link may point.
pub fn apply_layer(
    blob: impl Read,
    dest: &Path,
    mode: Whiteouts,
    layer: &str,
    diff_id: Option<&str>,
    lowers: &[PathBuf],
) -> Result<()> {
    let stream = crate::digest::decompress(blob).map_err(|e| Error::io(layer, e))?;
    let mut hashing = Hashing {
        inner: stream,
        hash: Sha256::new(),
    };
    let mut written: HashSet<PathBuf> = HashSet::new();
    let fail = |entry: &Path, reason: String| Error::Layer {
        layer: layer.to_string(),
        entry: entry.display().to_string(),
        reason,
    };
    let mut ar = tar::Archive::new(&mut hashing);
    let entries = ar.entries().map_err(|e| Error::io(layer, e))?;
    for entry in entries {
        let mut e = entry.map_err(|e| fail(Path::new("?"), e.to_string()))?;
        let raw = e
            .path()
            .map_err(|err| fail(Path::new("?"), err.to_string()))?
            .into_owned();
        let rel = safepath::clean(&raw).map_err(|why| fail(&raw, why))?;
        if rel.as_os_str().is_empty() {
            continue; // "./": the layer root itself
        }
        apply_entry(&mut e, dest, &rel, mode, &mut written, lowers)
            .map_err(|why| fail(&raw, why))?;
    }
    // Some tools omit the end-of-archive marker; the digest was verified before, so read
    // what is left (padding) to finish the diff_id check and accept.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| Error::io(layer, e))?;
    if let Some(want) = diff_id {
        let got = format!("sha256:{:x}", hashing.hash.finalize());
        if got != want {
            return Err(Error::DigestMismatch {
                expected: want.to_string(),
                actual: got,
            });
        }
    }
    Ok(())
}

fn apply_entry<R: Read>(
    e: &mut tar::Entry<R>,
    dest: &Path,
    rel: &Path,
    mode: Whiteouts,
    written: &mut HashSet<PathBuf>,
    lowers: &[PathBuf],
) -> Result<(), String> {
    let name = rel.file_name().ok_or("no file name")?.to_os_string();
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    // Resolve through this layer and the ones below (overlay mode), as the merged tree does.
    let mut roots: Vec<&Path> = vec![dest];
    roots.extend(lowers.iter().rev().map(PathBuf::as_path));
    let parent = dest.join(safepath::resolve_layered(&roots, parent_rel, true)?);
    let name_str = name.to_string_lossy();

    // Whiteouts.
    if name_str == WH_OPAQUE {
        return match mode {
            Whiteouts::Overlay => {
                fs::create_dir_all(&parent).map_err(|e| e.to_string())?;
                xattr::set(&parent, "trusted.overlay.opaque", b"y").map_err(|e| e.to_string())
            }
            Whiteouts::Apply => {
                let Ok(children) = fs::read_dir(&parent) else {
                    return Ok(());
                };
                for c in children.flatten() {
                    if !written.contains(&parent_rel.join(c.file_name())) {
                        remove_any(&c.path())?;
                    }
                }
                Ok(())
            }
        };
    }
    if let Some(target) = name_str.strip_prefix(WH_PREFIX) {
        let victim = parent.join(target);
        return match mode {
            Whiteouts::Overlay => {
                fs::create_dir_all(&parent).map_err(|e| e.to_string())?;
                remove_any(&victim)?;
                mknod(&victim, libc::S_IFCHR, 0, 0)
            }
            Whiteouts::Apply => remove_any(&victim),
        };
    }

    fs::create_dir_all(&parent).map_err(|e| e.to_string())?;
    let path = parent.join(&name);
    let header = e.header();
    let kind = header.entry_type();
    // Some writers leave numeric fields of links empty: default rather than fail.
    let mode_bits = header.mode().unwrap_or(0o644) & 0o7777;
    let uid = header.uid().unwrap_or(0) as u32;
    let gid = header.gid().unwrap_or(0) as u32;
    let mtime = header.mtime().unwrap_or(0) as i64;
    let existing = fs::symlink_metadata(&path).ok();

    // An entry replaces whatever was there, except a directory keeps its contents.
    if let Some(m) = &existing {
        if !(kind.is_dir() && m.is_dir()) {
            remove_any(&path)?;
        }
    }
    match kind {
        tar::EntryType::Directory => {
            if !path.is_dir() {
                fs::create_dir(&path).map_err(|e| e.to_string())?;
            }
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| e.to_string())?;
            std::io::copy(e, &mut f).map_err(|e| e.to_string())?;
        }
        tar::EntryType::Symlink => {
            let target = e
                .link_name()
                .map_err(|e| e.to_string())?
                .ok_or("symlink without target")?;
            symlink(&*target, &path).map_err(|e| e.to_string())?;
        }
        tar::EntryType::Link => {
            let target = e
                .link_name()
                .map_err(|e| e.to_string())?
                .ok_or("hard link without target")?;
            let target_rel =
                safepath::clean(&target).map_err(|why| format!("hard link target {why}"))?;
            let src = safepath::resolve(dest, &target_rel, false)?;
            match fs::symlink_metadata(&src) {
                Ok(m) if m.is_dir() => return Err("hard link to a directory".into()),
                Ok(_) => fs::hard_link(&src, &path).map_err(|e| e.to_string())?,
                // In overlay mode the target may live in a lower layer: copy it up.
                Err(_) => {
                    let lower = lowers
                        .iter()
                        .rev()
                        .map(|l| safepath::resolve(l, &target_rel, false))
                        .find_map(|p| p.ok().filter(|p| p.is_file()))
                        .ok_or_else(|| {
                            format!("hard link target {} does not exist", target.display())
                        })?;
                    fs::copy(&lower, &path).map_err(|e| e.to_string())?;
                }
            }
            written.insert(rel.to_path_buf());
            return Ok(()); // shares the target's inode: owner and mode are the target's
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let t = match kind {
                tar::EntryType::Char => libc::S_IFCHR,
                tar::EntryType::Block => libc::S_IFBLK,
                _ => libc::S_IFIFO,
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            mknod(&path, t, major, minor)?;
        }
        tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => return Ok(()),
        other => return Err(format!("unsupported entry type {other:?}")),
    }
    written.insert(rel.to_path_buf());

    // Owner first: chown clears setuid/setgid, so the mode comes after it.
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: valid C string path.
    if unsafe { libc::lchown(c.as_ptr(), uid, gid) } < 0 {
        return Err(format!("chown: {}", std::io::Error::last_os_error()));
    }
    if !kind.is_symlink() {
        // SAFETY: valid C string path (not a symlink, so chmod does not follow one).
        if unsafe { libc::chmod(c.as_ptr(), mode_bits) } < 0 {
            return Err(format!("chmod: {}", std::io::Error::last_os_error()));
        }
        if let Ok(Some(exts)) = e.pax_extensions() {
            for ext in exts.flatten() {
                if let Some(key) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattr::set(&path, key, ext.value_bytes())
                        .map_err(|err| format!("xattr {key}: {err}"))?;
                }
            }
        }
    }
    if !kind.is_dir() {
        let times = [
            libc::timespec {
                tv_sec: mtime,
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: mtime,
                tv_nsec: 0,
            },
        ];
        // SAFETY: valid path and two timespecs; does not follow symlinks.
        unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
    }
    Ok(())
}

/// Removes a file, symlink (not its target) or directory tree; missing is fine.
fn remove_any(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(|e| e.to_string()),
        Ok(_) => fs::remove_file(path).map_err(|e| e.to_string()),
        Err(_) => Ok(()),
    }
}

fn mknod(path: &Path, kind: libc::mode_t, major: u32, minor: u32) -> Result<(), String> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: valid C string path.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | 0o600, libc::makedev(major, minor)) };
    if r < 0 {
        return Err(format!("mknod: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
