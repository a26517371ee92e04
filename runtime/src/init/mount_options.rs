//! Translating OCI mount options (`nosuid`, `ro`, `rbind`, `mode=755`, ...) into mount(2)
//! flags, propagation changes and the filesystem-specific data string.
//!
//! No option is passed on blindly or dropped without a word. The generic ones (mount(8)'s
//! flags, propagation, the runtime spec's recursive attributes, `bind`, `tmpcopyup`,
//! `idmap`) are minc's; everything else belongs to the filesystem being mounted, which is
//! the only one that knows its options: the kernel checks each (and when it refuses one,
//! minc names it, see `ops::mount::rejected_option`). A bind mount makes no filesystem, so
//! there a word minc does not know is an error, and a `key=value` (which runc hands to
//! mount(2), where a bind ignores it) is ignored with a warning that names it.

/// A mount's options, split the way mount(2) wants them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// MS_* flags for the mount itself (MS_RDONLY, MS_NOSUID, ...).
    pub flags: libc::c_ulong,
    /// MS_SHARED/MS_PRIVATE/... (with MS_REC), applied in a second call.
    pub propagation: libc::c_ulong,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `tmpcopyup` (runc's): a tmpfs that starts with a copy of what it covers.
    pub tmpcopyup: bool,
    /// `rbind`: bind the whole subtree.
    pub recursive: bool,
    /// Everything else, comma-joined, passed to the filesystem (`mode=755,size=65536k`).
    pub data: String,
    /// `idmap` (`ridmap`: with `recursive_idmap`): an idmapped mount, with the mount's
    /// uidMappings/gidMappings or the container's user namespace.
    pub idmap: bool,
    pub recursive_idmap: bool,
    /// The recursive attributes (`rro`, `rnosuid`, ...): MOUNT_ATTR_* to set and to clear on
    /// the mount and every mount below it, with mount_setattr(2).
    pub attr_set: u64,
    pub attr_clear: u64,
}

/// Every option `parse` understands itself (anything else belongs to the filesystem); what
/// `minc features` reports as mountOptions.
pub const KNOWN: &[&str] = &[
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// MS_NOSYMFOLLOW (Linux 5.10; not in every libc crate yet).
const MS_NOSYMFOLLOW: libc::c_ulong = 256;

pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    let mut data = Vec::new();
    for opt in options {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "noatime" => (libc::MS_NOATIME, 0),
            "atime" => (0, libc::MS_NOATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "remount" => (libc::MS_REMOUNT, 0),
            "nosymfollow" => (MS_NOSYMFOLLOW, 0),
            "symfollow" => (0, MS_NOSYMFOLLOW),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            "iversion" => (libc::MS_I_VERSION, 0),
            "noiversion" => (0, libc::MS_I_VERSION),
            "acl" => (libc::MS_POSIXACL, 0),
            "noacl" => (0, libc::MS_POSIXACL),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "idmap" => {
                o.idmap = true;
                (0, 0)
            }
            "ridmap" => {
                o.idmap = true;
                o.recursive_idmap = true;
                (0, 0)
            }
            "defaults" => (0, 0),
            "tmpcopyup" => {
                o.tmpcopyup = true;
                (0, 0)
            }
            "bind" => {
                o.bind = true;
                (0, 0)
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                (0, 0)
            }
            "private" => propagation(&mut o, libc::MS_PRIVATE),
            "rprivate" => propagation(&mut o, libc::MS_PRIVATE | libc::MS_REC),
            "shared" => propagation(&mut o, libc::MS_SHARED),
            "rshared" => propagation(&mut o, libc::MS_SHARED | libc::MS_REC),
            "slave" => propagation(&mut o, libc::MS_SLAVE),
            "rslave" => propagation(&mut o, libc::MS_SLAVE | libc::MS_REC),
            "unbindable" => propagation(&mut o, libc::MS_UNBINDABLE),
            "runbindable" => propagation(&mut o, libc::MS_UNBINDABLE | libc::MS_REC),
            r if recursive_attr(r).is_some() => {
                let (set, clear) = recursive_attr(r).expect("matched");
                // Later options win; the atime modes are set with their whole field cleared,
                // as mount_setattr(2) wants.
                o.attr_set = (o.attr_set & !clear) | set;
                o.attr_clear = (o.attr_clear & !set) | clear;
                (0, 0)
            }
            other => {
                data.push(other);
                (0, 0)
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o.data = data.join(",");
    o
}

impl MountOptions {
    /// The filesystem options of a bind mount, which makes no filesystem: a word minc does
    /// not know is an error naming it; `key=value` options are returned, to be ignored with
    /// a warning (runc passes them to mount(2), which ignores them for a bind mount).
    pub fn bind_data(&self) -> Result<Vec<&str>, String> {
        let mut ignored = Vec::new();
        for opt in self.data.split(',').filter(|o| !o.is_empty()) {
            if opt.contains('=') {
                ignored.push(opt);
            } else {
                return Err(format!("unknown mount option {opt:?}"));
            }
        }
        Ok(ignored)
    }
}

/// The recursive mount attributes of the runtime spec (`rro`, `rnosuid`, ...), as the
/// MOUNT_ATTR_* bits they set and clear. The atime ones also clear the other atime modes.
fn recursive_attr(opt: &str) -> Option<(u64, u64)> {
    use crate::ops::mount::*;
    let atime = MOUNT_ATTR__ATIME;
    Some(match opt {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (MOUNT_ATTR_RELATIME, atime),
        "rnorelatime" => (0, atime),
        "rnoatime" => (MOUNT_ATTR_NOATIME, atime),
        "ratime" => (0, atime),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, atime),
        "rnostrictatime" => (0, atime),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

fn propagation(o: &mut MountOptions, flag: libc::c_ulong) -> (libc::c_ulong, libc::c_ulong) {
    o.propagation = flag;
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_data_and_bind() {
        let o = parse(&opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]));
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(!o.bind);

        let o = parse(&opts(&["rbind", "ro", "rprivate"]));
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, libc::MS_RDONLY);
        assert_eq!(o.propagation, libc::MS_PRIVATE | libc::MS_REC);
        let o = parse(&opts(&["rbind", "rro", "rnosuid", "rnoatime"]));
        use crate::ops::mount::*;
        assert_eq!(
            o.attr_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.attr_clear & MOUNT_ATTR_RDONLY, 0);
    }

    #[test]
    fn known_options_are_all_understood() {
        for k in KNOWN {
            assert_eq!(parse(&opts(&[k])).data, "", "{k} is passed as data");
        }
        assert_eq!(parse(&opts(&["mode=755"])).data, "mode=755");
    }

    #[test]
    fn bind_mounts_refuse_unknown_words_and_ignore_filesystem_data() {
        let o = parse(&opts(&["rbind", "mode=755", "size=1k", "ro"]));
        assert_eq!(o.bind_data().unwrap(), ["mode=755", "size=1k"]);
        let o = parse(&opts(&["bind", "rnosiud"]));
        assert_eq!(
            o.bind_data().unwrap_err(),
            "unknown mount option \"rnosiud\""
        );
        let o = parse(&opts(&["rbind", "ridmap", "nosymfollow"]));
        assert!(o.idmap && o.recursive_idmap && o.bind_data().unwrap().is_empty());
        assert_eq!(o.flags, MS_NOSYMFOLLOW);
    }

    #[test]
    fn later_option_wins() {
        assert_eq!(parse(&opts(&["ro", "rw"])).flags, 0);
    }
}
