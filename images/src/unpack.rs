//! Applying tar layers to a directory, safely.
//!
//! The tar crate parses; the writes are ours, made through `sysops::inroot`: the layer
//! directory is held as an fd, every parent directory is resolved inside it by the kernel
//! (openat2 `RESOLVE_IN_ROOT`), and each entry is created, replaced or removed by one
//! `*at()` call with a plain name in that parent, never following the name itself. So no
//! entry, hard link or whiteout of a hostile layer can reach outside the tree, and nothing
//! is read from outside it (a hard link to a symlink links the symlink, not its target).
//!
//! Two whiteout styles:
//! - `Whiteouts::Apply` (flattening into one tree): `.wh.NAME` deletes NAME, `.wh..wh..opq`
//!   empties the directory of what lower layers put there.
//! - `Whiteouts::Overlay` (one directory per layer, stacked by overlayfs): `.wh.NAME` becomes
//!   a 0/0 character device and an opaque directory gets `trusted.overlay.opaque=y`; entries
//!   resolve through the layers below (see `layered`), and a hard link to a file of a lower
//!   layer copies it up, as overlayfs would.
//!
//! As the OCI image spec says, a whiteout hides only what the layers *below* put there: an
//! entry of the same layer stays. Entry names are checked before anything is done: no `..`
//! above the root, no name longer than PATH_MAX (4096) or a component longer than NAME_MAX
//! (255). Device nodes are created only as the store's [`DeviceNodes`] policy says.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sysops::inroot::{self, Dir, Root};

use crate::error::{Error, Result};
use crate::layer_stream::{self, Meter};
use crate::layered::{self, Found, Stack};
use crate::options::{DeviceNodes, StoreOptions, ENV_LAYER_DEVICES, ENV_MAX_LAYER_ENTRIES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    Apply,
    Overlay,
}

const WH_PREFIX: &[u8] = b".wh.";
const WH_META: &[u8] = b".wh..wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";
const PATH_MAX: usize = 4096;
const NAME_MAX: usize = 255;
/// Parent directories kept open between entries (tar writers list a directory's entries
/// together, so the last few parents are nearly always the next ones).
const CACHED_PARENTS: usize = 64;

/// Unpacks one layer (compressed or not) into `dest`. `layer` names it in errors;
/// `diff_id`, when given, is checked against the uncompressed stream. `lowers` are the
/// directories of the layers below, bottom first (overlay mode), through which entries
/// resolve and where a hard link may point.
pub fn apply_layer(
    blob: impl Read,
    dest: &Path,
    mode: Whiteouts,
    layer: &str,
    diff_id: Option<&str>,
    lowers: &[PathBuf],
    opts: &StoreOptions,
) -> Result<()> {
    let open = |p: &Path| {
        Root::open(p)
            .map(Root::no_xdev)
            .map_err(|e| Error::io(p, e))
    };
    let root = open(dest)?;
    let lower_roots = lowers
        .iter()
        .rev()
        .map(|p| open(p))
        .collect::<Result<Vec<_>>>()?;
    let (stream, meter) =
        layer_stream::tar_stream(blob, opts.max_layer_size).map_err(|e| Error::io(layer, e))?;
    let mut u = Unpacker {
        root: &root,
        stack: Stack {
            layers: std::iter::once(&root).chain(lower_roots.iter()).collect(),
        },
        mode,
        opts,
        meter: meter.clone(),
        written: HashSet::new(),
        parents: HashMap::new(),
        buf: vec![0u8; 256 * 1024],
    };
    let too_large = || Error::TooLarge {
        what: format!("layer {layer}"),
        limit: opts.max_layer_size,
        setting: crate::options::ENV_MAX_LAYER_SIZE,
    };
    let fail = |entry: &[u8], reason: String| {
        if meter.exceeded() {
            too_large()
        } else {
            Error::Layer {
                layer: layer.to_string(),
                entry: String::from_utf8_lossy(entry).into_owned(),
                reason,
            }
        }
    };
    let mut ar = tar::Archive::new(stream);
    let mut count = 0u64;
    for entry in ar.entries().map_err(|e| fail(b"?", e.to_string()))? {
        let mut e = entry.map_err(|e| fail(b"?", e.to_string()))?;
        let raw = e.path_bytes().into_owned();
        count += 1;
        if count > opts.max_layer_entries {
            return Err(fail(
                &raw,
                format!(
                    "more than {} entries (the store's limit, {ENV_MAX_LAYER_ENTRIES})",
                    opts.max_layer_entries
                ),
            ));
        }
        let parts = entry_name(&raw).map_err(|why| fail(&raw, why))?;
        if parts.is_empty() {
            continue; // "./": the layer root itself
        }
        u.apply(&mut e, &parts).map_err(|why| fail(&raw, why))?;
    }
    drop(u);
    // Some tools omit the end-of-archive marker (EndPad stands in for it); the digest was
    // verified before. Read what is left to finish the diff_id check.
    let got = ar.into_inner().inner.inner.finish().map_err(|e| {
        if meter.exceeded() {
            too_large()
        } else {
            Error::io(layer, e)
        }
    })?;
    if let Some(want) = diff_id {
        if got != want {
            return Err(Error::DigestMismatch {
                expected: want.to_string(),
                actual: got,
            });
        }
    }
    Ok(())
}

/// A tar entry's name as plain components. A leading `/` and `.` are dropped (tar paths
/// are relative to the layer root); `a/..` folds; `..` that would climb above the root, a
/// name longer than PATH_MAX or a component longer than NAME_MAX is refused.
pub fn entry_name(raw: &[u8]) -> Result<Vec<OsString>, String> {
    if raw.len() > PATH_MAX {
        return Err(format!(
            "a name of {} bytes (more than {PATH_MAX})",
            raw.len()
        ));
    }
    let mut out: Vec<OsString> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("escapes the rootfs (..)".into());
                }
            }
            _ if c.len() > NAME_MAX => {
                return Err(format!(
                    "a component of {} bytes (more than {NAME_MAX})",
                    c.len()
                ))
            }
            _ if c.contains(&0) => return Err("a NUL byte in the name".into()),
            _ => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(out)
}

/// A parent directory kept open, with its inode number (what `written` is keyed by).
struct Parent {
    dir: Dir,
    ino: u64,
}

struct Unpacker<'a> {
    root: &'a Root,
    /// This layer, then the ones below (overlay mode), top first.
    stack: Stack<'a>,
    mode: Whiteouts,
    opts: &'a StoreOptions,
    meter: Rc<Meter>,
    /// (parent inode, name) of every entry this layer made (Apply mode): a whiteout of the
    /// same layer must not remove them.
    written: HashSet<(u64, OsString)>,
    parents: HashMap<Vec<OsString>, Rc<Parent>>,
    buf: Vec<u8>,
}

/// What a header says about an entry's metadata.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
}

fn ioe(what: &str) -> impl Fn(io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn is(st: &inroot::Stat, kind: u32) -> bool {
    st.st_mode & libc::S_IFMT == kind
}

fn show(parts: &[OsString]) -> String {
    let p: PathBuf = parts.iter().collect();
    if parts.is_empty() {
        "/".into()
    } else {
        p.display().to_string()
    }
}

impl Unpacker<'_> {
    fn overlay_stack(&self) -> bool {
        self.stack.layers.len() > 1
    }

    /// The parent directory `parts` in this layer, resolved (through the layers below in
    /// overlay mode) and created as needed; cached.
    fn parent(&mut self, parts: &[OsString]) -> Result<Rc<Parent>, String> {
        if let Some(p) = self.parents.get(parts) {
            return Ok(p.clone());
        }
        let dir = if self.overlay_stack() {
            self.merged_parent(parts)?
        } else {
            let p: PathBuf = parts.iter().collect();
            self.root
                .mkdir_all(&p, 0o755)
                .map_err(ioe(&format!("parent {}", show(parts))))?
        };
        let ino = dir.stat_self().map_err(ioe("parent"))?.st_ino;
        let p = Rc::new(Parent { dir, ino });
        if self.parents.len() >= CACHED_PARENTS {
            self.parents.clear();
        }
        self.parents.insert(parts.to_vec(), p.clone());
        Ok(p)
    }

    /// Overlay mode: the directory `parts` as the merged view resolves it, made in this
    /// layer with each missing directory's owner and mode copied up from the layer below
    /// that has it (as overlayfs copies a directory up).
    fn merged_parent(&self, parts: &[OsString]) -> Result<Dir, String> {
        let resolved = self.stack.resolve(parts, true)?.parts;
        let mut dir = self.root.dir(Path::new("")).map_err(ioe("layer root"))?;
        for (i, c) in resolved.iter().enumerate() {
            let here = &resolved[..=i];
            match dir.stat(c).map_err(ioe(&show(here)))? {
                Some(st) if is(&st, libc::S_IFDIR) => {}
                Some(_) => return Err(format!("{} is not a directory", show(here))),
                None => {
                    dir.mkdir(c, 0o755).map_err(ioe(&show(here)))?;
                    if let Some(Found::Dir { st, .. }) = self.stack.layers[1..]
                        .iter()
                        .map(|l| layered::lookup(l, here))
                        .find_map(|f| f.ok().filter(|f| !matches!(f, Found::Missing)))
                    {
                        dir.subdir(c)
                            .and_then(|d| {
                                d.set_owner_mode(st.st_uid, st.st_gid, st.st_mode & 0o7777)
                            })
                            .map_err(ioe(&show(here)))?;
                    }
                }
            }
            dir = dir.subdir(c).map_err(ioe(&show(here)))?;
        }
        Ok(dir)
    }

    /// Something was removed, hidden or replaced: cached resolutions may be stale.
    fn invalidate(&mut self) {
        self.parents.clear();
    }

    fn apply<R: Read>(&mut self, e: &mut tar::Entry<R>, parts: &[OsString]) -> Result<(), String> {
        let (name, parent_parts) = parts.split_last().expect("not empty");
        let nb = name.as_bytes();
        // aufs metadata (`.wh..wh.plnk/...`): not content, skipped as Docker does.
        if parts[..parts.len() - 1]
            .iter()
            .chain((nb != WH_OPAQUE).then_some(name))
            .any(|c| c.as_bytes().starts_with(WH_META))
        {
            return Ok(());
        }
        if nb == WH_OPAQUE {
            return self.opaque(parent_parts);
        }
        if let Some(victim) = nb.strip_prefix(WH_PREFIX) {
            if matches!(victim, b"" | b"." | b"..") {
                return Err(format!(
                    "a whiteout of {:?} names no file",
                    String::from_utf8_lossy(victim)
                ));
            }
            return self.whiteout(parent_parts, OsStr::from_bytes(victim));
        }

        let kind = e.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let h = e.header();
        // Some writers leave numeric fields of links empty: default rather than fail.
        let meta = Meta {
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            mtime: h.mtime().unwrap_or(0).min(i64::MAX as u64) as i64,
        };
        let parent = self.parent(parent_parts)?;
        let dir = &parent.dir;

        // An entry replaces whatever this layer has there, except that a directory keeps
        // its contents.
        let mut was_whiteout = false;
        if let Some(st) = dir.stat(name).map_err(ioe("lstat"))? {
            if !(kind.is_dir() && is(&st, libc::S_IFDIR)) {
                was_whiteout = is(&st, libc::S_IFCHR) && st.st_rdev == 0;
                dir.remove_all(name).map_err(ioe("remove the old entry"))?;
                self.invalidate();
            }
        }
        match kind {
            tar::EntryType::Directory => {
                if dir.stat(name).map_err(ioe("lstat"))?.is_none() {
                    dir.mkdir(name, 0o700).map_err(ioe("mkdir"))?;
                }
                let f = std::fs::File::from(dir.subdir(name).map_err(ioe("open"))?.into_fd());
                inroot::set_owner_mode(f.as_fd(), meta.uid, meta.gid, meta.mode)
                    .map_err(ioe("chown/chmod"))?;
                self.xattrs(e, &f)?;
                if was_whiteout && self.mode == Whiteouts::Overlay {
                    // `.wh.NAME` then `NAME/` in one layer: the new directory replaces,
                    // not merges with, the one below.
                    inroot::set_xattr(f.as_fd(), layered::OPAQUE_XATTR, b"y")
                        .map_err(ioe("opaque"))?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut f = dir.create_file(name, meta.mode).map_err(ioe("create"))?;
                let want = e.size();
                let copied = copy(e, &mut f, &mut self.buf).map_err(ioe("write"))?;
                if kind != tar::EntryType::GNUSparse && copied != want {
                    return Err(format!("truncated: {copied} of {want} bytes"));
                }
                if self.meter.padded() > 0 {
                    return Err("truncated: the layer ends inside this file".into());
                }
                self.owner_mode_fd(&f, &meta)?;
                self.xattrs(e, &f)?;
                let _ = inroot::set_fd_mtime(f.as_fd(), meta.mtime);
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or("symlink without target")?
                    .into_owned();
                if target.len() > PATH_MAX {
                    return Err(format!("a symlink target of {} bytes", target.len()));
                }
                dir.symlink(Path::new(OsStr::from_bytes(&target)), name)
                    .map_err(ioe("symlink"))?;
                self.invalidate();
                if (meta.uid, meta.gid) != (0, 0) {
                    dir.chown(name, meta.uid, meta.gid).map_err(ioe("chown"))?;
                }
                let _ = dir.set_mtime(name, meta.mtime);
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .ok_or("hard link without target")?
                    .into_owned();
                let tparts =
                    entry_name(&target).map_err(|why| format!("hard link target {why}"))?;
                self.hard_link(&tparts, dir, name)?;
                self.note_written(&parent, name);
                return Ok(()); // shares the target's inode: owner and mode are the target's
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let t = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                self.device_allowed(t, major, minor)?;
                dir.mknod(name, t, meta.mode, libc::makedev(major, minor))
                    .map_err(ioe("mknod"))?;
                self.owner_mode_name(dir, name, &meta)?;
                let _ = dir.set_mtime(name, meta.mtime);
            }
            other => return Err(format!("unsupported entry type {other:?}")),
        }
        self.note_written(&parent, name);
        Ok(())
    }

    fn note_written(&mut self, parent: &Parent, name: &OsStr) {
        if self.mode == Whiteouts::Apply {
            self.written.insert((parent.ino, name.to_os_string()));
        }
    }

    /// Owner then mode of a file just written (chown clears setuid/setgid, so the mode
    /// comes second; skipped when it changes nothing).
    fn owner_mode_fd(&self, f: &std::fs::File, m: &Meta) -> Result<(), String> {
        // SAFETY: geteuid/getegid have no failure mode.
        let me = unsafe { (libc::geteuid(), libc::getegid()) };
        if (m.uid, m.gid) != me {
            inroot::set_owner_mode(f.as_fd(), m.uid, m.gid, m.mode).map_err(ioe("chown/chmod"))?;
        }
        Ok(())
    }

    fn owner_mode_name(&self, dir: &Dir, name: &OsStr, m: &Meta) -> Result<(), String> {
        dir.chown(name, m.uid, m.gid).map_err(ioe("chown"))?;
        dir.chmod(name, m.mode).map_err(ioe("chmod"))
    }

    /// `SCHILY.xattr.*` pax records, set through the open file or directory.
    fn xattrs<R: Read>(&self, e: &mut tar::Entry<R>, f: &std::fs::File) -> Result<(), String> {
        if let Ok(Some(exts)) = e.pax_extensions() {
            for ext in exts.flatten() {
                if let Some(key) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    inroot::set_xattr(f.as_fd(), key, ext.value_bytes())
                        .map_err(|err| format!("xattr {key}: {err}"))?;
                }
            }
        }
        Ok(())
    }

    fn device_allowed(&self, kind: u32, major: u32, minor: u32) -> Result<(), String> {
        /// The OCI default devices (and 0/0, overlayfs' whiteout): reachable in every
        /// container anyway.
        const HARMLESS: &[(u32, u32)] = &[
            (0, 0),
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
        ];
        if kind == libc::S_IFIFO {
            return Ok(());
        }
        let ok = match self.opts.devices {
            DeviceNodes::All => true,
            DeviceNodes::Harmless => kind == libc::S_IFCHR && HARMLESS.contains(&(major, minor)),
            DeviceNodes::None => kind == libc::S_IFCHR && (major, minor) == (0, 0),
        };
        if ok {
            return Ok(());
        }
        let what = if kind == libc::S_IFBLK {
            "block"
        } else {
            "char"
        };
        Err(format!(
            "device node ({what} {major}:{minor}) not allowed by the store's device policy \
             ({ENV_LAYER_DEVICES}=all allows it)"
        ))
    }

    /// A hard link to `tparts` (an entry of this layer or, in overlay mode, of one below).
    /// The target's parent is resolved inside the root; its last component is never
    /// followed, so a hard link to a symlink links (or copies up) the symlink itself.
    fn hard_link(&mut self, tparts: &[OsString], dir: &Dir, name: &OsStr) -> Result<(), String> {
        let missing = || format!("hard link target {} does not exist", show(tparts));
        let Some((tname, tparent)) = tparts.split_last() else {
            return Err("hard link to the root".into());
        };
        if !self.overlay_stack() {
            let p: PathBuf = tparent.iter().collect();
            let from = match self.root.dir(&p) {
                Ok(d) => d,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    return Err(missing())
                }
                Err(e) => return Err(format!("hard link target: {e}")),
            };
            return match from.stat(tname).map_err(ioe("hard link target"))? {
                None => Err(missing()),
                Some(st) if is(&st, libc::S_IFDIR) => Err("hard link to a directory".into()),
                Some(_) => dir.hard_link(name, &from, tname).map_err(ioe("link")),
            };
        }
        let r = self.stack.resolve(tparts, false)?;
        match self.stack.owner(&r.parts, r.visible)? {
            None => Err(missing()),
            Some((_, Found::Dir { .. })) => Err("hard link to a directory".into()),
            Some((0, _)) => {
                let (tn, tp) = r.parts.split_last().expect("not empty");
                let p: PathBuf = tp.iter().collect();
                let from = self.root.dir(&p).map_err(ioe("hard link target"))?;
                dir.hard_link(name, &from, tn).map_err(ioe("link"))
            }
            Some((_, Found::Symlink { target, st })) => {
                dir.symlink(&target, name).map_err(ioe("copy up symlink"))?;
                self.invalidate();
                dir.chown(name, st.st_uid, st.st_gid)
                    .map_err(ioe("chown"))?;
                let _ = dir.set_mtime(name, st.st_mtime);
                Ok(())
            }
            Some((i, Found::Other { st, fd })) => self.copy_up(i, &r.parts, &st, fd, dir, name),
            Some((_, Found::Missing | Found::Whiteout)) => Err(missing()),
        }
    }

    /// Copies a file, device node or FIFO of layer `i` (below this one) into this layer as
    /// `dir/name`, with its owner, mode, xattrs and time: what overlayfs' copy-up does.
    fn copy_up(
        &mut self,
        i: usize,
        path: &[OsString],
        st: &inroot::Stat,
        fd: std::os::fd::OwnedFd,
        dir: &Dir,
        name: &OsStr,
    ) -> Result<(), String> {
        let meta = Meta {
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            mtime: st.st_mtime,
        };
        let kind = st.st_mode & libc::S_IFMT;
        if kind != libc::S_IFREG {
            self.device_allowed(kind, libc::major(st.st_rdev), libc::minor(st.st_rdev))?;
            dir.mknod(name, kind, meta.mode, st.st_rdev)
                .map_err(ioe("copy up"))?;
            self.owner_mode_name(dir, name, &meta)?;
            let _ = dir.set_mtime(name, meta.mtime);
            return Ok(());
        }
        drop(fd);
        // Reopen for reading, by the same never-following lookup that found it.
        let p: PathBuf = path.iter().collect();
        let src = inroot::openat2(
            self.stack.layers[i].as_fd(),
            &p,
            libc::O_RDONLY | libc::O_NOFOLLOW,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_XDEV,
        )
        .map_err(ioe("copy up"))?;
        let mut src = std::fs::File::from(src);
        let mut f = dir.create_file(name, meta.mode).map_err(ioe("copy up"))?;
        io::copy(&mut src, &mut f).map_err(ioe("copy up"))?;
        inroot::set_owner_mode(f.as_fd(), meta.uid, meta.gid, meta.mode).map_err(ioe("copy up"))?;
        for (k, v) in inroot::list_xattrs(src.as_fd()).map_err(ioe("copy up xattrs"))? {
            if !k.starts_with("trusted.overlay.") {
                inroot::set_xattr(f.as_fd(), &k, &v).map_err(ioe("copy up xattrs"))?;
            }
        }
        let _ = inroot::set_fd_mtime(f.as_fd(), meta.mtime);
        Ok(())
    }

    /// `.wh.NAME` in `parent_parts`.
    fn whiteout(&mut self, parent_parts: &[OsString], victim: &OsStr) -> Result<(), String> {
        self.invalidate();
        match self.mode {
            Whiteouts::Apply => {
                let Some(parent) = self.existing_dir(parent_parts)? else {
                    return Ok(()); // nothing there to delete
                };
                if self.written.contains(&(parent.ino, victim.to_os_string())) {
                    // This layer's own entry stays; if it is a directory, what lower
                    // layers put in it goes.
                    if let Ok(sub) = parent.dir.subdir(victim) {
                        let ino = sub.stat_self().map_err(ioe("whiteout"))?.st_ino;
                        self.clear_lower(&Parent { dir: sub, ino })?;
                    }
                    return Ok(());
                }
                parent.dir.remove_all(victim).map_err(ioe("whiteout"))
            }
            Whiteouts::Overlay => {
                let parent = self.parent(parent_parts)?;
                match parent.dir.stat(victim).map_err(ioe("whiteout"))? {
                    Some(st) if is(&st, libc::S_IFDIR) => {
                        let d = parent.dir.subdir(victim).map_err(ioe("whiteout"))?;
                        set_opaque(&d)
                    }
                    Some(_) => Ok(()), // this layer's own entry already hides what is below
                    None => parent
                        .dir
                        .mknod(victim, libc::S_IFCHR, 0, 0)
                        .map_err(ioe("whiteout")),
                }
            }
        }
    }

    /// `.wh..wh..opq` in `parts`: the directory shows nothing of the layers below.
    fn opaque(&mut self, parts: &[OsString]) -> Result<(), String> {
        self.invalidate();
        match self.mode {
            Whiteouts::Apply => match self.existing_dir(parts)? {
                Some(p) => self.clear_lower(&p),
                None => Ok(()),
            },
            Whiteouts::Overlay => {
                let p = self.parent(parts)?;
                set_opaque(&p.dir)
            }
        }
    }

    /// Apply mode: removes the entries of `p` that this layer did not write.
    fn clear_lower(&self, p: &Parent) -> Result<(), String> {
        for child in p.dir.names().map_err(ioe("opaque"))? {
            if !self.written.contains(&(p.ino, child.clone())) {
                p.dir.remove_all(&child).map_err(ioe("opaque"))?;
            }
        }
        Ok(())
    }

    /// An existing directory of the tree (Apply mode), resolved inside the root.
    fn existing_dir(&self, parts: &[OsString]) -> Result<Option<Parent>, String> {
        let p: PathBuf = parts.iter().collect();
        match self.root.dir(&p) {
            Ok(dir) => {
                let ino = dir.stat_self().map_err(ioe("stat"))?.st_ino;
                Ok(Some(Parent { dir, ino }))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
            Err(e) => Err(format!("{}: {e}", show(parts))),
        }
    }
}

fn set_opaque(d: &Dir) -> Result<(), String> {
    let f = inroot::openat2(
        d.as_fd(),
        Path::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        libc::RESOLVE_BENEATH,
    )
    .map_err(ioe("opaque"))?;
    inroot::set_xattr(f.as_fd(), layered::OPAQUE_XATTR, b"y").map_err(ioe("opaque"))
}

/// Copies an entry's data with one reused buffer; returns the bytes copied.
fn copy(r: &mut impl Read, w: &mut impl Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut n = 0u64;
    loop {
        let k = match r.read(buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        let n = |s: &str| entry_name(s.as_bytes()).map(|v| show(&v));
        assert_eq!(n("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(n("./a/../b").unwrap(), "b");
        assert_eq!(n("./").unwrap(), "/");
        assert!(n("../etc/passwd").is_err());
        assert!(n("a/../../x").is_err());
        assert!(n(&"a/".repeat(2100)).is_err());
        assert!(n(&"x".repeat(256)).is_err());
        assert!(n(&"x".repeat(255)).is_ok());
    }
}
