//! `minc pull`, `push`, `login`, `logout`, and `run --pull=missing|always|never`.
//!
//! `run` never pulls in its own process: a pull downloads on threads, and the process that
//! later forks the container's init must have exactly one (the runtime checks it). So `run`
//! runs `minc pull` as a child process with the same roots (`/proc/self/exe`, waited for
//! before anything else happens) and reads the store afterwards. The child's output goes to
//! `run`'s stderr, so the container's stdout stays the container's.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Allow plain HTTP for this registry (loopback registries always may)
    #[arg(long)]
    pub insecure: bool,
    /// Credentials file (Docker's config.json format; default $MINC_AUTH_FILE,
    /// $DOCKER_CONFIG/config.json, ~/.docker/config.json)
    #[arg(long = "authfile", value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
}

impl ConnArgs {
    fn conn(&self) -> registry::Connection {
        registry::Connection {
            insecure: self.insecure,
            auth_file: self.auth_file.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// OS/ARCH[/VARIANT] to pull from a multi-platform image (default: this machine's)
    #[arg(long)]
    pub platform: Option<String>,
    /// No progress bars
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// NAME[:TAG] or NAME@sha256:DIGEST
    pub reference: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// A local image
    pub image: String,
    /// Where to push it (default: the image's own name)
    pub destination: Option<String>,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    #[arg(short, long)]
    pub username: Option<String>,
    /// The password (visible to other users in the process list: prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Registry host[:port] (default docker.io)
    pub registry: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    pub registry: Option<String>,
}

/// The `run` flags about pulling (kept apart from docker.rs's own flags).
#[derive(Args, Debug, Default, Clone)]
pub struct RunPullArgs {
    /// Pull the image before running: missing (if not stored), always, never
    #[arg(long = "pull", value_name = "WHEN", value_parser = ["missing", "always", "never"])]
    pub pull: Option<String>,
    /// Platform to pull (see `minc pull --platform`)
    #[arg(long)]
    pub platform: Option<String>,
}

impl RunPullArgs {
    pub fn any(&self) -> bool {
        self.pull.is_some() || self.platform.is_some()
    }
}

fn store(data_root: &Path) -> Result<images::Store> {
    images::Store::open(data_root).with_context(|| format!("image store {}", data_root.display()))
}

/// A registry host as the user wrote it (`docker.io` by default), checked.
fn registry_name(r: Option<&str>) -> Result<String> {
    let r = r.unwrap_or(images::reference::DOCKER_HUB);
    let r = r
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let r = match r {
        "index.docker.io" | "registry-1.docker.io" | "index.docker.io/v1" => "docker.io",
        r => r,
    };
    images::ImageName::parse(&format!("{r}/x"))
        .ok()
        .filter(|n| n.registry == r || r == "docker.io")
        .map(|n| n.registry)
        .with_context(|| format!("{r:?} is not a registry host[:port]"))
}

pub fn pull(data_root: &Path, a: &PullArgs) -> Result<i32> {
    registry::install_interrupt_handler();
    let opts = registry::PullOptions {
        platform: a
            .platform
            .as_deref()
            .map(registry::Platform::parse)
            .transpose()?,
        conn: a.conn.conn(),
        quiet: a.quiet,
        jobs: 0,
    };
    let store = store(data_root)?;
    let before = store.find(&a.reference).ok().flatten().map(|i| i.digest);
    let pulled = registry::pull(&store, &a.reference, &opts)
        .with_context(|| format!("pull {}", a.reference))?;
    if !a.quiet {
        eprintln!(
            "minc: {} {} ({} blob{} downloaded, {:.1} MB)",
            if before.as_ref() == Some(&pulled.digest) {
                "up to date:"
            } else {
                "pulled"
            },
            pulled.digest,
            pulled.blobs,
            if pulled.blobs == 1 { "" } else { "s" },
            pulled.bytes as f64 / 1e6
        );
    }
    println!("{}", pulled.name);
    Ok(0)
}

pub fn push(data_root: &Path, a: &PushArgs) -> Result<i32> {
    // Ctrl-C keeps its default action here: a push changes nothing in the local store.
    let opts = registry::PushOptions {
        conn: a.conn.conn(),
    };
    let (name, digest) = registry::push(
        &store(data_root)?,
        &a.image,
        a.destination.as_deref(),
        &opts,
    )
    .with_context(|| format!("push {}", a.destination.as_deref().unwrap_or(&a.image)))?;
    eprintln!("minc: pushed {digest}");
    println!("{name}");
    Ok(0)
}

pub fn login(a: &LoginArgs) -> Result<i32> {
    let registry = registry_name(a.registry.as_deref())?;
    let mut stdin = std::io::stdin().lock();
    let interactive = stdin.is_terminal();
    let user = match &a.username {
        Some(u) => u.clone(),
        None if interactive && !a.password_stdin => {
            eprint!("Username: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            stdin.read_line(&mut line)?;
            line.trim().to_string()
        }
        None => bail!("login {registry}: give --username"),
    };
    let password = match (&a.password, a.password_stdin) {
        (Some(_), true) => bail!("login: --password and --password-stdin exclude each other"),
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut line = String::new();
            stdin.read_line(&mut line)?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if interactive => read_password_no_echo(&mut stdin)?,
        (None, false) => bail!("login {registry}: give --password-stdin (or --password)"),
    };
    if user.is_empty() || password.is_empty() {
        bail!("login {registry}: empty user name or password");
    }
    let creds = registry::Credentials { user, password };
    let path = registry::login(&registry, &creds, &a.conn.conn())
        .with_context(|| format!("login {registry}"))?;
    eprintln!(
        "minc: credentials for {registry} stored in {}",
        path.display()
    );
    println!("Login Succeeded");
    Ok(0)
}

/// Asks for the password on the terminal with echo off (restored afterwards, also on error).
fn read_password_no_echo(stdin: &mut std::io::StdinLock) -> Result<String> {
    use std::os::fd::AsRawFd;
    eprint!("Password: ");
    let _ = std::io::stderr().flush();
    let fd = std::io::stdin().as_raw_fd();
    // SAFETY: tcgetattr/tcsetattr on our own stdin with a zeroed termios filled by the call.
    let old = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) != 0 {
            bail!("login: the terminal: {}", std::io::Error::last_os_error());
        }
        let old = t;
        t.c_lflag &= !libc::ECHO;
        libc::tcsetattr(fd, libc::TCSANOW, &t);
        old
    };
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    // SAFETY: restoring the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &old) };
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn logout(a: &LogoutArgs) -> Result<i32> {
    let registry = registry_name(a.registry.as_deref())?;
    if !registry::logout(&registry, &a.conn.conn()).with_context(|| format!("logout {registry}"))? {
        eprintln!("minc: not logged in to {registry}");
    }
    println!("Removed login credentials for {registry}");
    Ok(0)
}

/// Before `run` looks the image up: pull it when the policy says so, in a child process
/// (see the module comment).
pub fn before_run(
    root: &Path,
    data_root: &Path,
    a: &RunPullArgs,
    image: &str,
    store: &images::Store,
) -> Result<()> {
    let policy = a.pull.as_deref().unwrap_or("missing");
    let needed = match policy {
        "never" => false,
        "always" => true,
        _ => store.find(image)?.is_none() && !is_builtin(image),
    };
    if !needed {
        return Ok(());
    }
    // On a terminal the child draws its progress bars there and says what went wrong
    // itself; otherwise its error becomes ours, as one line.
    let terminal = std::io::stderr().is_terminal();
    if policy == "missing" && terminal {
        eprintln!("minc: unable to find image {image} locally; pulling it");
    }
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("--root")
        .arg(root)
        .arg("--data-root")
        .arg(data_root)
        .arg("pull");
    if let Some(p) = &a.platform {
        cmd.arg("--platform").arg(p);
    }
    if !terminal {
        cmd.arg("--quiet");
    }
    cmd.arg("--").arg(image).stdin(Stdio::null());
    if terminal {
        // The child's stdout (the image name) goes to our stderr with its progress.
        let err = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned()?;
        let status = cmd
            .stdout(Stdio::from(err))
            .status()
            .context("start minc pull")?;
        if !status.success() {
            bail!("the image could not be pulled (see above)");
        }
        return Ok(());
    }
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("start minc pull")?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        bail!("{}", last.trim_start_matches("minc: "));
    }
    Ok(())
}

fn is_builtin(image: &str) -> bool {
    let n = images::reference::normalize(image);
    n == images::reference::normalize("echo-server")
        || n == images::reference::normalize("localhost/echo-server")
}
