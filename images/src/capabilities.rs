//! The capabilities of a Docker-like container: Docker's default set, tweaked by `--cap-add`,
//! `--cap-drop` and `--privileged` as moby's `TweakCapabilities` does. See capabilities(7).

use crate::error::{Error, Result};

/// Docker's default capability set.
pub const DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux defines, by number (0 to 40): what `--privileged` and
/// `--cap-add ALL` give, less those this process does not have.
pub const ALL: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A capability name as Docker accepts it (any case, with or without `CAP_`) in its
/// canonical form, or `ALL`. `flag` names the option in the error.
pub fn normalize(flag: &str, name: &str) -> Result<String> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(Error::invalid(
            format!("{flag} {name}"),
            "unknown capability",
        ))
    }
}

/// The container's set: everything with `privileged`; with `ALL` added, everything but the
/// drops; with `ALL` dropped, only the adds; otherwise Docker's default minus the drops plus
/// the adds.
pub fn tweak(add: &[String], drop: &[String], privileged: bool) -> Result<Vec<String>> {
    // "All" is all that this process has to give: a capability outside its own bounding set
    // (or unknown to this kernel) could not be raised in the container.
    let all = || {
        ALL.iter()
            .enumerate()
            // SAFETY: prctl with integer arguments.
            .filter(|(i, _)| unsafe { libc::prctl(libc::PR_CAPBSET_READ, *i, 0, 0, 0) } == 1)
            .map(|(_, c)| c.to_string())
    };
    if privileged {
        return Ok(all().collect());
    }
    let add = add
        .iter()
        .map(|c| normalize("--cap-add", c))
        .collect::<Result<Vec<_>>>()?;
    let drop = drop
        .iter()
        .map(|c| normalize("--cap-drop", c))
        .collect::<Result<Vec<_>>>()?;
    let all_in = |list: &[String]| list.iter().any(|c| c == "ALL");
    let mut caps: Vec<String> = if all_in(&add) {
        all().filter(|c| !drop.contains(c)).collect()
    } else if all_in(&drop) {
        add
    } else {
        DEFAULT
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .chain(add)
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn names_as_docker_takes_them() {
        assert_eq!(
            normalize("--cap-add", "sys_admin").unwrap(),
            "CAP_SYS_ADMIN"
        );
        assert_eq!(
            normalize("--cap-add", "CAP_NET_ADMIN").unwrap(),
            "CAP_NET_ADMIN"
        );
        assert_eq!(normalize("--cap-add", "all").unwrap(), "ALL");
        let e = normalize("--cap-drop", "cap_flying")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--cap-drop cap_flying: unknown capability");
    }

    #[test]
    fn tweaks() {
        assert_eq!(tweak(&[], &[], false).unwrap(), s(DEFAULT));
        let t = tweak(&s(&["sys_admin"]), &s(&["net_raw", "CAP_KILL"]), false).unwrap();
        assert!(t.contains(&"CAP_SYS_ADMIN".into()));
        assert!(!t.contains(&"CAP_NET_RAW".into()) && !t.contains(&"CAP_KILL".into()));
        assert_eq!(t.len(), DEFAULT.len() - 1);
        assert_eq!(
            tweak(&s(&["chown"]), &s(&["all"]), false).unwrap(),
            s(&["CAP_CHOWN"])
        );
        let everything = tweak(&[], &s(&["ALL"]), true).unwrap();
        assert!(everything.contains(&"CAP_CHOWN".into()), "{everything:?}");
        let t = tweak(&s(&["ALL"]), &s(&["chown"]), false).unwrap();
        assert_eq!(t.len(), everything.len() - 1);
        assert!(tweak(&s(&["bogus"]), &[], false).is_err());
    }
}
