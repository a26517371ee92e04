//! A client of the kubelet's CRI API, and a Kubernetes node without the kubelet: containerd
//! with its CRI plugin, the runc shim driving minc (or runc), and netsetup (or the CNI
//! bridge) as the pod network. `tests/e2e/cri.rs` drives it as the kubelet would, and
//! `bench/cri.sh` (the `cri-bench` binary) times pods on it.
//!
//! Why a Rust client (tonic + prost) rather than Python's grpc: the test is a Rust test in
//! the workspace, so its assertions, its sandbox and its cleanup stay in one language and one
//! process, and the bench reuses the same code; CI needs no Python packages and no protoc,
//! because the few messages the kubelet's calls need are written from the proto's field
//! numbers (`api.rs`) instead of generated. The cost is the build of tonic's client stack
//! (tokio, hyper, h2, tower), once per CI run.

pub mod api;
pub mod node;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};

pub use tonic::Status;

/// A blocking CRI client over a unix socket (what the kubelet's `--container-runtime-endpoint
/// unix:///...` dials).
pub struct Cri {
    rt: tokio::runtime::Runtime,
    channel: Channel,
}

const RUNTIME: &str = "runtime.v1.RuntimeService";

impl Cri {
    /// Connects to the CRI socket; every call is bounded by `timeout`.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Cri, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let path: PathBuf = socket.to_path_buf();
        // The URI is a placeholder: the connector dials the socket whatever it says.
        let endpoint = Endpoint::from_static("http://localhost").timeout(timeout);
        let channel = rt
            .block_on(
                endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                })),
            )
            .map_err(|e| format!("connect {}: {e}", socket.display()))?;
        Ok(Cri { rt, channel })
    }

    /// One unary call of `runtime.v1.RuntimeService/METHOD`.
    pub fn call<Q, R>(&self, method: &str, req: Q) -> Result<R, Status>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let path: PathAndQuery = format!("/{RUNTIME}/{method}")
            .parse()
            .map_err(|e| Status::internal(format!("method {method}: {e}")))?;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        self.rt.block_on(async move {
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(format!("{method}: {e}")))?;
            let codec = tonic_prost::ProstCodec::<Q, R>::default();
            grpc.unary(tonic::Request::new(req), path, codec)
                .await
                .map(tonic::Response::into_inner)
        })
    }

    pub fn version(&self) -> Result<api::VersionResponse, Status> {
        self.call(
            "Version",
            api::VersionRequest {
                version: "v1".into(),
            },
        )
    }

    pub fn run_pod(&self, config: &api::PodSandboxConfig) -> Result<String, Status> {
        let r: api::RunPodSandboxResponse = self.call(
            "RunPodSandbox",
            api::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            },
        )?;
        Ok(r.pod_sandbox_id)
    }

    pub fn pod_status(&self, pod: &str) -> Result<api::PodSandboxStatusResponse, Status> {
        self.call("PodSandboxStatus", pod_id(pod))
    }

    pub fn stop_pod(&self, pod: &str) -> Result<(), Status> {
        self.call::<_, api::Empty>("StopPodSandbox", pod_id(pod))
            .map(drop)
    }

    pub fn remove_pod(&self, pod: &str) -> Result<(), Status> {
        self.call::<_, api::Empty>("RemovePodSandbox", pod_id(pod))
            .map(drop)
    }

    pub fn create_container(
        &self,
        pod: &str,
        config: &api::ContainerConfig,
        pod_config: &api::PodSandboxConfig,
    ) -> Result<String, Status> {
        let r: api::CreateContainerResponse = self.call(
            "CreateContainer",
            api::CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config.clone()),
                sandbox_config: Some(pod_config.clone()),
            },
        )?;
        Ok(r.container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<(), Status> {
        self.call::<_, api::Empty>("StartContainer", container_id(id))
            .map(drop)
    }

    pub fn container_status(&self, id: &str) -> Result<api::ContainerStatus, Status> {
        let r: api::ContainerStatusResponse = self.call("ContainerStatus", container_id(id))?;
        r.status
            .ok_or_else(|| Status::internal("ContainerStatus: no status"))
    }

    pub fn container_stats(&self, id: &str) -> Result<api::ContainerStats, Status> {
        let r: api::ContainerStatsResponse = self.call("ContainerStats", container_id(id))?;
        r.stats
            .ok_or_else(|| Status::internal("ContainerStats: no stats"))
    }

    pub fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout_s: i64,
    ) -> Result<api::ExecSyncResponse, Status> {
        self.call(
            "ExecSync",
            api::ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: timeout_s,
            },
        )
    }

    pub fn update_resources(
        &self,
        id: &str,
        resources: &api::LinuxContainerResources,
    ) -> Result<(), Status> {
        self.call::<_, api::Empty>(
            "UpdateContainerResources",
            api::UpdateContainerResourcesRequest {
                container_id: id.into(),
                linux: Some(resources.clone()),
            },
        )
        .map(drop)
    }

    pub fn stop_container(&self, id: &str, timeout_s: i64) -> Result<(), Status> {
        self.call::<_, api::Empty>(
            "StopContainer",
            api::StopContainerRequest {
                container_id: id.into(),
                timeout: timeout_s,
            },
        )
        .map(drop)
    }

    pub fn remove_container(&self, id: &str) -> Result<(), Status> {
        self.call::<_, api::Empty>("RemoveContainer", container_id(id))
            .map(drop)
    }

    pub fn list_pods(&self) -> Result<Vec<String>, Status> {
        let r: api::ListPodSandboxResponse = self.call("ListPodSandbox", api::ListRequest {})?;
        Ok(r.items.into_iter().map(|p| p.id).collect())
    }

    pub fn list_containers(&self) -> Result<Vec<String>, Status> {
        let r: api::ListContainersResponse = self.call("ListContainers", api::ListRequest {})?;
        Ok(r.containers.into_iter().map(|c| c.id).collect())
    }
}

fn pod_id(pod: &str) -> api::PodSandboxIdRequest {
    api::PodSandboxIdRequest {
        pod_sandbox_id: pod.into(),
    }
}

fn container_id(id: &str) -> api::ContainerIdRequest {
    api::ContainerIdRequest {
        container_id: id.into(),
    }
}

/// A pod's config as the kubelet sends it for a best-effort pod: metadata, hostname, a log
/// directory, DNS, the pod's cgroup parent under `/kubepods/besteffort` (cgroupfs driver),
/// and `host_port` → `container_port` over TCP when given.
pub fn pod_config(
    name: &str,
    uid: &str,
    log_dir: &Path,
    dns: api::DnsConfig,
    port: Option<(i32, i32)>,
) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: uid.into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.display().to_string(),
        dns_config: Some(dns),
        port_mappings: port
            .map(|(host, container)| api::PortMapping {
                protocol: api::Protocol::Tcp as i32,
                container_port: container,
                host_port: host,
                host_ip: String::new(),
            })
            .into_iter()
            .collect(),
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: api::NamespaceMode::Pod as i32,
                    pid: api::NamespaceMode::Container as i32,
                    ipc: api::NamespaceMode::Pod as i32,
                }),
                privileged: false,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container's config: `image`, the command, a log file (relative to the pod's log
/// directory, as the kubelet gives it), a terminal when `tty`.
pub fn container_config(name: &str, image: &str, cmd: &[&str], tty: bool) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: image.into(),
        }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        tty,
        stdin: tty,
        linux: Some(api::LinuxContainerConfig {
            resources: None,
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: api::NamespaceMode::Pod as i32,
                    pid: api::NamespaceMode::Container as i32,
                    ipc: api::NamespaceMode::Pod as i32,
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}
