//! Placement: which cgroup hierarchies this host has, and where a container's cgroup goes in
//! each of them.
//!
//! The hierarchies are the mounts of type `cgroup` (v1: one per controller set, named by its
//! mount options) and `cgroup2` in /proc/self/mountinfo (see proc(5)); the runtime's own
//! cgroups are in /proc/self/cgroup (`ID:CONTROLLERS:PATH`, `0::PATH` for v2; cgroups(7)).
//! Inside a cgroup namespace both are relative to the namespace's root
//! (cgroup_namespaces(7)), so the same rules work in a nested setting.
//!
//! `linux.cgroupsPath` follows runc: an absolute path is taken from each hierarchy's root; a
//! relative one is put under the runtime's own cgroup (on v2, under its parent: a cgroup with
//! processes cannot have controllers enabled for children); `..` never climbs above the root
//! (runc's CleanPath). With `--systemd-cgroup` the path is systemd's `slice:prefix:name`, which
//! minc maps to the directory systemd itself would use (`/system.slice/prefix-name.scope`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Cgroup, Dir, Error, Result, DEFAULT_PARENT};

/// The cgroup design of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only v1 hierarchies.
    V1,
    /// v1 controllers plus a v2 tree (usually at /sys/fs/cgroup/unified).
    Hybrid,
    /// Only the v2 tree.
    V2,
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1 controllers (`cpu`, `name=systemd`); empty for v2.
    pub controllers: Vec<String>,
    pub mountpoint: PathBuf,
    /// The cgroup that is the mount's root (`/` unless a subtree was mounted or bound).
    pub root: String,
}

/// The hierarchies seen by this process and its own place in each.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub v1: Vec<Hierarchy>,
    pub unified: Option<Hierarchy>,
    /// Lines of /proc/self/cgroup: (controllers, path); v2's has no controllers.
    pub own: Vec<(Vec<String>, String)>,
}

/// v1 controller names as they appear in mount options (anything else there is an option).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

impl Layout {
    /// Reads /proc/self/mountinfo and /proc/self/cgroup.
    ///
    /// The usual layout is recognized from /sys/fs/cgroup alone (a statfs per hierarchy:
    /// O(1), where mountinfo grows with every mount on the host, containers' included);
    /// anything else falls back to parsing mountinfo.
    ///
    /// Detected once per process: the container's init, a copy of `create` made by clone,
    /// finds it already done (its own cgroup paths in it are `create`'s, not its own).
    pub fn detect() -> Result<Layout> {
        static DETECTED: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
        if let Some(l) = DETECTED.get() {
            return Ok(l.clone());
        }
        let l = Layout::detect_now()?;
        Ok(DETECTED.get_or_init(|| l).clone())
    }

    fn detect_now() -> Result<Layout> {
        let read = |p: &str| std::fs::read_to_string(p).map_err(|e| Error::io(Path::new(p), e));
        let own = read("/proc/self/cgroup")?;
        if let Some(layout) = Layout::from_sys_fs_cgroup(&own) {
            return Ok(layout);
        }
        Ok(Layout::parse(&read("/proc/self/mountinfo")?, &own))
    }

    /// The standard layout: cgroup2 at /sys/fs/cgroup, or a tmpfs there holding one mount
    /// per v1 hierarchy named after its controllers (`cpu,cpuacct`, `systemd` for
    /// name=systemd) and maybe `unified`. Each mount is taken to show its hierarchy from the
    /// (namespace's) root, which is checked: our own cgroup must exist below it. `None`
    /// when anything does not fit.
    fn from_sys_fs_cgroup(own_text: &str) -> Option<Layout> {
        const CGROUP_SUPER_MAGIC: i64 = 0x27e0eb;
        const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        let fs_type = |p: &Path| -> Option<i64> {
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
            // SAFETY: statfs into a zeroed struct with a valid C string.
            let mut st: libc::statfs = unsafe { std::mem::zeroed() };
            (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
        };
        let mut layout = Layout::parse("", own_text);
        let top = Path::new("/sys/fs/cgroup");
        let hierarchy = |controllers: Vec<String>, mountpoint: PathBuf| Hierarchy {
            controllers,
            mountpoint,
            root: "/".into(),
        };
        match fs_type(top)? {
            CGROUP2_SUPER_MAGIC => layout.unified = Some(hierarchy(Vec::new(), top.into())),
            TMPFS_MAGIC => {
                for e in std::fs::read_dir(top).ok()?.flatten() {
                    if !e.file_type().ok()?.is_dir() {
                        continue; // the cpu -> cpu,cpuacct symlinks
                    }
                    let name = e.file_name().into_string().ok()?;
                    match fs_type(&e.path())? {
                        CGROUP2_SUPER_MAGIC if name == "unified" => {
                            layout.unified = Some(hierarchy(Vec::new(), e.path()))
                        }
                        CGROUP_SUPER_MAGIC => {
                            let controllers: Vec<String> = if name == "systemd" {
                                vec!["name=systemd".into()]
                            } else {
                                name.split(',').map(String::from).collect()
                            };
                            layout.v1.push(hierarchy(controllers, e.path()));
                        }
                        // An empty mount point (e.g. `unified` unmounted): not a hierarchy.
                        TMPFS_MAGIC => {}
                        _ => return None,
                    }
                }
                layout.v1.sort_by(|a, b| a.mountpoint.cmp(&b.mountpoint));
            }
            _ => return None,
        }
        // Every hierarchy must be one of ours in /proc/self/cgroup, and our cgroup there must
        // exist under the mount (else the mount shows a subtree: ask mountinfo).
        let all = layout.v1.iter().chain(layout.unified.as_ref());
        for h in all {
            let own = layout.own_path(&h.controllers)?;
            if !h.mountpoint.join(own.trim_start_matches('/')).is_dir() {
                return None;
            }
        }
        layout.mode()?;
        Some(layout)
    }

    pub fn parse(mountinfo: &str, own: &str) -> Layout {
        let mut layout = Layout::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 5 || r.len() < 3 {
                continue;
            }
            let root = unescape(l[3]);
            let mountpoint = PathBuf::from(unescape(l[4]));
            match r[0] {
                "cgroup2" if layout.unified.is_none() => {
                    layout.unified = Some(Hierarchy {
                        controllers: Vec::new(),
                        mountpoint,
                        root,
                    })
                }
                "cgroup" => {
                    let controllers: Vec<String> = r[2]
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(String::from)
                        .collect();
                    if controllers.is_empty()
                        || layout.v1.iter().any(|h| h.controllers == controllers)
                    {
                        continue; // a second mount of the same hierarchy
                    }
                    layout.v1.push(Hierarchy {
                        controllers,
                        mountpoint,
                        root,
                    });
                }
                _ => {}
            }
        }
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let ctrls = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect();
            layout.own.push((ctrls, path.to_string()));
        }
        layout
    }

    pub fn mode(&self) -> Option<Mode> {
        match (self.v1.iter().any(|h| !is_named(h)), &self.unified) {
            (true, Some(_)) => Some(Mode::Hybrid),
            (true, None) => Some(Mode::V1),
            (false, Some(_)) => Some(Mode::V2),
            (false, None) => None,
        }
    }

    /// Where this process is in the hierarchy with `controllers` (empty: v2).
    pub(crate) fn own_path(&self, controllers: &[String]) -> Option<&str> {
        self.own
            .iter()
            .find(|(c, _)| {
                c.len() == controllers.len() && controllers.iter().all(|x| c.contains(x))
            })
            .map(|(_, p)| p.as_str())
    }

    /// The container's cgroup for `cgroups_path` (see the module docs), in every hierarchy.
    pub fn place(&self, cgroups_path: Option<&str>, id: &str, systemd: bool) -> Result<Cgroup> {
        let mode = self.mode().ok_or_else(|| Error::Unsupported {
            what: "cgroups".into(),
            why: "no cgroup filesystem is mounted (see /proc/self/mountinfo)".into(),
        })?;
        let given = cgroups_path.filter(|p| !p.is_empty());
        let path = match given {
            Some(p) if systemd => systemd_path(p, id)?,
            None if systemd => systemd_path(&format!("system.slice:minc:{id}"), id)?,
            Some(p) => {
                if p.contains('\0') {
                    return Err(Error::Path {
                        path: p.into(),
                        reason: "contains a NUL byte".into(),
                    });
                }
                if p.starts_with('/') {
                    clean(p)
                } else {
                    let rel = clean(p);
                    if rel == "/" {
                        return Err(Error::Path {
                            path: p.into(),
                            reason: "names no cgroup below the runtime's own".into(),
                        });
                    }
                    rel.trim_start_matches('/').to_string()
                }
            }
            None => format!("{DEFAULT_PARENT}/{id}"),
        };
        let relative = !path.starts_with('/');
        let mut dirs = Vec::new();
        let hierarchies = self
            .v1
            .iter()
            .filter(|_| mode != Mode::V2)
            .chain(self.unified.as_ref());
        for h in hierarchies {
            let inner = if relative {
                let own = self.own_path(&h.controllers).unwrap_or("/");
                // v2: the parent of our own cgroup (which holds processes, ours included).
                let base = if h.controllers.is_empty() && own != "/" {
                    Path::new(own)
                        .parent()
                        .map_or("/".into(), |p| p.display().to_string())
                } else {
                    own.to_string()
                };
                clean(&format!("{base}/{path}"))
            } else {
                path.clone()
            };
            if inner == "/" {
                return Err(Error::Path {
                    path: path.clone(),
                    reason: "is the root cgroup: a container needs a cgroup of its own".into(),
                });
            }
            // Paths are relative to the mount's root, which may itself be a sub-cgroup.
            let below = match inner.strip_prefix(&h.root) {
                Some(rest) if h.root != "/" && (rest.is_empty() || rest.starts_with('/')) => {
                    rest.to_string()
                }
                _ => inner.clone(),
            };
            dirs.push(Dir {
                controllers: h.controllers.clone(),
                path: h.mountpoint.join(below.trim_start_matches('/')),
            });
        }
        Ok(Cgroup {
            path: if relative { path } else { clean(&path) },
            mode,
            dirs,
        })
    }
}

/// A v1 hierarchy with no controller, only a name (`name=systemd`).
fn is_named(h: &Hierarchy) -> bool {
    h.controllers.iter().all(|c| c.starts_with("name="))
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// runc's CleanPath: an absolute, normalized path where `..` never goes above `/`.
pub fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// systemd's `slice:prefix:name` form as the cgroupfs path systemd gives it:
/// `kubepods-burstable.slice:cri-containerd:ID` ->
/// `/kubepods.slice/kubepods-burstable.slice/cri-containerd-ID.scope`.
pub fn systemd_path(form: &str, id: &str) -> Result<String> {
    let bad = |reason: &str| Error::Path {
        path: form.into(),
        reason: reason.into(),
    };
    let parts: Vec<&str> = form.split(':').collect();
    let [slice, prefix, name] = parts.as_slice() else {
        return Err(bad("with --systemd-cgroup it must be slice:prefix:name"));
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let name = if name.is_empty() { id } else { name };
    let parent = expand_slice(slice).map_err(|r| bad(&r))?;
    if name.contains('/') || prefix.contains('/') {
        return Err(bad("prefix and name may not contain '/'"));
    }
    let unit = if name.ends_with(".slice") {
        // A slice below the parent: systemd names it after its parent too.
        let expanded = expand_slice(name).map_err(|r| bad(&r))?;
        return Ok(expanded);
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(clean(&format!("{parent}/{unit}")))
}

/// `a-b-c.slice` -> `/a.slice/a-b.slice/a-b-c.slice` (systemd.slice(5)); `-.slice` is `/`.
pub fn expand_slice(slice: &str) -> std::result::Result<String, String> {
    let name = slice
        .strip_suffix(".slice")
        .filter(|n| !n.is_empty() && !slice.contains('/'))
        .ok_or_else(|| format!("invalid slice name {slice:?}"))?;
    if name == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in name.split('-') {
        if component.is_empty() {
            return Err(format!("invalid slice name {slice:?}"));
        }
        path.push('/');
        path.push_str(&prefix);
        path.push_str(component);
        path.push_str(".slice");
        prefix.push_str(component);
        prefix.push('-');
    }
    Ok(path)
}

/// Whether systemd manages this host's cgroups (sd_booted(3)'s test).
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 23 0:32 / /mnt/again rw,relatime - cgroup cgroup rw,memory
";
    const OWN: &str = "9:name=systemd:/\n4:memory:/process_api/abc\n3:cpuset:/\n1:cpu:/\n0::/\n";

    #[test]
    fn hybrid_layout_and_absolute_path() {
        let l = Layout::parse(HYBRID, OWN);
        assert_eq!(l.mode(), Some(Mode::Hybrid));
        assert_eq!(
            l.v1.len(),
            4,
            "the second memory mount is the same hierarchy"
        );
        let cg = l
            .place(Some("/kubepods/burstable/pod1/c1"), "c1", false)
            .unwrap();
        let dirs: Vec<_> = cg
            .dirs
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        assert_eq!(
            dirs,
            [
                "/sys/fs/cgroup/cpu/kubepods/burstable/pod1/c1",
                "/sys/fs/cgroup/cpuset/kubepods/burstable/pod1/c1",
                "/sys/fs/cgroup/memory/kubepods/burstable/pod1/c1",
                "/sys/fs/cgroup/systemd/kubepods/burstable/pod1/c1",
                "/sys/fs/cgroup/unified/kubepods/burstable/pod1/c1",
            ]
        );
        assert!(cg.dirs[4].unified());
    }

    #[test]
    fn relative_path_goes_under_own_cgroup_and_never_above_root() {
        let l = Layout::parse(HYBRID, OWN);
        let cg = l.place(Some("../../x/y"), "c1", false).unwrap();
        assert_eq!(
            cg.dirs[2].path,
            Path::new("/sys/fs/cgroup/memory/process_api/abc/x/y")
        );
        assert_eq!(cg.dirs[0].path, Path::new("/sys/fs/cgroup/cpu/x/y"));
        let cg = l.place(Some("/../../etc"), "c1", false).unwrap();
        assert_eq!(cg.dirs[0].path, Path::new("/sys/fs/cgroup/cpu/etc"));
        assert!(l.place(Some("/"), "c1", false).is_err());
        assert!(l.place(Some(".."), "c1", false).is_err());
        let cg = l.place(None, "c1", false).unwrap();
        assert_eq!(cg.path, "/minc/c1");
    }

    #[test]
    fn v2_relative_is_under_the_parent_of_own_cgroup() {
        let mi = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let l = Layout::parse(mi, "0::/user.slice/session-1.scope\n");
        assert_eq!(l.mode(), Some(Mode::V2));
        let cg = l.place(Some("ctr"), "c1", false).unwrap();
        assert_eq!(cg.dirs.len(), 1);
        assert_eq!(cg.dirs[0].path, Path::new("/sys/fs/cgroup/user.slice/ctr"));
    }

    #[test]
    fn mount_of_a_subtree() {
        let mi = "30 23 0:26 /outer /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let l = Layout::parse(mi, "0::/outer/me\n");
        let cg = l.place(Some("/outer/c"), "c", false).unwrap();
        assert_eq!(cg.dirs[0].path, Path::new("/sys/fs/cgroup/c"));
    }

    #[test]
    fn systemd_forms() {
        assert_eq!(
            systemd_path("kubepods-burstable-pod12.slice:cri-containerd:abc", "x").unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice/cri-containerd-abc.scope"
        );
        assert_eq!(
            systemd_path("system.slice:docker:abc", "x").unwrap(),
            "/system.slice/docker-abc.scope"
        );
        assert_eq!(
            systemd_path(":minc:", "id1").unwrap(),
            "/system.slice/minc-id1.scope"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in ["a--b.slice", "-a.slice", "a/b.slice", ".slice", "x"] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
        assert!(systemd_path("/kubepods/x", "x").is_err());
        assert!(systemd_path("a.slice:p:../../x", "x").is_err());
    }

    /// The fast path agrees with mountinfo on this host (whatever its layout).
    #[test]
    fn sys_fs_cgroup_agrees_with_mountinfo() {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let slow = Layout::parse(&mi, &own);
        let Some(fast) = Layout::from_sys_fs_cgroup(&own) else {
            return; // not the standard layout here: mountinfo is what counts
        };
        let key = |l: &Layout| {
            let mut v: Vec<(Vec<String>, PathBuf)> =
                l.v1.iter()
                    .map(|h| {
                        let mut c = h.controllers.clone();
                        c.sort();
                        (c, h.mountpoint.clone())
                    })
                    .collect();
            v.sort();
            (v, l.unified.as_ref().map(|u| u.mountpoint.clone()))
        };
        assert_eq!(key(&fast), key(&slow));
        assert_eq!(fast.mode(), slow.mode());
    }

    #[test]
    fn escaped_mountpoints() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(clean("a/./b/../../.."), "/");
    }
}
