//! The `minc` command line. The runc-compatible verbs live in `runc.rs`; global options
//! follow runc's so OCI clients (podman, containerd's shim) can call minc in its place.

pub mod format;
mod log;
mod runc;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "minc",
    version,
    about = "A small container runtime: runc-compatible OCI lifecycle, with --explain",
    after_help = "Every privileged step can be shown as the shell command it stands for: minc --explain run ..."
)]
pub struct Cli {
    /// Directory for container state
    #[arg(long, global = true, default_value = "/run/minc", value_name = "DIR")]
    pub root: PathBuf,
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
    /// Accepted for runc compatibility (minc does not manage cgroups through systemd)
    #[arg(long = "systemd-cgroup", global = true, hide = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility
    #[arg(long, global = true, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a default config.json (like `runc spec`)
    Spec(runc::SpecArgs),
    /// Create a container from a bundle; it waits, blocked, for `start`
    Create(runc::CreateArgs),
    /// Start a created container
    Start(runc::IdArgs),
    /// Print a container's OCI state as JSON
    State(runc::IdArgs),
    /// Send a signal (name or number, default SIGTERM) to a container
    Kill(runc::KillArgs),
    /// Delete a container (-f kills it first if it is running)
    Delete(runc::DeleteArgs),
    /// Create, start and wait for a container; exits with its exit code
    Run(runc::RunArgs),
    /// List containers
    List(runc::ListArgs),
    /// List the processes in a container
    Ps(runc::PsArgs),
    /// Run a process in a running container
    Exec(runc::ExecArgs),
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    log::init(&log::Options {
        explain: cli.explain,
        debug: cli.debug,
        log: cli.log.as_deref(),
        json: cli.log_format == "json",
    });
    match runc::dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: the verb, the object and the cause (`minc: create abc: ...`).
            let msg = format!("{e:#}");
            eprintln!("minc: {msg}");
            tracing::error!("{msg}"); // for the --log file, where OCI clients look
            1
        }
    }
}
