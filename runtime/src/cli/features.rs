//! `minc features`: what this runtime supports, as the JSON document of the runtime spec's
//! features.md (runc 1.1+ prints the same shape), so clients can probe before they ask.
//! Every list is taken from the code that acts on it, not written out a second time.

use anyhow::Result;
use serde_json::json;

use crate::init::KNOWN_MOUNT_OPTIONS;
use crate::spec::{self, LinuxNamespaceType};

pub fn document() -> serde_json::Value {
    let hooks: Vec<&str> = spec::hook_stages(&Default::default())
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let namespaces: Vec<&str> = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Time,
    ]
    .iter()
    .map(|n| match n {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Network => "network",
        other => spec::ns_proc_name(*other),
    })
    .collect();
    let mut caps: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
    caps.sort();
    let no = json!({"enabled": false});
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": spec::OCI_VERSION,
        "hooks": hooks,
        "mountOptions": KNOWN_MOUNT_OPTIONS,
        "linux": {
            "namespaces": namespaces,
            "capabilities": caps,
            "cgroup": {"v1": false, "v2": false, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": crate::seccomp::features(),
            "apparmor": no,
            "selinux": no,
            "intelRdt": no,
            "mountExtensions": {"idmap": {"enabled": true}},
        },
        "annotations": {
            "io.github.minc.version": env!("CARGO_PKG_VERSION"),
        },
    })
}

/// Prints the document, indented as runc does.
pub fn print() -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&document())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_as_the_spec_type() {
        let doc = super::document();
        let f: oci_spec::runtime::Features = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(f.oci_version_max(), crate::spec::OCI_VERSION);
        assert!(f
            .hooks()
            .as_ref()
            .unwrap()
            .contains(&"createRuntime".to_string()));
        let linux = f.linux().as_ref().unwrap();
        assert!(linux
            .capabilities()
            .as_ref()
            .unwrap()
            .contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(linux
            .namespaces()
            .as_ref()
            .unwrap()
            .contains(&crate::spec::LinuxNamespaceType::User));
        assert_eq!(doc["linux"]["seccomp"]["enabled"], true);
        assert!(doc["mountOptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "rro"));
    }
}
