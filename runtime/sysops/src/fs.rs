//! Files that readers never see half-written: write to a temporary name in the same
//! directory, then rename(2) it over the target (atomic within one filesystem). See rename(2).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A name in `p`'s directory that no other thread or process of this host picks at the same
/// time (pid plus a per-process counter), hidden with a leading dot.
pub fn temp_sibling(p: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    p.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Writes `data` to `p` with `mode` through a temporary sibling and a rename, creating the
/// parent directory if needed. On failure the temporary file is removed.
pub fn write_atomic(p: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    if let Some(dir) = p.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = temp_sibling(p);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(data)?;
        drop(f);
        fs::rename(&tmp, p)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(d.path().join("sub")).unwrap().count(), 1);
        // A directory in the way: an error, and no temporary file left behind.
        let dir = d.path().join("dir");
        fs::create_dir_all(dir.join("x")).unwrap();
        assert!(write_atomic(&dir, b"x", 0o600).is_err());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
    }
}
