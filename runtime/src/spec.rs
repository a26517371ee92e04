//! The OCI runtime spec (`config.json`), read through the `oci-spec` crate's types: one model
//! of the spec for the whole workspace (the image store builds the same types).
//!
//! The runtime spec says implementations MUST NOT error on unknown properties and MUST ignore
//! them, so a config written by a newer client still runs: unknown fields are ignored (and
//! logged at debug level). `--strict` turns them into an error, to catch typos such as
//! `"hostnmae"`. Values that are invalid (a wrong type, an unknown namespace type) are always
//! an error that names the field.

use std::path::{Path, PathBuf};

pub use oci_spec::runtime::{
    Hook, Hooks, LinuxCapabilities, LinuxDevice, LinuxDeviceType, LinuxNamespace,
    LinuxNamespaceType, Mount, PosixRlimit, PosixRlimitType, Process, Spec,
};

use crate::error::{Error, Result};

/// The runtime spec version minc implements.
pub const OCI_VERSION: &str = "1.2.0";

/// Reads and checks `BUNDLE/config.json`. Errors name the file, the field and the cause.
pub fn load(bundle: &Path, strict: bool) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let bad = |reason: String| Error::Config {
        path: path.clone(),
        reason,
    };
    if strict || tracing::enabled!(tracing::Level::DEBUG) {
        let mut unknown = Vec::new();
        let mut de = serde_json::Deserializer::from_slice(&data);
        let parsed: std::result::Result<Spec, _> = serde_ignored::deserialize(&mut de, |p| {
            // serde_ignored writes an Option level as `?`: drop it from the path.
            unknown.push(p.to_string().replace(".?", "").replace("?.", ""))
        });
        if parsed.is_ok() && !unknown.is_empty() {
            if strict {
                return Err(bad(format!(
                    "unknown field{} {} (--strict)",
                    if unknown.len() > 1 { "s" } else { "" },
                    unknown.join(", ")
                )));
            }
            tracing::debug!(
                "{}: ignoring unknown fields {}",
                path.display(),
                unknown.join(", ")
            );
        }
    }
    let spec: Spec = parse(&path, &data)?;
    validate(&spec).map_err(bad)?;
    Ok(spec)
}

/// What the spec requires beyond its JSON shape, and what minc does not support yet.
fn validate(spec: &Spec) -> std::result::Result<(), String> {
    // `process` is optional until `start` (the spec): a container without one is created,
    // and starting it is an error.
    if let Some(process) = spec.process() {
        validate_process(process)?;
    }
    let root = spec.root().as_ref().ok_or("no \"root\"")?;
    if root.path().as_os_str().is_empty() {
        return Err("root.path is empty".into());
    }
    for ns in namespaces(spec) {
        if ns.typ() == LinuxNamespaceType::User && ns.path().is_none() {
            crate::userns::Maps::of(spec).validate()?;
        }
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(format!(
                "mount destination {} is not absolute",
                m.destination().display()
            ));
        }
        let o = crate::init::mount_options(m.options().as_deref().unwrap_or(&[]));
        if o.bind || m.typ().as_deref() == Some("bind") {
            o.bind_data()
                .map_err(|e| format!("mounts: {}: {e}", m.destination().display()))?;
        }
    }
    crate::idmap::validate(spec)?;
    if let Some(l) = spec.linux() {
        // What minc cannot apply is an error, never a silently weaker container.
        if l.intel_rdt().is_some() {
            return Err("linux.intelRdt: Intel RDT (resctrl) is not supported by minc".into());
        }
        if l.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(
                "linux.netDevices: moving host network devices in is not supported by minc".into(),
            );
        }
        // A mount label means nothing on a host without SELinux (crun ignores it there too);
        // where SELinux runs, minc could not apply it.
        if l.mount_label().as_ref().is_some_and(|m| !m.is_empty())
            && Path::new("/sys/fs/selinux/enforce").exists()
        {
            return Err("linux.mountLabel: SELinux is not supported by minc".into());
        }
    }
    if let Some(hooks) = spec.hooks() {
        for (stage, list) in hook_stages(hooks) {
            for h in list {
                if !h.path().is_absolute() {
                    return Err(format!(
                        "hooks.{stage}: path {} is not absolute",
                        h.path().display()
                    ));
                }
                if let Some(t) = h.timeout() {
                    if t <= 0 {
                        return Err(format!(
                            "hooks.{stage}: {}: timeout must be greater than zero, not {t}",
                            h.path().display()
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// What a process (config.json's, or an `exec --process` file's) must satisfy.
fn validate_process(process: &Process) -> std::result::Result<(), String> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err("process.args is empty".into());
    }
    if !process.cwd().is_absolute() {
        return Err(format!(
            "process.cwd {:?} is not absolute",
            process.cwd().display()
        ));
    }
    // No LSM support in minc: a profile or label it cannot apply is an error, never a
    // silently weaker container (runc fails too when it cannot apply one).
    if process
        .apparmor_profile()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err("process.apparmorProfile: AppArmor is not supported by minc".into());
    }
    if process
        .selinux_label()
        .as_ref()
        .is_some_and(|l| !l.is_empty())
    {
        return Err("process.selinuxLabel: SELinux is not supported by minc".into());
    }
    Ok(())
}

/// Reads a process.json (`exec --process FILE`): the spec's `process` object on its own.
/// Errors name the file, the field and the cause, as [`load`]'s do.
pub fn load_process(path: &Path) -> Result<Process> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let process: Process = parse(path, &data)?;
    validate_process(&process).map_err(|reason| Error::Config {
        path: path.to_path_buf(),
        reason: reason.trim_start_matches("process.").to_string(),
    })?;
    Ok(process)
}

/// Deserializes JSON read from `path`; an error names the file and the field at fault.
fn parse<T: serde::de::DeserializeOwned>(path: &Path, data: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        // The field path says where; serde's " at line L column C" would say it twice.
        let inner = e.into_inner().to_string();
        let inner = match inner.rfind(" at line ") {
            Some(i) if at != "." => inner[..i].to_string(),
            _ => inner,
        };
        Error::Config {
            path: path.to_path_buf(),
            reason: if at == "." {
                inner.to_string()
            } else {
                format!("{at}: {inner}")
            },
        }
    })
}

/// Every hook stage with its name as the spec spells it.
#[allow(deprecated)] // prestart is deprecated by the spec but still run, as runc does
pub fn hook_stages(h: &Hooks) -> [(&'static str, &[Hook]); 6] {
    fn l(v: &Option<Vec<Hook>>) -> &[Hook] {
        v.as_deref().unwrap_or(&[])
    }
    [
        ("prestart", l(h.prestart())),
        ("createRuntime", l(h.create_runtime())),
        ("createContainer", l(h.create_container())),
        ("startContainer", l(h.start_container())),
        ("poststart", l(h.poststart())),
        ("poststop", l(h.poststop())),
    ]
}

/// The spec's process, or for a spec without one (see [`validate`]) an empty process with
/// no arguments, which the init never runs.
pub fn process(spec: &Spec) -> &Process {
    static NONE: std::sync::OnceLock<Process> = std::sync::OnceLock::new();
    spec.process().as_ref().unwrap_or_else(|| {
        NONE.get_or_init(|| {
            serde_json::from_str(r#"{"cwd": "/", "user": {"uid": 0, "gid": 0}}"#)
                .expect("a valid process")
        })
    })
}

/// The process's argv (validated non-empty).
pub fn args(p: &Process) -> &[String] {
    p.args().as_deref().unwrap_or(&[])
}

/// The process's environment as given in the spec.
pub fn env(p: &Process) -> &[String] {
    p.env().as_deref().unwrap_or(&[])
}

pub fn namespaces(spec: &Spec) -> &[LinuxNamespace] {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or(&[])
}

pub fn has_namespace(spec: &Spec, kind: LinuxNamespaceType) -> bool {
    namespaces(spec).iter().any(|n| n.typ() == kind)
}

/// The rootfs, resolved against the bundle when relative.
pub fn rootfs(spec: &Spec, bundle: &Path) -> PathBuf {
    let root = spec.root().as_ref().expect("validated").path();
    if root.is_absolute() {
        root.clone()
    } else {
        bundle.join(root)
    }
}

/// The clone/unshare flag of a namespace type.
pub fn ns_flag(kind: LinuxNamespaceType) -> libc::c_int {
    match kind {
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Time => 0x80, // CLONE_NEWTIME
    }
}

/// The file name of a namespace under /proc/PID/ns/.
pub fn ns_proc_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

/// The `unshare(1)` / `nsenter(1)` option for a namespace type (`--mount`, `--net`, ...).
pub fn ns_option(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Pid => "--pid",
        LinuxNamespaceType::Network => "--net",
        LinuxNamespaceType::Mount => "--mount",
        LinuxNamespaceType::Ipc => "--ipc",
        LinuxNamespaceType::Uts => "--uts",
        LinuxNamespaceType::User => "--user",
        LinuxNamespaceType::Cgroup => "--cgroup",
        LinuxNamespaceType::Time => "--time",
    }
}

/// The default config.json written by `minc spec`, the same as `runc spec` writes.
pub const DEFAULT_SPEC: &str = include_str!("default-spec.json");

/// [`DEFAULT_SPEC`] as a spec: the base the Docker face builds a container's spec on.
pub fn default_spec() -> Spec {
    serde_json::from_str(DEFAULT_SPEC).expect("the default spec is valid")
}

/// `minc spec --rootless`: the default spec turned into one an unprivileged user can run,
/// the way runc's `ToRootless` does it.
pub fn rootless_spec() -> String {
    let mut v: serde_json::Value = serde_json::from_str(DEFAULT_SPEC).expect("valid default");
    // SAFETY: geteuid/getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let linux = &mut v["linux"];
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network" && n["type"] != "user");
        ns.push(serde_json::json!({"type": "user"}));
    }
    linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("resources");
    }
    if let Some(mounts) = v["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            } else if let Some(opts) = m["options"].as_array_mut() {
                opts.retain(|o| {
                    let o = o.as_str().unwrap_or("");
                    !o.starts_with("uid=") && !o.starts_with("gid=")
                });
            }
        }
    }
    serde_json::to_string_pretty(&v).expect("serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(json: &str, strict: bool) -> Result<Spec> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        load(dir.path(), strict)
    }

    #[test]
    fn default_spec_parses_and_validates() {
        let spec = load_str(DEFAULT_SPEC, true).unwrap();
        assert!(has_namespace(&spec, LinuxNamespaceType::Pid));
        assert_eq!(args(process(&spec)), ["sh"]);
    }

    fn with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v: serde_json::Value = serde_json::from_str(DEFAULT_SPEC).unwrap();
        edit(&mut v);
        v.to_string()
    }

    #[test]
    fn unknown_fields_are_ignored_unless_strict() {
        let json = with(|v| {
            v["hostnmae"] = "x".into();
            v["process"]["futureField"] = 1.into();
            v["linux"]["somethingNew"] = serde_json::json!({"a": 1});
        });
        load_str(&json, false).unwrap();
        let err = load_str(&json, true).unwrap_err().to_string();
        assert!(err.contains("hostnmae"), "{err}");
        assert!(err.contains("process.futureField"), "{err}");
        assert!(err.contains("linux.somethingNew"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_field() {
        let json = with(|v| v["linux"]["namespaces"][0]["type"] = "bogus".into());
        let err = load_str(&json, false).unwrap_err().to_string();
        assert!(err.contains("linux.namespaces[0].type"), "{err}");
        let json = with(|v| v["process"]["user"]["uid"] = "root".into());
        let err = load_str(&json, false).unwrap_err().to_string();
        assert!(err.contains("process.user.uid"), "{err}");
    }

    #[test]
    fn what_minc_cannot_apply_is_refused() {
        let json = with(|v| v["linux"]["intelRdt"] = serde_json::json!({"closID": "x"}));
        let err = load_str(&json, false).unwrap_err().to_string();
        assert!(err.contains("linux.intelRdt"), "{err}");
        let json = with(|v| v["linux"]["netDevices"] = serde_json::json!({"eth1": {}}));
        let err = load_str(&json, false).unwrap_err().to_string();
        assert!(err.contains("linux.netDevices"), "{err}");
        // A process is optional until start.
        let json = with(|v| {
            v.as_object_mut().unwrap().remove("process");
        });
        load_str(&json, false).unwrap();
    }

    #[test]
    fn spec_rules_beyond_json() {
        type Edit = fn(&mut serde_json::Value);
        let cases: [(Edit, &str); 4] = [
            (|v| v["root"]["path"] = "".into(), "root.path is empty"),
            (
                |v| v["process"]["args"] = serde_json::json!([]),
                "args is empty",
            ),
            (
                |v| {
                    v["hooks"] =
                        serde_json::json!({"prestart": [{"path": "/bin/true", "timeout": 0}]})
                },
                "greater than zero",
            ),
            (
                |v| v["hooks"] = serde_json::json!({"poststop": [{"path": "true"}]}),
                "not absolute",
            ),
        ];
        for (edit, want) in cases {
            let err = load_str(&with(edit), false).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
