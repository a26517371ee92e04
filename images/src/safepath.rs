//! Resolving paths *inside* a rootfs, as if it were `/`: `..` stops at the rootfs, absolute
//! symlink targets restart at it, and no symlink can lead outside. Layer entries, hard link
//! targets and whiteouts all go through here, so a hostile layer cannot reach the host.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

const MAX_LINKS: usize = 40;

/// A tar entry's path as clean relative components. Leading `/` is dropped (tar paths are
/// relative to the layer root); `..` that would climb above the root is refused.
pub fn clean(entry: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in entry.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err("escapes the rootfs".into());
                }
            }
        }
    }
    Ok(out)
}

/// The host path of `rel` inside `root`, resolving symlinks inside the root. With
/// `follow_last` false the final component itself is not followed (it is what gets created,
/// replaced or removed).
pub fn resolve(root: &Path, rel: &Path, follow_last: bool) -> Result<PathBuf, String> {
    Ok(root.join(resolve_layered(&[root], rel, follow_last)?))
}

/// Like [`resolve`] over a stack of layer directories seen as one tree (the first is the
/// top): a symlink planted by a lower layer (`var/run -> /run`) is followed for an entry of
/// an upper one. Returns the resolved path relative to the root, free of symlinks.
pub fn resolve_layered(roots: &[&Path], rel: &Path, follow_last: bool) -> Result<PathBuf, String> {
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, rel);
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let next = resolved.join(&part);
        if pending.is_empty() && !follow_last {
            return Ok(next);
        }
        let found = roots
            .iter()
            .map(|r| r.join(&next))
            .find(|p| std::fs::symlink_metadata(p).is_ok());
        match found {
            Some(p) if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err("too many levels of symbolic links".into());
                }
                let target = std::fs::read_link(&p).map_err(|e| e.to_string())?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                push_components(&mut pending, &target);
            }
            _ => resolved = next,
        }
    }
    Ok(resolved)
}

/// Pushes a path's components in reverse (so `pop` yields them in order).
fn push_components(stack: &mut Vec<OsString>, p: &Path) {
    let parts: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    stack.extend(parts.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn clean_refuses_climbing() {
        assert_eq!(
            clean(Path::new("/etc/passwd")).unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(clean(Path::new("a/../b")).unwrap(), Path::new("b"));
        assert!(clean(Path::new("../etc/passwd")).is_err());
        assert!(clean(Path::new("a/../../x")).is_err());
    }

    #[test]
    fn resolve_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        symlink("/run", root.join("var/run")).unwrap();
        symlink("/", root.join("up")).unwrap();
        symlink("../../../..", root.join("var/deep")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let r = |p: &str, f| resolve(root, Path::new(p), f);
        assert_eq!(r("var/run/x", true).unwrap(), root.join("run/x"));
        assert_eq!(r("up/etc/passwd", true).unwrap(), root.join("etc/passwd"));
        assert_eq!(r("var/deep/etc", true).unwrap(), root.join("etc"));
        assert_eq!(r("var/run", false).unwrap(), root.join("var/run"));
        assert!(r("loop/x", true).is_err());
    }
}
