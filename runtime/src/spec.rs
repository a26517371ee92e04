//! The OCI runtime spec (config.json), as much of it as minc reads.
//!
//! Own serde types rather than a generic crate: parsing stays small and fast on the `create`
//! path, and unknown fields are rejected with a message that names them (a typo such as
//! `"hostnmae"` should not be silently ignored). Parts minc accepts but does not act on
//! (cgroup resources, seccomp, ...) are kept as raw JSON so valid configs still load.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    pub oci_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    pub root: Option<Root>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux: Option<Linux>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Root {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Process {
    #[serde(default)]
    pub terminal: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<Value>,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default = "root_dir")]
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    #[serde(default)]
    pub no_new_privileges: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_priority: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<Value>,
    #[serde(
        default,
        rename = "execCPUAffinity",
        skip_serializing_if = "Option::is_none"
    )]
    pub exec_cpu_affinity: Option<Value>,
}

fn root_dir() -> String {
    "/".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default)]
    pub bounding: Vec<String>,
    #[serde(default)]
    pub effective: Vec<String>,
    #[serde(default)]
    pub inheritable: Vec<String>,
    #[serde(default)]
    pub permitted: Vec<String>,
    #[serde(default)]
    pub ambient: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mount {
    pub destination: PathBuf,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid_mappings: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid_mappings: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prestart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_runtime: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_container: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_container: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<Hook>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Linux {
    #[serde(default)]
    pub namespaces: Vec<Namespace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid_mappings: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid_mappings: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_offsets: Option<Value>,
    #[serde(default)]
    pub devices: Vec<Device>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Value>,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub sysctl: HashMap<String, String>,
    #[serde(default)]
    pub masked_paths: Vec<String>,
    #[serde(default)]
    pub readonly_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_devices: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: NamespaceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceKind {
    Pid,
    Network,
    Mount,
    Ipc,
    Uts,
    User,
    Cgroup,
    Time,
}

impl NamespaceKind {
    /// The clone/unshare flag for this namespace.
    pub fn flag(self) -> libc::c_int {
        match self {
            Self::Pid => libc::CLONE_NEWPID,
            Self::Network => libc::CLONE_NEWNET,
            Self::Mount => libc::CLONE_NEWNS,
            Self::Ipc => libc::CLONE_NEWIPC,
            Self::Uts => libc::CLONE_NEWUTS,
            Self::User => libc::CLONE_NEWUSER,
            Self::Cgroup => libc::CLONE_NEWCGROUP,
            Self::Time => 0x80, // CLONE_NEWTIME
        }
    }

    /// The file name under /proc/PID/ns/.
    pub fn proc_name(self) -> &'static str {
        match self {
            Self::Pid => "pid",
            Self::Network => "net",
            Self::Mount => "mnt",
            Self::Ipc => "ipc",
            Self::Uts => "uts",
            Self::User => "user",
            Self::Cgroup => "cgroup",
            Self::Time => "time",
        }
    }

    /// The `unshare(1)` option that stands for this namespace in `--explain` output.
    pub fn unshare_flag(self) -> &'static str {
        match self {
            Self::Pid => "--pid",
            Self::Network => "--net",
            Self::Mount => "--mount",
            Self::Ipc => "--ipc",
            Self::Uts => "--uts",
            Self::User => "--user",
            Self::Cgroup => "--cgroup",
            Self::Time => "--time",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Device {
    #[serde(rename = "type")]
    pub kind: String,
    pub path: PathBuf,
    #[serde(default)]
    pub major: i64,
    #[serde(default)]
    pub minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

impl Spec {
    /// Reads and checks `BUNDLE/config.json`. Errors name the file and the cause.
    pub fn load(bundle: &Path) -> Result<Spec> {
        let path = bundle.join("config.json");
        let data = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let spec: Spec = serde_json::from_slice(&data).map_err(|e| Error::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        spec.validate(&path)?;
        Ok(spec)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let process = self
            .process
            .as_ref()
            .ok_or_else(|| bad("no \"process\"".into()))?;
        if process.args.is_empty() {
            return Err(bad("process.args is empty".into()));
        }
        if process.terminal {
            return Err(bad(
                "process.terminal is not supported yet (set it to false)".into(),
            ));
        }
        if !process.cwd.starts_with('/') {
            return Err(bad(format!(
                "process.cwd {:?} is not absolute",
                process.cwd
            )));
        }
        if self.root.is_none() {
            return Err(bad("no \"root\"".into()));
        }
        for ns in self.namespaces() {
            if matches!(ns.kind, NamespaceKind::User) {
                return Err(bad("user namespaces are not supported yet".into()));
            }
        }
        for m in &self.mounts {
            if !m.destination.is_absolute() {
                return Err(bad(format!(
                    "mount destination {} is not absolute",
                    m.destination.display()
                )));
            }
        }
        Ok(())
    }

    pub fn process(&self) -> &Process {
        self.process.as_ref().expect("validated")
    }

    pub fn namespaces(&self) -> &[Namespace] {
        self.linux
            .as_ref()
            .map(|l| l.namespaces.as_slice())
            .unwrap_or(&[])
    }

    pub fn has_namespace(&self, kind: NamespaceKind) -> bool {
        self.namespaces().iter().any(|n| n.kind == kind)
    }

    /// The rootfs, resolved against the bundle when relative.
    pub fn rootfs(&self, bundle: &Path) -> PathBuf {
        let root = &self.root.as_ref().expect("validated").path;
        if root.is_absolute() {
            root.clone()
        } else {
            bundle.join(root)
        }
    }

    pub fn hooks(&self) -> Hooks {
        self.hooks.clone().unwrap_or_default()
    }
}

/// The default config.json written by `minc spec`, the same as `runc spec` writes.
pub const DEFAULT_SPEC: &str = include_str!("default-spec.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_and_validates() {
        let spec: Spec = serde_json::from_str(DEFAULT_SPEC).unwrap();
        spec.validate(Path::new("config.json")).unwrap();
        assert!(spec.has_namespace(NamespaceKind::Pid));
        assert_eq!(spec.process().args, ["sh"]);
    }

    #[test]
    fn unknown_field_is_named() {
        let err = serde_json::from_str::<Spec>(r#"{"ociVersion":"1.0.2","hostnmae":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("hostnmae"), "{err}");
    }
}
