//! From an image config and the user's `run` flags to an OCI runtime spec, with runc-like
//! defaults for everything the image does not say.

use std::path::Path;

use serde_json::{json, Value};

use crate::capabilities;
use crate::error::{Error, Result};
use crate::store::Image;

#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Replaces the image's Entrypoint (and then its Cmd, as Docker does).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's Cmd when not empty.
    pub cmd: Vec<String>,
    /// `KEY=value`, added to or replacing the image's Env.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// `name`, `uid`, `uid:gid` or `name:group`, looked up in the image.
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// `--cap-add` / `--cap-drop`: names with or without `CAP_`, or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--privileged`: every capability, writable /sys, no masked or read-only paths, and
    /// the [`PRIVILEGED`] annotation (for device access, which the runtime grants).
    pub privileged: bool,
    /// `--security-opt no-new-privileges`
    pub no_new_privileges: bool,
    /// `linux.resources` from the resource flags (--memory, --cpus, ...), device rules aside.
    pub resources: Option<Value>,
    /// `--device`: (linux.devices entry, linux.resources.devices allow rule) pairs.
    pub devices: Vec<(Value, Value)>,
    /// `linux.cgroupsPath` (--cgroup-parent); the runtime's default otherwise.
    pub cgroups_path: Option<String>,
}

/// The annotation that marks a `--privileged` container's spec.
pub const PRIVILEGED: &str = "org.minc.privileged";

/// The runtime spec for running `image` from `rootfs` with the user's options.
///
/// `base` is the runtime's own default spec (what `minc spec` writes, as `runc spec`): its
/// mounts, namespaces, masked and read-only paths and device rules are kept, so there is
/// one default for both faces. What Docker does differently is set here: the process comes
/// from the image and the flags; Docker's capabilities, with no ambient ones; `no-new-privileges`
/// off unless asked; a writable root (`--read-only` is the caller's); no rlimits, so the
/// container inherits minc's as Docker's inherit dockerd's; TERM only with `-t` (the caller's).
pub fn runtime_spec(
    base: &oci_spec::runtime::Spec,
    image: &Image,
    rootfs: &Path,
    opts: &RunOptions,
) -> Result<oci_spec::runtime::Spec> {
    let cfg = image.config.config().clone().unwrap_or_default();
    let entrypoint = match &opts.entrypoint {
        Some(e) => e.clone(),
        None => cfg.entrypoint().clone().unwrap_or_default(),
    };
    let cmd = if !opts.cmd.is_empty() {
        opts.cmd.clone()
    } else if opts.entrypoint.is_some() {
        Vec::new() // a new entrypoint drops the image's Cmd, as in Docker
    } else {
        cfg.cmd().clone().unwrap_or_default()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::invalid(
            format!("image {}", image.name),
            "no command: the image has no Entrypoint or Cmd, give one",
        ));
    }
    let mut env: Vec<String> = cfg.env().clone().unwrap_or_default();
    if sysops::container::env_get(&env, "PATH").is_none() {
        env.insert(0, format!("PATH={}", sysops::container::DEFAULT_PATH));
    }
    for kv in &opts.env {
        sysops::container::env_set(&mut env, kv);
    }
    let cwd = opts
        .workdir
        .clone()
        .or_else(|| cfg.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let user = match opts
        .user
        .clone()
        .or_else(|| cfg.user().clone().filter(|u| !u.is_empty()))
    {
        Some(u) => lookup_user(rootfs, &u)?,
        None => (0, 0, Vec::new()),
    };

    let mut spec =
        serde_json::to_value(base).map_err(|e| Error::invalid("base spec", e.to_string()))?;
    if let Some(o) = spec["process"].as_object_mut() {
        o.remove("rlimits");
    }
    spec["root"]["readonly"] = json!(false);
    if let Some(o) = spec.as_object_mut() {
        o.remove("hostname");
    }
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(args);
    spec["process"]["env"] = json!(env);
    spec["process"]["cwd"] = json!(cwd);
    spec["process"]["user"] = json!({"uid": user.0, "gid": user.1, "additionalGids": user.2});
    spec["root"]["path"] = json!(rootfs);
    if let Some(h) = &opts.hostname {
        spec["hostname"] = json!(h);
    }
    if let Some(Value::Object(r)) = &opts.resources {
        for (k, v) in r {
            spec["linux"]["resources"][k] = v.clone();
        }
    }
    if !opts.devices.is_empty() {
        spec["linux"]["devices"] = json!(opts.devices.iter().map(|d| &d.0).collect::<Vec<_>>());
        let rules = spec["linux"]["resources"]["devices"]
            .as_array_mut()
            .expect("defaults have device rules");
        rules.extend(opts.devices.iter().map(|d| d.1.clone()));
    }
    if let Some(p) = &opts.cgroups_path {
        spec["linux"]["cgroupsPath"] = json!(p);
    }
    let caps = capabilities::tweak(&opts.cap_add, &opts.cap_drop, opts.privileged)?;
    spec["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    spec["process"]["noNewPrivileges"] = json!(opts.no_new_privileges);
    if opts.privileged {
        privileged(&mut spec);
    }
    serde_json::from_value(spec).map_err(|e| Error::invalid("runtime spec", e.to_string()))
}

/// Docker's `--privileged` beyond capabilities: /sys writable, nothing masked or read-only.
fn privileged(spec: &mut Value) {
    for m in spec["mounts"].as_array_mut().into_iter().flatten() {
        if m["type"] == "sysfs" {
            if let Some(opts) = m["options"].as_array_mut() {
                opts.retain(|o| o != "ro");
            }
        }
    }
    spec["linux"]["maskedPaths"] = json!([]);
    spec["linux"]["readonlyPaths"] = json!([]);
    // Every device, as Docker's --privileged.
    spec["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    spec["annotations"] = json!({ PRIVILEGED: "true" });
}

/// Resolves `user[:group]` against the image's /etc/passwd and /etc/group (read inside the
/// rootfs, never following a link out of it; a FIFO or device there is not opened for
/// reading, and at most 16 MiB is read). Returns (uid, gid, supplementary gids).
/// (`minc run -u` and `minc exec -u` of an image container.)
pub fn lookup_user(rootfs: &Path, spec: &str) -> Result<(u32, u32, Vec<u32>)> {
    let root = sysops::inroot::Root::open(rootfs).map_err(|e| Error::io(rootfs, e))?;
    let read = |p: &str| {
        use std::io::Read;
        let mut text = String::new();
        let _ = root
            .open_at(Path::new(p), libc::O_RDONLY | libc::O_NONBLOCK, 0)
            .map(std::fs::File::from)
            .ok()
            .filter(|f| f.metadata().is_ok_and(|m| m.is_file()))
            .map(|f| f.take(16 << 20).read_to_string(&mut text));
        text
    };
    let passwd = read("etc/passwd");
    let group = read("etc/group");
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && (f[0] == u || f[2] == u));
    let (uid, default_gid, name) = match (u.parse::<u32>(), &entry) {
        (_, Some(f)) => (
            f[2].parse().map_err(|_| Error::UnknownUser(u.into()))?,
            f[3].parse().unwrap_or(0),
            Some(f[0].to_string()),
        ),
        (Ok(n), None) => (n, n, None),
        (Err(_), None) => return Err(Error::UnknownUser(u.into())),
    };
    let groups: Vec<Vec<&str>> = group.lines().map(|l| l.split(':').collect()).collect();
    let gid = match g {
        None => default_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f.len() > 2 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| Error::UnknownGroup(g.into()))?,
        },
    };
    let extra = match &name {
        Some(n) => groups
            .iter()
            .filter(|f| f.len() > 3 && f[3].split(',').any(|m| m == n))
            .filter_map(|f| f[2].parse().ok())
            .filter(|g| *g != gid)
            .collect(),
        None => Vec::new(),
    };
    Ok((uid, gid, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A base as the runtime's default spec has it (runtime/src/default-spec.json).
    fn base() -> oci_spec::runtime::Spec {
        serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
                "env": ["PATH=/bin", "TERM=xterm"], "noNewPrivileges": true,
                "capabilities": {"bounding": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]},
            "root": {"path": "rootfs", "readonly": true},
            "hostname": "minc",
            "mounts": [{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"]}],
            "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "namespaces": [{"type": "pid"}], "maskedPaths": ["/proc/kcore"]}
        }))
        .unwrap()
    }

    #[test]
    fn docker_defaults_over_the_runtime_base() {
        let dir = tempfile::tempdir().unwrap();
        let config = json!({"architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["echo", "hi"], "Env": ["A=1"]},
            "rootfs": {"type": "layers", "diff_ids": []}});
        let image = Image {
            name: "x".into(),
            digest: "sha256:00".into(),
            manifest: serde_json::from_value(json!({"schemaVersion": 2,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:00", "size": 0},
                "layers": []})).unwrap(),
            config: serde_json::from_value(config).unwrap(),
        };
        let opts = RunOptions {
            env: vec!["A=2".into()],
            ..Default::default()
        };
        let spec = serde_json::to_value(runtime_spec(&base(), &image, dir.path(), &opts).unwrap())
            .unwrap();
        let p = &spec["process"];
        assert_eq!(p["args"], json!(["echo", "hi"]));
        assert_eq!(
            p["env"],
            json!([format!("PATH={}", sysops::container::DEFAULT_PATH), "A=2"])
        );
        assert_eq!(p["noNewPrivileges"], json!(false));
        assert!(p.get("rlimits").is_none() && p["capabilities"].get("ambient").is_none());
        assert_eq!(
            p["capabilities"]["bounding"].as_array().unwrap().len(),
            capabilities::DEFAULT.len()
        );
        assert_eq!(spec["root"]["readonly"], json!(false));
        assert!(spec.get("hostname").is_none());
        // What the base says about the kernel's side is kept.
        assert_eq!(spec["linux"]["maskedPaths"], json!(["/proc/kcore"]));
        assert_eq!(spec["linux"]["namespaces"], json!([{"type": "pid"}]));
    }

    #[test]
    fn privileged_spec() {
        let mut spec = serde_json::to_value(base()).unwrap();
        privileged(&mut spec);
        assert_eq!(spec["annotations"]["org.minc.privileged"], "true");
        assert_eq!(spec["linux"]["maskedPaths"], json!([]));
        let sys = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["type"] == "sysfs")
            .unwrap();
        assert!(!sys["options"].as_array().unwrap().contains(&json!("ro")));
    }

    #[test]
    fn users_from_the_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app\n",
        )
        .unwrap();
        assert_eq!(
            lookup_user(dir.path(), "app").unwrap(),
            (1000, 1000, vec![10])
        );
        assert_eq!(
            lookup_user(dir.path(), "app:wheel").unwrap(),
            (1000, 10, vec![])
        );
        assert_eq!(
            lookup_user(dir.path(), "1234:5").unwrap(),
            (1234, 5, vec![])
        );
        assert!(matches!(
            lookup_user(dir.path(), "ghost"),
            Err(Error::UnknownUser(_))
        ));
    }
}
