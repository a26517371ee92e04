//! The Docker-like verbs: `run IMAGE`, `ps`, `logs`, `stop`, `rm`, `inspect`, `images`.
//!
//! They compose the three foundations: `images` makes the rootfs and the OCI spec, the
//! runtime core creates and starts the container, `netsetup` wires its network namespace.
//! A `run` goes: resolve image -> rootfs -> IP + resolv.conf/hosts/hostname -> config.json ->
//! create (init blocked) -> connect the netns -> start -> wait (foreground) or hand over to
//! a monitor (`-d`).

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use super::containers::{ago, new_id, Containers, Record};
use super::{attach, format, monitor, network, security};
use crate::container::{CreateOptions, Runtime};
use crate::relay::{Io, Stdin};
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
    /// Set an environment variable
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Container hostname (default: the short id)
    #[arg(long)]
    pub hostname: Option<String>,
    #[command(flatten)]
    pub net: network::RunNetArgs,
    /// Override the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User (name or uid[:gid]) to run as
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// seccomp=unconfined|FILE (default: Docker's profile), no-new-privileges[=true|false]
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Add a capability (name with or without CAP_, or ALL)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (name with or without CAP_, or ALL)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// All capabilities, no seccomp, writable /sys
    #[arg(long)]
    pub privileged: bool,
    /// Keep stdin open: the container reads ours (without it, /dev/null)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the container a terminal (a pty of its own; Ctrl-P Ctrl-Q detaches)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// host (default), or a user namespace: remap (the range /etc/subuid gives minc, else
    /// root) or START:COUNT
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "remap", value_name = "host|remap|START:COUNT")]
    pub userns: Option<String>,
    #[command(flatten)]
    pub resources: super::cgroups::ResourceFlags,
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
            || self.net.any()
            || !self.env.is_empty()
            || self.hostname.is_some()
            || self.entrypoint.is_some()
            || self.workdir.is_some()
            || self.user.is_some()
            || !self.security_opt.is_empty()
            || !self.cap_add.is_empty()
            || !self.cap_drop.is_empty()
            || self.privileged
            || self.interactive
            || self.tty
            || self.userns.is_some()
            || self.resources.any()
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

    fn store(&self) -> Result<images::Store> {
        images::Store::open(&self.data_root)
            .with_context(|| format!("image store {}", self.data_root.display()))
    }
}

/// `minc run [flags] IMAGE [CMD...]`.
pub fn run(ctx: &Ctx, a: &ImageRunArgs, detach: bool, image: &str, cmd: &[String]) -> Result<i32> {
    // Everything that can be checked without side effects first.
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
    let security = security::parse(&a.security_opt)?;
    images::capabilities::tweak(&a.cap_add, &a.cap_drop, a.privileged)?;
    if a.tty && a.interactive && !detach && !attach::stdin_is_terminal() {
        bail!("-it: the input device is not a terminal (drop -t to pipe input)");
    }
    a.resources.to_spec()?; // limits and devices are checked before anything is made
    let mount_reqs = super::volumes::requests(&a.mounts)?;
    let remap = super::userns::parse(a.userns.as_deref(), Path::new("/etc"))?;
    let store = ctx.store()?;
    super::registry::before_run(&ctx.root, &ctx.data_root, &a.pull, image, &store)?;
    let img = store.resolve(image).map_err(|e| {
        anyhow!("{e} (see `minc images`; to run an OCI bundle instead: minc run -b BUNDLE {image})")
    })?;
    let net = network::parse_run(&a.net, &img.exposed_ports())?;

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
        &net,
        &store,
        &security,
        &mount_reqs,
        remap,
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
    net: &network::RunNet,
    store: &images::Store,
    security: &security::SecurityOpts,
    mount_reqs: &[super::volumes::MountReq],
    remap: Option<super::userns::Remap>,
) -> Result<i32> {
    let rootfs = match &remap {
        Some(r) => {
            let ns = r.maps().namespace()?;
            let root = (r.uid.0, r.gid.0);
            store.create_rootfs_mapped(img, dir, Some((std::os::fd::AsFd::as_fd(&ns), root)))?
        }
        None => store.create_rootfs(img, dir)?,
    };
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
    let net = network::prepare(ctx, net, id, name, short, &hostname, dir)?;

    let (resources, devices) = a.resources.to_spec()?;
    let opts = images::RunOptions {
        entrypoint: a.entrypoint.as_ref().map(|e| vec![e.clone()]),
        cmd: cmd.to_vec(),
        env: a.env.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: Some(hostname),
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        no_new_privileges: security.no_new_privileges,
        resources: Some(resources),
        devices,
        cgroups_path: a
            .resources
            .cgroup_parent
            .as_ref()
            .map(|p| format!("{}/{id}", p.trim_end_matches('/'))),
    };
    let spec = images::runtime_spec(&crate::spec::default_spec(), img, &rootfs.path, &opts)?;
    let mut config = serde_json::to_value(&spec)?;
    if let Some(m) = config["mounts"].as_array_mut() {
        m.extend(user_mounts);
    }
    if a.mounts.read_only {
        config["root"]["readonly"] = serde_json::json!(true);
    }
    let bounding: Vec<String> =
        serde_json::from_value(config["process"]["capabilities"]["bounding"].clone())?;
    if let Some(section) = security.seccomp_section(a.privileged, &bounding)? {
        config["linux"]["seccomp"] = section;
    }
    if let Some(r) = &remap {
        r.apply(&mut config)?;
    }
    network::apply_spec(&net, &mut config)?;
    if a.tty {
        // Docker's: a terminal, TERM=xterm unless the image or -e says otherwise, and the
        // caller's own size from the start (a detached one gets it when attached).
        config["process"]["terminal"] = serde_json::json!(true);
        let env = config["process"]["env"]
            .as_array_mut()
            .ok_or_else(|| anyhow!("spec without env"))?;
        if !env
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.starts_with("TERM=")))
        {
            env.push(serde_json::json!("TERM=xterm"));
        }
        if let (false, Some(size)) = (detach, Io::caller_size()) {
            config["process"]["consoleSize"] =
                serde_json::json!({"height": size.rows, "width": size.cols});
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
        ip: net.ip,
        ports: net.ports.clone(),
        auto_remove: a.rm,
        tty: a.tty,
        volumes,
    })?;

    if detach {
        start_monitored(ctx, id, dir, a.tty, None)?;
        println!("{id}");
        return Ok(0);
    }
    if a.tty {
        // The terminal lives in a monitor, as with -d, and this process attaches to it: so
        // Ctrl-P Ctrl-Q can leave the container running.
        let code = start_monitored(ctx, id, dir, true, Some(a.interactive))?;
        return Ok(code.unwrap_or(0));
    }
    // Foreground: this process is the init's parent; signals are blocked before the init
    // exists so a quick exit cannot be missed, and SIGINT/SIGTERM are forwarded. The
    // container gets pipes, never our terminal; stdin only with -i.
    let mut set = sys::FORWARDED.to_vec();
    set.push(libc::SIGCHLD);
    let old = sys::sigmask(libc::SIG_BLOCK, &set);
    let result = (|| -> Result<i32> {
        let io = Io::shielded(if a.interactive {
            Stdin::Ours
        } else {
            Stdin::Null
        })?;
        let (pid, _) = create_connect_start(ctx, id, dir, io.container_fds())?;
        Ok(io.wait(pid))
    })();
    sys::set_sigmask(&old);
    let code = result?;
    finish(&ctx.root, &ctx.data_root, id, code);
    Ok(code)
}

/// create -> connect the network -> start. Returns the init's PID and, when the container
/// has a terminal, its pty master.
fn create_connect_start(
    ctx: &Ctx,
    id: &str,
    dir: &Path,
    stdio: Option<[i32; 3]>,
) -> Result<(i32, Option<OwnedFd>)> {
    let rt = ctx.runtime();
    let opts = CreateOptions {
        bundle: dir.to_path_buf(),
        stdio,
        ..Default::default()
    };
    let (state, master) = rt.create_with_terminal(id, &opts)?;
    let pid = state.oci.pid;
    network::connect(ctx, id, pid)?;
    rt.start(id)?;
    Ok((pid, master))
}

/// `-d` and `-t`: fork a monitor that creates and starts the container as its own child,
/// reports back, then re-executes itself as the small `minc-monitor` waiter. With `tty`, the
/// monitor keeps the pty master and serves `attach.sock`. With `attach` (a foreground
/// `run -t`; the value says whether stdin is sent), this process stays attached to it until
/// the container exits (its code is returned) or the user detaches (None).
fn start_monitored(
    ctx: &Ctx,
    id: &str,
    dir: &Path,
    tty: bool,
    attach: Option<bool>,
) -> Result<Option<i32>> {
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
        // Without a terminal the container writes straight to its log; with one, the
        // monitor copies the terminal there.
        let stdio = (!tty).then(|| [null.as_raw_fd(), log.as_raw_fd(), log.as_raw_fd()]);
        let started = create_connect_start(ctx, id, dir, stdio).and_then(|(init, master)| {
            let listen = match &master {
                Some(_) => Some(
                    sys::unix_listen(&ctx.containers().attach_path(id), libc::SOCK_SEQPACKET)
                        .context("attach socket")?,
                ),
                None => None,
            };
            Ok((init, master, listen))
        });
        let msg = match started {
            Ok((init, master, listen)) => {
                let fds = match (&master, &listen) {
                    (Some(m), Some(l)) => Some(monitor::TerminalFds {
                        master: m.as_raw_fd(),
                        listen: l.as_raw_fd(),
                        log: log.as_raw_fd(),
                        // The foreground `run -t` that started it is its first client.
                        client: attach.map(|_| theirs.as_raw_fd()),
                    }),
                    _ => None,
                };
                let mon = monitor::Monitor::new(&ctx.root, &ctx.data_root, id, init, fds.as_ref());
                // Let go of the starting command's terminal or pipes.
                // SAFETY: dup2 onto our own stdio.
                unsafe {
                    for fd in 0..3 {
                        libc::dup2(null.as_raw_fd(), fd);
                    }
                }
                let _ = sys::send(&theirs, b"ok");
                let err = match mon {
                    Ok(m) => m.exec(),
                    Err(e) => e,
                };
                // Could not become the monitor: wait here instead (bigger, but correct).
                tracing::warn!("container {id}: monitor: {err}");
                drop((master, listen, theirs));
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
    if reply != b"ok" {
        // SAFETY: reaping the failed monitor.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        if reply.is_empty() {
            bail!("the container monitor exited unexpectedly");
        }
        bail!("{}", String::from_utf8_lossy(&reply));
    }
    let Some(input) = attach else {
        return Ok(None);
    };
    let init = ctx.runtime().load(id)?.oci.pid;
    match attach::client(&ours, init, input)? {
        attach::Ended::Exited(code) => {
            // The monitor (our child) goes on to record the exit and clean up (`--rm`):
            // return once that is done, as `docker run --rm` does.
            drop(ours);
            // SAFETY: waiting for our own child, the monitor.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            Ok(Some(code))
        }
        attach::Ended::Detached => Ok(None),
    }
}

/// `minc attach NAME`: the terminal of a running `-t` container, until it exits (its exit
/// code) or Ctrl-P Ctrl-Q (0).
pub fn attach(ctx: &Ctx, key: &str) -> Result<i32> {
    let r = ctx.containers().find(key)?;
    if !r.tty {
        bail!(
            "container {} has no terminal (it was not started with -t): see minc logs {}",
            r.name,
            r.name
        );
    }
    let state = ctx
        .runtime()
        .load(&r.id)
        .ok()
        .filter(|s| s.alive())
        .ok_or_else(|| anyhow!("container {} is not running", r.name))?;
    let path = ctx.containers().attach_path(&r.id);
    let sock = sys::unix_connect(&path, libc::SOCK_SEQPACKET)
        .with_context(|| format!("attach {}: {}", r.name, path.display()))?;
    Ok(match attach::client(&sock, state.oci.pid, true)? {
        attach::Ended::Exited(code) => code,
        attach::Ended::Detached => 0,
    })
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
    // Read before `delete` removes the cgroup that counts OOM kills.
    let oom = ctx.runtime().state(id).is_ok_and(|s| s.oom_killed);
    let _ = containers.record_exit(id, code, oom);
    match containers.load(id) {
        Ok(r) if r.auto_remove => teardown_locked(&ctx, id),
        _ => {
            // Keep the record and log; release what a stopped container does not need.
            let _ = ctx.runtime().delete(id, true);
            network::release(&ctx, id);
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
    use super::containers::{LOCK, RECORD};
    let lock = sysops::lock::Lock::existing_dir(&dir, LOCK, RECORD).ok()??;
    if dir.join(RECORD).exists() {
        return Some(lock);
    }
    // Whoever held the lock before us removed the container while we waited (or was killed
    // doing so): what is left is its remains.
    let _ = fs::remove_dir_all(&dir);
    None
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
    network::release(ctx, id);
    let dir = ctx.containers().path(id);
    if let Err(e) = images::Store::remove_rootfs(&dir) {
        // Keep the record, so a later `rm -f` finds the container and tries again.
        tracing::warn!("container {id}: rootfs: {e}");
        return;
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
        Some(Status::Paused) => (
            true,
            format!("Up {} (Paused)", ago(r.created).trim_end_matches(" ago")),
        ),
        Some(Status::Created) | Some(Status::Creating) => (true, "Created".into()),
        _ => match ctx.containers().exit(&r.id) {
            Some(e) => (
                false,
                format!(
                    "Exited ({}){} {}",
                    e.code,
                    if e.oom_killed { " OOM-killed" } else { "" },
                    ago(e.finished)
                ),
            ),
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
        let ports = network::ports_column(ctx, &r);
        rows.push(vec![
            r.id[..12].to_string(),
            r.name.clone(),
            r.image.clone(),
            status,
            r.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            ports,
            limits_of(ctx, &r.id).summary(),
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
            "LIMITS",
            "CREATED",
        ];
        print!("{}", format::table(&header, &rows));
    }
    Ok(())
}

/// The limits in force (read from the cgroup while it exists, so `update` shows), else
/// those the container was created with.
fn limits_of(ctx: &Ctx, id: &str) -> crate::cgroups::stats::Limits {
    use crate::cgroups::stats::Limits;
    if let Some(cg) = ctx.runtime().load(id).ok().and_then(|s| s.cgroup) {
        if cg.exists() {
            return Limits::read(&cg);
        }
    }
    let config = std::fs::read(ctx.containers().path(id).join("config.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&config).unwrap_or_default();
    let r = &v["linux"]["resources"];
    let cpus = match (r["cpu"]["quota"].as_f64(), r["cpu"]["period"].as_f64()) {
        (Some(q), Some(p)) if q > 0.0 && p > 0.0 => Some(q / p),
        _ => None,
    };
    Limits {
        memory: r["memory"]["limit"].as_u64(),
        memory_swap: r["memory"]["swap"].as_u64(),
        cpus,
        pids: r["pids"]["limit"].as_u64(),
        cpuset_cpus: r["cpu"]["cpus"].as_str().map(String::from),
    }
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
    ctx.containers().sweep();
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
        "Network": network::inspect_json(ctx, &r),
        "OOMKilled": state.as_ref().is_some_and(|s| s.oom_killed)
            || exit.as_ref().is_some_and(|e| e.oom_killed),
        "Limits": limits_of(ctx, &r.id),
        "Cgroup": ctx.runtime().load(&r.id).ok().and_then(|s| s.cgroup).map(|c| c.path),
        "AutoRemove": r.auto_remove,
        "Bundle": ctx.containers().path(&r.id),
        "LogPath": ctx.containers().log_path(&r.id),
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
