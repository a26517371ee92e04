//! The `minc` command line.
//!
//! - runc-compatible verbs (`runc.rs`): spec, create, start, state, kill, delete, run -b,
//!   list, ps ID, features; global options follow runc's so OCI clients can call minc instead.
//! - Docker-like verbs (`docker.rs`, `image.rs`): run IMAGE, ps, logs, stop, rm, inspect,
//!   attach, images, image ...; they compose the images and netsetup crates with the runtime
//!   core.
//! - `exec` (`exec.rs`) serves both faces; containers are named as `resolve.rs` says.
//!
//! `run` serves both faces; see [`RunArgs::bundle_mode`] for the rule that tells them apart.

mod attach;
mod cgroups;
mod containers;
mod cp;
mod docker;
mod exec;
mod features;
pub mod format;
mod image;
mod lazy;
mod log;
pub mod monitor;
mod network;
mod registry;
mod resolve;
mod runc;
mod security;
mod userns;
mod volume_store;
mod volumes;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use lazy::Lazy;

#[derive(Parser, Debug)]
#[command(
    name = "minc",
    version,
    about = "A small container runtime: runc-compatible OCI lifecycle, Docker-like run, and --explain",
    after_help = "Every privileged step can be shown as the shell command it stands for: minc --explain run ..."
)]
pub struct Cli {
    /// Directory for container state [default: /run/minc; $XDG_RUNTIME_DIR/minc when not root]
    #[arg(long, global = true, default_value_os_t = default_root(), hide_default_value = true, value_name = "DIR")]
    pub root: PathBuf,
    /// Directory for images, container filesystems and network state [default:
    /// /var/lib/minc; $XDG_DATA_HOME/minc when not root]
    #[arg(
        long = "data-root",
        global = true,
        default_value_os_t = default_data_root(),
        hide_default_value = true,
        value_name = "DIR"
    )]
    pub data_root: PathBuf,
    /// Write the log to FILE (OCI clients read errors from it)
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Print each privileged step as the shell command it stands for
    #[arg(long, global = true)]
    pub explain: bool,
    /// Refuse config.json fields minc does not know (the spec says to ignore them)
    #[arg(long, global = true)]
    pub strict: bool,
    /// cgroupsPath is systemd's slice:prefix:name (mapped to cgroupfs; refused when systemd runs the host)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// With `spec`: write a spec for running without root (a user namespace mapping this
    /// user to root, no network namespace, as `runc spec --rootless`); otherwise accepted for
    /// runc compatibility (minc finds out by itself whether it runs as root)
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true", value_name = "true|false|auto")]
    pub rootless: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a default config.json (like `runc spec`)
    Spec(Lazy<runc::SpecArgs>),
    /// Create a container from a bundle; it waits, blocked, for `start`
    Create(Lazy<runc::CreateArgs>),
    /// Start a created container
    Start(runc::IdArgs),
    /// Print a container's OCI state as JSON
    State(runc::IdArgs),
    /// Send a signal (name or number, default SIGTERM) to a container
    Kill(Lazy<runc::KillArgs>),
    /// Delete a container (-f kills it first if it is running)
    Delete(Lazy<runc::DeleteArgs>),
    /// Run an image (`run [-d] [-p H:C] IMAGE [CMD...]`) or a bundle (`run -b BUNDLE ID`)
    Run(Box<Lazy<RunArgs>>),
    /// List containers (runc style)
    List(Lazy<runc::ListArgs>),
    /// Without ID: list containers (Docker style); with ID: the processes in that container
    Ps(Lazy<PsArgs>),
    /// Run a process in a running container (runc's flags and Docker's -i -t -d -u -w)
    Exec(Box<Lazy<exec::ExecArgs>>),
    /// Attach to the terminal of a container started with -t (Ctrl-P Ctrl-Q detaches)
    Attach(NameArg),
    /// Print the features this runtime supports, as JSON (runc features)
    Features,
    /// Print a container's output (-f: follow)
    Logs(Lazy<LogsArgs>),
    /// Stop containers: SIGTERM, then SIGKILL after the timeout
    Stop(Lazy<StopArgs>),
    /// Remove containers (-f: also running ones)
    Rm(Lazy<RmArgs>),
    /// Show a container's details as JSON
    Inspect(NameArg),
    /// List images
    Images,
    /// Manage images: ls, inspect, rm, unpack, import
    #[command(subcommand)]
    Image(Lazy<image::ImageCommand>),
    /// Manage networks: create, ls, inspect, rm, prune, connect, disconnect
    #[command(subcommand)]
    Network(Lazy<network::NetworkCommand>),
    /// Show where a container's ports are published (`PORT/PROTO -> HOST:PORT`)
    Port {
        /// Container name or id
        name: String,
        /// Only this container port: PORT[/tcp|/udp]
        port: Option<String>,
    },
    /// Print the `linux.seccomp` section Docker's default profile gives a container with
    /// these capabilities (default: Docker's set)
    #[command(name = "seccomp-default", hide = true)]
    SeccompDefault { caps: Vec<String> },
    /// Freeze every process of a container (cgroup freezer)
    Pause(cgroups::IdArg),
    /// Thaw a paused container
    Resume(cgroups::IdArg),
    /// Change a running container's resource limits (runc's flags, or -r resources.json)
    Update(Box<Lazy<cgroups::UpdateArgs>>),
    /// Print a container's resource usage and OOM events as JSON lines (like runc)
    Events(Lazy<cgroups::EventsArgs>),
    /// Live resource usage of containers (like docker stats)
    Stats(Lazy<cgroups::StatsArgs>),
    /// The processes of a container (like docker top)
    Top(NameArg),
    // Registries, names, volumes and cp (issue 12), kept together for easy merges.
    /// Pull an image from a registry (`busybox`, `user/app:1`, `host:5000/x@sha256:...`)
    Pull(Lazy<registry::PullArgs>),
    /// Push a local image to a registry
    Push(Lazy<registry::PushArgs>),
    /// Store credentials for a registry (Docker's config.json format, mode 0600)
    Login(Lazy<registry::LoginArgs>),
    /// Forget the credentials for a registry
    Logout(Lazy<registry::LogoutArgs>),
    /// Give an image another name: tag SOURCE TARGET
    Tag { source: String, target: String },
    /// Manage volumes: create, ls, inspect, rm, prune
    #[command(subcommand)]
    Volume(Lazy<volume_store::VolumeCommand>),
    /// Copy files between a running container and the host (CONTAINER:PATH either side)
    Cp(Lazy<cp::CpArgs>),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run the OCI bundle in DIR (runc style: the argument is the container id)
    #[arg(short, long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Detach: return once the container started
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub bundle_flags: runc::BundleFlags,
    /// Keep the stopped container instead of deleting it (runc's --keep)
    #[arg(long, hide = true)]
    pub keep: bool,
    /// Accepted for runc compatibility (minc's run is the init's parent: no subreaper)
    #[arg(long = "no-subreaper", hide = true)]
    pub no_subreaper: bool,
    #[command(flatten)]
    pub image: docker::ImageRunArgs,
    /// IMAGE [CMD...], or with a bundle the container ID
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE|ID"
    )]
    pub args: Vec<String>,
}

impl RunArgs {
    /// The rule: `run` runs an OCI bundle when given `-b/--bundle` (or another runc-only
    /// option: --pid-file, --preserve-fds, --console-socket), or when its only argument is an
    /// id and the current directory holds a config.json (runc's default bundle) while no
    /// image-only flag is used. Otherwise its first argument names an image.
    pub fn bundle_mode(&self) -> bool {
        self.bundle.is_some()
            || self.bundle_flags.any()
            || (self.args.len() == 1 && !self.image.any() && Path::new("config.json").is_file())
    }
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers, also stopped ones (Docker style)
    #[arg(short, long)]
    pub all: bool,
    /// Print only container ids (Docker style)
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format for `ps ID`
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// A container id: list its processes (runc style)
    pub id: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing new output until the container stops
    #[arg(short, long)]
    pub follow: bool,
    /// Container name or id
    pub name: String,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    /// Container names or ids
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Kill running containers first
    #[arg(short, long)]
    pub force: bool,
    /// Container names or ids
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NameArg {
    /// Container name or id
    pub name: String,
}

/// Whether minc runs without root (rootless): then its state and data live in the user's
/// own directories, as runc's do (XDG base directories).
fn rootless() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() != 0 }
}

fn default_root() -> PathBuf {
    if !rootless() {
        return PathBuf::from("/run/minc");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("minc"),
        // SAFETY: getuid cannot fail.
        _ => PathBuf::from(format!("/run/user/{}/minc", unsafe { libc::getuid() })),
    }
}

fn default_data_root() -> PathBuf {
    if !rootless() {
        return PathBuf::from("/var/lib/minc");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("minc")
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    // The `-d` monitor hands over to `minc __finish` when the container exits.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(monitor::FINISH) {
        return monitor::finish(&argv[2..]);
    }
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&argv, e),
    };
    if matches!(
        cli.command,
        Command::State(_)
            | Command::List(_)
            | Command::Ps(_)
            | Command::Features
            | Command::Logs(_)
            | Command::Inspect(_)
            | Command::Images
            | Command::Port { .. }
            | Command::Events(_)
            | Command::Stats(_)
            | Command::Top(_)
    ) {
        // Rust ignores SIGPIPE, so `minc state x | grep -q running` would make println!
        // panic when grep exits. A verb that only prints ends quietly instead, as runc does.
        // Only those: the others write to pipes of their own (a hook's stdin, which the hook
        // need not read) and must see EPIPE, not die of it.
        // SAFETY: no other thread exists yet; SIG_DFL is a valid disposition.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    log::init(&log::Options {
        explain: cli.explain,
        debug: cli.debug,
        log: cli.log.as_deref(),
        json: cli.log_format == "json",
    });
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: the verb, the object and the cause (`minc: create abc: ...`).
            let msg = one_line(&message(&e));
            eprintln!("minc: {msg}");
            tracing::error!("{msg}"); // for the --log file, where OCI clients look
                                      // `exec` exits as runc's does when the program cannot run (127 not found, 126
                                      // not executable); every other failure is 1.
            match (&cli.command, e.downcast_ref::<crate::Error>()) {
                (Command::Exec(_), Some(err)) => err.exit_code(),
                _ => 1,
            }
        }
    }
}

/// The error and its causes, `a: b: c`, each cause printed once: a library error that
/// already says its cause in its message (most do) is not followed by it again.
fn message(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}

/// A message as one line: control characters (a newline in an id, say) are escaped, so
/// what a user or a client passed in is never echoed raw.
fn one_line(msg: &str) -> String {
    msg.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

/// A command line clap refused: `--help`/`--version` print as usual; an error is one line
/// on stderr (exit 2), and also goes to `--log` (JSON with `--log-format json`) when the
/// command line names one, because OCI clients show the log, not our stderr.
fn usage_error(argv: &[String], e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            2
        } else {
            0
        };
    }
    // clap's message is a paragraph, then usage: keep the paragraph, as one line.
    let text = e.to_string();
    let para: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let msg = one_line(para.join(" ").trim_start_matches("error: "));
    eprintln!("minc: {msg} (see minc --help)");
    let value_of = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .and_then(|i| argv.get(i + 1))
            .cloned()
            .or_else(|| {
                argv.iter()
                    .find_map(|a| a.strip_prefix(&format!("{flag}=")).map(String::from))
            })
    };
    if let Some(path) = value_of("--log") {
        log::init(&log::Options {
            explain: false,
            debug: false,
            log: Some(Path::new(&path)),
            json: value_of("--log-format").as_deref() == Some("json"),
        });
        tracing::error!("{msg}");
    }
    2
}

fn dispatch(cli: &Cli) -> Result<i32> {
    let ctx = docker::Ctx {
        root: cli.root.clone(),
        data_root: cli.data_root.clone(),
    };
    let rt = crate::Runtime::new(&cli.root);
    match &cli.command {
        Command::Run(a) => run(&ctx, &rt, a, cli.strict, cli.systemd_cgroup),
        Command::Ps(a) => match &a.id {
            Some(key) => {
                let id = resolve::id(&cli.root, &cli.data_root, key)?;
                runc::ps(&rt, &id, a.format == "json").map(|_| 0)
            }
            None => docker::ps(&ctx, a.all, a.quiet).map(|_| 0),
        },
        Command::Logs(a) => docker::logs(&ctx, &a.name, a.follow).map(|_| 0),
        Command::Stop(a) => {
            for n in &a.names {
                docker::stop(&ctx, n, a.time)?;
            }
            Ok(0)
        }
        Command::Rm(a) => docker::rm(&ctx, &a.names, a.force).map(|_| 0),
        Command::Inspect(a) => docker::inspect(&ctx, &a.name).map(|_| 0),
        Command::Attach(a) => docker::attach(&ctx, &a.name),
        Command::Exec(a) => exec::exec(cli, a),
        Command::Images => image::ls(&ctx).map(|_| 0),
        Command::Image(c) => image::dispatch(&ctx, c).map(|_| 0),
        Command::Network(c) => network::dispatch(&ctx, c).map(|_| 0),
        Command::Port { name, port } => network::port(&ctx, name, port.as_deref()).map(|_| 0),
        Command::SeccompDefault { caps } => security::print_default(caps).map(|_| 0),
        Command::Pause(a) => cgroups::pause(&rt, &a.id)
            .with_context(|| format!("pause {}", a.id))
            .map(|_| 0),
        Command::Resume(a) => cgroups::resume(&rt, &a.id)
            .with_context(|| format!("resume {}", a.id))
            .map(|_| 0),
        Command::Update(a) => cgroups::update(&rt, a).map(|_| 0),
        Command::Events(a) => cgroups::events(&rt, a).map(|_| 0),
        Command::Stats(a) => cgroups::stats_cmd(&ctx, a).map(|_| 0),
        Command::Top(a) => cgroups::top(&ctx, &a.name)
            .with_context(|| format!("top {}", a.name))
            .map(|_| 0),
        Command::Pull(a) => registry::pull(&cli.data_root, a),
        Command::Push(a) => registry::push(&cli.data_root, a),
        Command::Login(a) => registry::login(a),
        Command::Logout(a) => registry::logout(a),
        Command::Tag { source, target } => image::tag(&ctx, source, target).map(|_| 0),
        Command::Volume(c) => volume_store::dispatch(&cli.data_root, c).map(|_| 0),
        Command::Cp(a) => cp::cp(&cli.data_root, &rt, a).map(|_| 0),
        _ => runc::dispatch(cli),
    }
}

fn run(
    ctx: &docker::Ctx,
    rt: &crate::Runtime,
    a: &RunArgs,
    strict: bool,
    systemd: bool,
) -> Result<i32> {
    if a.bundle_mode() {
        if a.image.any() {
            bail!(
                "run: --rm, --name, -p, -P, -e, --hostname, --dns, --network, --network-alias, \
                 --add-host, --entrypoint, -w, -u, --security-opt, --cap-add, --cap-drop, \
                 --privileged, -i and -t apply to images; a bundle's config.json decides those \
                 (drop -b to run an image)"
            );
        }
        let [id] = a.args.as_slice() else {
            bail!("run: with a bundle, give exactly one container id (run -b BUNDLE ID)");
        };
        let create = runc::CreateArgs {
            bundle: a.bundle.clone().unwrap_or_else(|| PathBuf::from(".")),
            flags: a.bundle_flags.clone(),
            id: id.clone(),
            systemd_cgroup: systemd,
        };
        return runc::run(rt, &create, a.detach, a.keep, strict);
    }
    let (image, cmd) = a.args.split_first().expect("clap requires one argument");
    docker::run(ctx, &a.image, a.detach, image, cmd).map_err(|e| e.context(format!("run {image}")))
}

#[cfg(test)]
mod tests {
    use super::message;

    #[test]
    fn each_cause_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("memory.limit: {source}")]
        struct Lib {
            source: std::io::Error,
        }
        let lib = Lib {
            source: std::io::Error::from_raw_os_error(libc::EBUSY),
        };
        let e = anyhow::Error::new(lib).context("create abc");
        assert_eq!(
            message(&e),
            "create abc: memory.limit: Device or resource busy (os error 16)"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message(&plain), "outer: inner");
    }
}
