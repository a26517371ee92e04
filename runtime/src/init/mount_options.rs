//! Translating OCI mount options (`nosuid`, `ro`, `rbind`, `mode=755`, ...) into mount(2)
//! flags, propagation changes and the filesystem-specific data string.

/// A mount's options, split the way mount(2) wants them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// MS_* flags for the mount itself (MS_RDONLY, MS_NOSUID, ...).
    pub flags: libc::c_ulong,
    /// MS_SHARED/MS_PRIVATE/... (with MS_REC), applied in a second call.
    pub propagation: libc::c_ulong,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind`: bind the whole subtree.
    pub recursive: bool,
    /// Everything else, comma-joined, passed to the filesystem (`mode=755,size=65536k`).
    pub data: String,
}

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
            "defaults" => (0, 0),
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

fn propagation(o: &mut MountOptions, flag: libc::c_ulong) -> (libc::c_ulong, libc::c_ulong) {
    o.propagation = flag;
    (0, 0)
}

/// The `--make-*` option of mount(8) for a propagation flag, for `--explain`.
pub fn propagation_name(flag: libc::c_ulong) -> &'static str {
    let rec = flag & libc::MS_REC != 0;
    match (flag & !libc::MS_REC, rec) {
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
        assert_eq!(propagation_name(o.propagation), "--make-rprivate");
    }

    #[test]
    fn later_option_wins() {
        assert_eq!(parse(&opts(&["ro", "rw"])).flags, 0);
    }
}
