//! A Kubernetes node's runtime side, without the kubelet: containerd with its CRI plugin, the
//! `io.containerd.runc.v2` shim whose `BinaryName` is the runtime under test (minc, or runc
//! for comparison), and a CNI network: netsetup, or the reference bridge + portmap chain.
//!
//! Call only inside a sandbox (`minc_tests::sandbox`, or the bench's `unshare`): containerd
//! keeps its shims' state under /run/containerd (a tmpfs there), pods' network namespaces
//! go to /run/netns, and cgroups to the sandbox's own subtree. Everything else (containerd's
//! root and state, the CNI config and bin directories, netsetup's data, the pods' logs) is in
//! a temp dir that goes with the `Node`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use minc_tests::containerd::Containerd;

use crate::Cri;

/// The image the test's containers run: a busybox rootfs.
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:minc-node";
/// The sandbox image (the pod's pause container), built from `pause.c`.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:minc-node";
/// The pod network's subnet with netsetup.
pub const POD_SUBNET: &str = "10.88.0.0/16";
/// The subnet of the bridge network (another one: both may live in the same sandbox, one
/// node after the other, and their bridges stay).
pub const BRIDGE_SUBNET: &str = "10.89.0.0/16";

/// The pod network.
pub enum Network {
    /// netsetup as the CNI plugin (the path of its binary), with the loopback plugin beside
    /// it as containerd wants one.
    Netsetup(PathBuf),
    /// The CNI reference plugins from `dir` (Debian's /usr/lib/cni): bridge with host-local
    /// IPAM, then portmap.
    Bridge(PathBuf),
}

pub struct Node {
    // Dropped first: the connection, then containerd, then its files.
    pub cri: Cri,
    pub containerd: Containerd,
    dir: tempfile::TempDir,
}

impl Node {
    /// Starts containerd with the CRI plugin, `runtime` as the runc shim's binary and
    /// `network` as the pod network; imports the busybox and pause images.
    pub fn start(runtime: &Path, network: &Network) -> Node {
        let dir = minc_tests::tempdir();
        let conf_dir = dir.path().join("cni-conf");
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::create_dir_all(dir.path().join("pods")).unwrap();
        let (bin_dir, conflist) = match network {
            Network::Netsetup(netsetup) => {
                let bin = dir.path().join("cni-bin");
                std::fs::create_dir_all(&bin).unwrap();
                std::os::unix::fs::symlink(netsetup, bin.join("netsetup")).unwrap();
                std::os::unix::fs::symlink("/usr/lib/cni/loopback", bin.join("loopback")).unwrap();
                (bin, netsetup_conflist(&dir.path().join("net")))
            }
            Network::Bridge(plugins) => (
                plugins.clone(),
                bridge_conflist(&dir.path().join("host-local")),
            ),
        };
        std::fs::write(conf_dir.join("10-pods.conflist"), conflist).unwrap();
        let cri = cri_toml(runtime, &bin_dir, &conf_dir);
        let containerd = Containerd::start_with(runtime, Some(&cri));
        let client = Cri::connect(&containerd.socket, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}\n{}", containerd.log()));
        let node = Node {
            cri: client,
            containerd,
            dir,
        };
        node.import_images();
        node
    }

    /// Where the pod `name` keeps its containers' logs (the kubelet's log directory).
    pub fn log_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join("pods").join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// netsetup's data directory (its IP allocations and saved state).
    pub fn net_data(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    /// The containerd log, for failure messages.
    pub fn log(&self) -> String {
        self.containerd.log()
    }

    fn import_images(&self) {
        let rootfs = minc_tests::tempdir();
        minc_tests::busybox_rootfs(rootfs.path());
        self.containerd
            .import_to("k8s.io", "overlayfs", rootfs.path(), BUSYBOX_IMAGE, &["sh"]);
        let pause = minc_tests::tempdir();
        build_pause(pause.path());
        self.containerd.import_to(
            "k8s.io",
            "overlayfs",
            pause.path(),
            PAUSE_IMAGE,
            &["/pause"],
        );
    }
}

/// Builds `pause.c` static into `rootfs/pause`.
fn build_pause(rootfs: &Path) {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/pause.c");
    let out = rootfs.join("pause");
    minc_tests::run(
        "cc",
        &["-static", "-Os", "-s", "-o", out.to_str().unwrap(), src],
    );
}

/// The CRI plugin's configuration: the runc shim with `BinaryName`, the overlayfs
/// snapshotter, the local pause image, the CNI directories. This is what a node's
/// /etc/containerd/config.toml says to use minc (see the README).
fn cri_toml(runtime: &Path, cni_bin: &Path, cni_conf: &Path) -> String {
    format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  restrict_oom_score_adj = {restrict}
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "node"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.node]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.node.options]
        BinaryName = "{runtime}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{conf}"
    max_conf_num = 1
"#,
        runtime = runtime.display(),
        restrict = !has_sys_resource(),
        bin = cni_bin.display(),
        conf = cni_conf.display(),
    )
}

/// Whether this process may lower an oom_score_adj (CAP_SYS_RESOURCE). Without it (a node in a
/// container, this project's test machines), the pause container's -998 cannot be set by any
/// runtime: containerd's `restrict_oom_score_adj` clamps the spec's value to its own.
fn has_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24; // capability(7)
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// netsetup as the pod network (the README's conflist).
fn netsetup_conflist(data: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "pods",
        "plugins": [{
            "type": "netsetup",
            "bridge": "minc0",
            "subnet": POD_SUBNET,
            "dataDir": data,
            "capabilities": {"portMappings": true, "dns": true},
        }],
    })
    .to_string()
}

/// The reference chain: bridge + host-local, then portmap.
fn bridge_conflist(ipam_data: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "pods",
        "plugins": [
            {
                "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
                "hairpinMode": true,
                "ipam": {"type": "host-local", "subnet": BRIDGE_SUBNET, "dataDir": ipam_data,
                         "routes": [{"dst": "0.0.0.0/0"}]},
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
        ],
    })
    .to_string()
}
