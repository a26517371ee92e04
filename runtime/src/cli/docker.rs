//! The Docker-like verbs: `run IMAGE`, `ps`, `logs`, `stop`, `rm`, `inspect`, `images`.
//!
//! They compose the three foundations: `images` makes the rootfs and the OCI spec, the
//! runtime core creates and starts the container, `netsetup` wires its network namespace.
//! A `run` goes: resolve image -> rootfs -> IP + resolv.conf/hosts/hostname -> config.json ->
//! create (init blocked) -> connect the netns -> start -> wait (foreground) or hand over to
//! a monitor (`-d`).

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use super::containers::{ago, new_id, Containers, Record};
use super::{format, monitor};
use crate::container::{CreateOptions, Runtime};
use crate::state::Status;
use crate::sys;

/// Flags of `minc run` that only make sense for images.
#[derive(Args, Debug, Default, Clone)]
pub struct ImageRunArgs {
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Container name (unique); default: the short id
    #[arg(long)]
    pub name: Option<String>,
    /// Publish a container port: HOSTPORT:CONTAINERPORT[/tcp|/udp]
    #[arg(short = 'p', long = "publish", value_name = "HOST:CONTAINER[/PROTO]")]
    pub publish: Vec<String>,
    /// Set an environment variable
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Container hostname (default: the short id)
    #[arg(long)]
    pub hostname: Option<String>,
    /// DNS server for the container's resolv.conf (repeatable)
    #[arg(long)]
    pub dns: Vec<String>,
    /// bridge (default: minc0 with an IP, routes and NAT) or none (only lo)
    #[arg(long, default_value = "bridge", value_parser = ["bridge", "none"])]
    pub network: String,
    /// Override the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User (name or uid[:gid]) to run as
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    // Volumes, mounts and pulling (issue 12): their own modules.
    #[command(flatten)]
    pub mounts: super::volumes::MountArgs,
    #[command(flatten)]
    pub pull: super::registry::RunPullArgs,
}

impl ImageRunArgs {
    /// Whether any image-only flag was given (for telling `run` forms apart).
    pub fn any(&self) -> bool {
        self.rm
            || self.name.is_some()
            || !self.publish.is_empty()
            || !self.env.is_empty()
            || self.hostname.is_some()
            || !self.dns.is_empty()
            || self.network != "bridge"
            || self.entrypoint.is_some()
            || self.workdir.is_some()
            || self.user.is_some()
            || self.mounts.any()
            || self.pull.any()
    }
}

/// Paths and settings shared by the Docker-like verbs.
pub struct Ctx {
    pub root: PathBuf,
    pub data_root: PathBuf,
}

impl Ctx {
    fn runtime(&self) -> Runtime {
        Runtime::new(&self.root)
    }

    fn containers(&self) -> Containers {
        Containers::new(&self.data_root)
    }

    /// The default bridge network, with its state under the data root.
    pub fn network(&self) -> netsetup::Network {
        netsetup::Network {
            data_dir: self.data_root.join("net"),
            run_dir: self.root.with_file_name(format!(
                "{}-net",
                self.root
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("minc")
            )),
            ..Default::default()
        }
    }

    fn store(&self) -> Result<images::Store> {
        images::Store::open(&self.data_root)
            .with_context(|| format!("image store {}", self.data_root.display()))
    }
}

/// `minc run [flags] IMAGE [CMD...]`.
pub fn run(ctx: &Ctx, a: &ImageRunArgs, detach: bool, image: &str, cmd: &[String]) -> Result<i32> {
    // Everything that can be checked without side effects first.
    let ports = a
        .publish
        .iter()
        .map(|p| p.parse::<netsetup::PortMapping>())
        .collect::<Result<Vec<_>, _>>()?;
    let dns = a
        .dns
        .iter()
        .map(|d| {
            d.parse()
                .map_err(|_| anyhow!("--dns {d}: not an IP address"))
        })
        .collect::<Result<Vec<std::net::IpAddr>>>()?;
    for kv in &a.env {
        if !kv.contains('=') || kv.starts_with('=') {
            bail!("-e {kv}: expected KEY=VALUE");
        }
    }
    if let Some(h) = a.hostname.as_deref() {
        if !sysops::container::valid_hostname(h) {
            bail!("--hostname {h:?}: not a valid hostname (letters, digits, '-' and '.', at most 64 characters)");
        }
    }
    let mount_reqs = super::volumes::requests(&a.mounts)?;
    let store = ctx.store()?;
    super::registry::before_run(&ctx.root, &ctx.data_root, &a.pull, image, &store)?;
    let img = store.resolve(image).map_err(|e| {
        anyhow!("{e} (see `minc images`; to run an OCI bundle instead: minc run -b BUNDLE {image})")
    })?;

    let id = new_id();
    let short = id[..12].to_string();
    let name = a.name.clone().unwrap_or_else(|| short.clone());
    if crate::container::validate_id(&name).is_err() {
        bail!("name {name:?} is invalid: use letters, digits, '_', '-' and '.'");
    }
    let containers = ctx.containers();
    let dir = containers.reserve(&id, &name)?;
    // From here on, any failure removes everything made so far.
    let result = setup_and_start(
        ctx,
        a,
        detach,
        &img,
        cmd,
        &id,
        &short,
        &name,
        &dir,
        ports,
        dns,
        &store,
        &mount_reqs,
    );
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            teardown(ctx, &id);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn setup_and_start(
    ctx: &Ctx,
    a: &ImageRunArgs,
    detach: bool,
    img: &images::Image,
    cmd: &[String],
    id: &str,
    short: &str,
    name: &str,
    dir: &Path,
    ports: Vec<netsetup::PortMapping>,
    dns: Vec<std::net::IpAddr>,
    store: &images::Store,
    mount_reqs: &[super::volumes::MountReq],
) -> Result<i32> {
    let rootfs = store.create_rootfs(img, dir)?;
    let image_volumes = img
        .config
        .config()
        .as_ref()
        .and_then(|c| c.volumes().clone())
        .unwrap_or_default();
    let (user_mounts, volumes) =
        super::volumes::prepare(&ctx.data_root, mount_reqs, &image_volumes, &rootfs.path)?;
    // Recorded at once, so that a failure from here on releases the anonymous volumes.
    let mut record = ctx.containers().load(id)?;
    record.volumes = volumes.clone();
    ctx.containers().save(&record)?;
    let hostname = a.hostname.clone().unwrap_or_else(|| short.to_string());
    let net = ctx.network();
    let alloc = if a.network == "bridge" {
        let req = netsetup::Request {
            id: id.to_string(),
            hostname: Some(hostname.clone()),
            ports: ports.clone(),
            dns,
            files_dir: Some(dir.to_path_buf()),
            ifname: None,
        };
        Some(netsetup::allocate(&net, &req)?)
    } else {
        if !ports.is_empty() {
            bail!("-p needs a network: it cannot be used with --network none");
        }
        None
    };

    let opts = images::RunOptions {
        entrypoint: a.entrypoint.as_ref().map(|e| vec![e.clone()]),
        cmd: cmd.to_vec(),
        env: a.env.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: Some(hostname),
    };
    let spec = images::runtime_spec(img, &rootfs.path, &opts)?;
    let mut config = serde_json::to_value(&spec)?;
    if let Some(m) = config["mounts"].as_array_mut() {
        m.extend(user_mounts);
    }
    if a.mounts.read_only {
        config["root"]["readonly"] = serde_json::json!(true);
    }
    if let Some(al) = &alloc {
        let mounts = config["mounts"]
            .as_array_mut()
            .ok_or_else(|| anyhow!("spec without mounts"))?;
        for (file, dest) in [
            (&al.resolv_conf, "/etc/resolv.conf"),
            (&al.hosts, "/etc/hosts"),
            (&al.hostname, "/etc/hostname"),
        ] {
            if let Some(src) = file {
                mounts.push(serde_json::json!({
                    "destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]
                }));
            }
        }
    }
    let command = config["process"]["args"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    ctx.containers().save(&Record {
        id: id.to_string(),
        name: name.to_string(),
        // As `docker ps` shows it: `busybox:latest`, `localhost/echo-server:latest`.
        image: images::ImageName::parse(&img.name)
            .map(|n| n.familiar())
            .unwrap_or_else(|_| img.name.clone()),
        image_digest: img.digest.clone(),
        command,
        created: crate::state::now(),
        ip: alloc.as_ref().map(|al| al.ip),
        ports,
        auto_remove: a.rm,
        volumes,
    })?;

    if detach {
        start_detached(ctx, id, dir)?;
        println!("{id}");
        return Ok(0);
    }
    // Foreground: this process is the init's parent; signals are blocked before the init
    // exists so a quick exit cannot be missed, and SIGINT/SIGTERM are forwarded.
    let mut set = sys::FORWARDED.to_vec();
    set.push(libc::SIGCHLD);
    let old = sys::sigmask(libc::SIG_BLOCK, &set);
    let result = (|| -> Result<i32> {
        let pid = create_connect_start(ctx, id, dir, None)?;
        Ok(sys::wait_forwarding(pid))
    })();
    sys::set_sigmask(&old);
    let code = result?;
    finish(&ctx.root, &ctx.data_root, id, code);
    Ok(code)
}

/// create -> connect the network -> start. Returns the init's PID.
fn create_connect_start(ctx: &Ctx, id: &str, dir: &Path, stdio: Option<[i32; 3]>) -> Result<i32> {
    let rt = ctx.runtime();
    let opts = CreateOptions {
        bundle: dir.to_path_buf(),
        stdio,
        ..Default::default()
    };
    let state = rt.create(id, &opts)?;
    let pid = state.oci.pid;
    let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    if ctx.containers().load(id)?.ip.is_some() {
        netsetup::connect(&ctx.network(), id, &netns)?;
    } else {
        netsetup::loopback_up(&netns)?; // --network none: only lo, but up
    }
    rt.start(id)?;
    Ok(pid)
}

/// `-d`: fork a monitor that creates and starts the container as its own child, reports
/// back, then re-executes itself as the small `__monitor` waiter.
fn start_detached(ctx: &Ctx, id: &str, dir: &Path) -> Result<()> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ctx.containers().log_path(id))?;
    let null = fs::File::open("/dev/null")?;
    let (ours, theirs) = sys::socketpair()?;
    // SAFETY: minc has no threads at this point (the fork path stays thread-free).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork monitor: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        drop(ours);
        monitor::detach();
        let stdio = [null.as_raw_fd(), log.as_raw_fd(), log.as_raw_fd()];
        let msg = match create_connect_start(ctx, id, dir, Some(stdio)) {
            Ok(init) => {
                // Let go of the starting command's terminal or pipes.
                // SAFETY: dup2 onto our own stdio.
                unsafe {
                    for fd in 0..3 {
                        libc::dup2(null.as_raw_fd(), fd);
                    }
                }
                let _ = sys::send(&theirs, b"ok");
                drop(theirs);
                let err = monitor::exec(&ctx.root, &ctx.data_root, id, init);
                // Could not become the monitor: wait here instead (bigger, but correct).
                tracing::warn!("container {id}: monitor: {err}");
                let mut status = 0;
                // SAFETY: waiting for our own child, the init.
                unsafe { libc::waitpid(init, &mut status, 0) };
                finish(&ctx.root, &ctx.data_root, id, sys::exit_code(status));
                std::process::exit(0);
            }
            Err(e) => format!("{e:#}"),
        };
        let _ = sys::send(&theirs, msg.as_bytes());
        // SAFETY: leave the forked copy.
        unsafe { libc::_exit(1) };
    }
    drop(theirs);
    let reply = sys::recv(&ours).unwrap_or_default();
    if reply == b"ok" {
        return Ok(());
    }
    // SAFETY: reaping the failed monitor.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    if reply.is_empty() {
        bail!("the container monitor exited unexpectedly");
    }
    bail!("{}", String::from_utf8_lossy(&reply))
}

/// After the container's process exited: record the exit, and with `--rm` remove it all.
pub fn finish(root: &Path, data_root: &Path, id: &str, code: i32) {
    let ctx = Ctx {
        root: root.to_path_buf(),
        data_root: data_root.to_path_buf(),
    };
    let containers = ctx.containers();
    let Some(_lock) = lock(&ctx, id) else {
        return; // already removed
    };
    let _ = containers.record_exit(id, code);
    match containers.load(id) {
        Ok(r) if r.auto_remove => teardown_locked(&ctx, id),
        _ => {
            // Keep the record and log; release what a stopped container does not need.
            let _ = ctx.runtime().delete(id, true);
            let _ = netsetup::detach(&ctx.network(), id);
            let _ = images::Store::remove_rootfs(&containers.path(id));
        }
    }
}

/// The container's own lock: `finish` (in the monitor) and `rm` never tear down at the same
/// time, and `rm` right after `stop` waits for the monitor's cleanup. None if the container
/// is already gone.
fn lock(ctx: &Ctx, id: &str) -> Option<sysops::lock::Lock> {
    let dir = ctx.containers().path(id);
    if !dir.is_dir() {
        return None;
    }
    sysops::lock::Lock::acquire(&dir.join(".lock")).ok()
}

/// Removes everything a container has: runtime state (killing it), network, rootfs mount,
/// its directory. Safe to run twice and on half-made containers.
pub fn teardown(ctx: &Ctx, id: &str) {
    if let Some(_lock) = lock(ctx, id) {
        teardown_locked(ctx, id);
    }
}

fn teardown_locked(ctx: &Ctx, id: &str) {
    let volumes = ctx
        .containers()
        .load(id)
        .map(|r| r.volumes)
        .unwrap_or_default();
    let _ = ctx.runtime().delete(id, true);
    if let Err(e) = netsetup::detach(&ctx.network(), id) {
        tracing::warn!("container {id}: network teardown: {e}");
    }
    let dir = ctx.containers().path(id);
    if let Err(e) = images::Store::remove_rootfs(&dir) {
        tracing::warn!("container {id}: rootfs: {e}");
    }
    let _ = fs::remove_dir_all(&dir);
    super::volumes::release(&ctx.data_root, &volumes);
}

/// The status column: `Up 3 minutes`, `Exited (3) 2 seconds ago`, `Created`.
fn status_of(ctx: &Ctx, r: &Record) -> (bool, String) {
    let live = ctx.runtime().state(&r.id).map(|s| s.status).ok();
    match live {
        Some(Status::Running) => (
            true,
            format!("Up {}", ago(r.created).trim_end_matches(" ago")),
        ),
        Some(Status::Created) | Some(Status::Creating) => (true, "Created".into()),
        _ => match ctx.containers().exit(&r.id) {
            Some(e) => (false, format!("Exited ({}) {}", e.code, ago(e.finished))),
            None => (false, "Exited".into()),
        },
    }
}

/// `minc ps [-a]`: containers with name, image, status, IP, ports, age.
pub fn ps(ctx: &Ctx, all: bool, quiet: bool) -> Result<()> {
    let mut rows = Vec::new();
    for r in ctx.containers().all()? {
        let (up, status) = status_of(ctx, &r);
        if !up && !all {
            continue;
        }
        if quiet {
            println!("{}", &r.id[..12]);
            continue;
        }
        let ports = r
            .ports
            .iter()
            .map(|p| {
                format!(
                    "0.0.0.0:{}->{}/{}",
                    p.host_port, p.container_port, p.protocol
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![
            r.id[..12].to_string(),
            r.name.clone(),
            r.image.clone(),
            status,
            r.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            ports,
            ago(r.created),
        ]);
    }
    if !quiet {
        let header = [
            "CONTAINER ID",
            "NAME",
            "IMAGE",
            "STATUS",
            "IP",
            "PORTS",
            "CREATED",
        ];
        print!("{}", format::table(&header, &rows));
    }
    Ok(())
}

/// `minc logs [-f] NAME`.
pub fn logs(ctx: &Ctx, key: &str, follow: bool) -> Result<()> {
    let r = ctx.containers().find(key)?;
    let path = ctx.containers().log_path(&r.id);
    let mut f = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
    };
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut f, &mut out)?;
    out.flush()?;
    while follow && status_of(ctx, &r).0 {
        std::thread::sleep(Duration::from_millis(100));
        let pos = f.stream_position()?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        if buf.is_empty() {
            f.seek(std::io::SeekFrom::Start(pos))?;
        }
        out.write_all(&buf)?;
        out.flush()?;
    }
    std::io::copy(&mut f, &mut out)?;
    Ok(())
}

/// `minc stop [-t SECONDS] NAME`: SIGTERM, then SIGKILL after the grace period.
pub fn stop(ctx: &Ctx, key: &str, timeout: u64) -> Result<()> {
    let r = ctx.containers().find(key)?;
    let rt = ctx.runtime();
    let Ok(state) = rt.load(&r.id) else {
        return Ok(()); // already stopped and released
    };
    if !state.alive() {
        return Ok(());
    }
    let pidfd = sys::pidfd_open(state.oci.pid)?;
    rt.kill(&r.id, libc::SIGTERM, false)?;
    if !sys::pidfd_wait(&pidfd, (timeout * 1000) as i32) {
        rt.kill(&r.id, libc::SIGKILL, true)?;
        sys::pidfd_wait(&pidfd, 10_000);
    }
    wait_for_exit_record(ctx, &r.id);
    println!("{}", r.name);
    Ok(())
}

/// The monitor records the exit right after the init dies; give it a moment so `ps` and
/// `rm` right after `stop` see a finished container.
fn wait_for_exit_record(ctx: &Ctx, id: &str) {
    for _ in 0..200 {
        if ctx.containers().exit(id).is_some() || !ctx.containers().path(id).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `minc rm [-f] NAME...`.
pub fn rm(ctx: &Ctx, keys: &[String], force: bool) -> Result<()> {
    for key in keys {
        let r = ctx.containers().find(key)?;
        if status_of(ctx, &r).0 && !force {
            bail!(
                "container {} is running: stop it first or use rm -f",
                r.name
            );
        }
        teardown(ctx, &r.id);
        println!("{}", r.name);
    }
    Ok(())
}

/// `minc inspect NAME`: the record, the runtime state and the exit, as JSON.
pub fn inspect(ctx: &Ctx, key: &str) -> Result<()> {
    let r = ctx.containers().find(key)?;
    let state = ctx.runtime().state(&r.id).ok();
    let exit = ctx.containers().exit(&r.id);
    let v = serde_json::json!({
        "Id": r.id,
        "Name": r.name,
        "Image": r.image,
        "ImageDigest": r.image_digest,
        "Command": r.command,
        "Created": format::rfc3339_secs(r.created),
        "State": state,
        "Status": status_of(ctx, &r).1,
        "Exit": exit,
        "Network": {"IPAddress": r.ip, "Ports": r.ports},
        "AutoRemove": r.auto_remove,
        "Bundle": ctx.containers().path(&r.id),
        "LogPath": ctx.containers().log_path(&r.id),
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
