//! `netsetup`: attach/detach containers by hand, or act as a CNI plugin when CNI_COMMAND is set.

use clap::{Args, Parser, Subcommand};
use netsetup::{Network, PortSpec, Request};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "netsetup",
    about = "minc bridge networking (also a CNI plugin when CNI_COMMAND is set)"
)]
struct Cli {
    /// Print each privileged step as the shell command it stands for.
    #[arg(long, global = true)]
    explain: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct NetArgs {
    /// State directory (IPAM, per-container state).
    #[arg(long, default_value = "/var/lib/minc/net")]
    data_dir: PathBuf,
    #[arg(long, default_value = "minc")]
    network: String,
    #[arg(long, default_value = "minc0")]
    bridge: String,
    #[arg(long, default_value = "10.77.0.0/16")]
    subnet: ipnet::Ipv4Net,
    /// Default: the first address of the subnet.
    #[arg(long)]
    gateway: Option<Ipv4Addr>,
    /// Default: the MTU of the host's default-route interface.
    #[arg(long)]
    mtu: Option<u32>,
    /// IPv6 too: the network's IPv6 subnet (a container's address has its IPv4 offset).
    #[arg(long)]
    subnet6: Option<ipnet::Ipv6Net>,
    /// Default: the first address of the IPv6 subnet.
    #[arg(long)]
    gateway6: Option<Ipv6Addr>,
    /// Nameservers used when the host has none a container can reach (repeatable).
    #[arg(long = "fallback-dns")]
    fallback_dns: Vec<IpAddr>,
}

impl NetArgs {
    fn network(&self) -> Network {
        let mut n = Network {
            name: self.network.clone(),
            bridge: self.bridge.clone(),
            subnet: self.subnet,
            gateway: self
                .gateway
                .unwrap_or_else(|| Ipv4Addr::from(u32::from(self.subnet.network()) + 1)),
            mtu: self.mtu,
            data_dir: self.data_dir.clone(),
            subnet6: self.subnet6,
            gateway6: self.subnet6.map(|s| {
                self.gateway6
                    .unwrap_or_else(|| Ipv6Addr::from(u128::from(s.network()) + 1))
            }),
            ..Default::default()
        };
        if !self.fallback_dns.is_empty() {
            n.fallback_dns = self.fallback_dns.clone();
        }
        n
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Attach a network namespace: address, veth, routes, files, nftables.
    Attach {
        #[arg(long)]
        id: String,
        /// e.g. /proc/PID/ns/net or /run/netns/NAME
        #[arg(long)]
        netns: PathBuf,
        /// Publish a port, as Docker's -p: [IP:][HOST[-HOST]:]CONTAINER[-CONTAINER][/udp]
        /// (repeatable).
        #[arg(short = 'p', long = "publish")]
        ports: Vec<String>,
        /// Nameserver for the container (repeatable; default: the host's).
        #[arg(long)]
        dns: Vec<IpAddr>,
        #[arg(long)]
        hostname: Option<String>,
        /// Where to write resolv.conf, hosts and hostname (default: <data-dir>/<network>/files/<id>).
        #[arg(long)]
        files_dir: Option<PathBuf>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Tear down everything attach made (idempotent; works after the netns is gone).
    Detach {
        #[arg(long)]
        id: String,
        #[command(flatten)]
        net: NetArgs,
    },
    /// List containers on the network.
    List {
        #[command(flatten)]
        net: NetArgs,
    },
    /// Reclaim allocations whose container is gone.
    Gc {
        #[command(flatten)]
        net: NetArgs,
    },
}

fn main() -> ExitCode {
    if std::env::var_os("CNI_COMMAND").is_some() {
        return netsetup::cni::main();
    }
    let cli = Cli::parse();
    if cli.explain {
        install_explain();
    }
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netsetup: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `explain` events to stderr as `+ <command>`, like `set -x`; nothing else.
fn install_explain() {
    use tracing_subscriber::prelude::*;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_level(false)
        .with_target(false)
        .event_format(ExplainFormat)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.target() == "explain"
        }));
    tracing_subscriber::registry().with(layer).init();
}

struct ExplainFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for ExplainFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use tracing_subscriber::fmt::FormatFields;
        write!(w, "+ ")?;
        ctx.format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

fn run(cmd: Cmd) -> Result<(), netsetup::Error> {
    match cmd {
        Cmd::Attach {
            id,
            netns,
            ports,
            dns,
            hostname,
            files_dir,
            net,
        } => {
            let net = net.network();
            let files_dir = files_dir.unwrap_or_else(|| net.state_dir().join("files").join(&id));
            let mut specs = Vec::new();
            for p in &ports {
                specs.extend(PortSpec::parse_publish(p)?);
            }
            let req = Request {
                id,
                hostname,
                ports: specs,
                dns,
                files_dir: Some(files_dir),
                ..Default::default()
            };
            let att = netsetup::attach(&net, &req, &netns)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&att).expect("serializes")
            );
            Ok(())
        }
        Cmd::Detach { id, net } => {
            let net = net.network();
            netsetup::detach(&net, &id)?;
            // The default files dir is ours to remove once empty.
            let _ = std::fs::remove_dir(net.state_dir().join("files").join(&id));
            Ok(())
        }
        Cmd::List { net } => {
            for e in netsetup::list(&net.network())? {
                let ports: Vec<String> = e.ports.iter().map(|p| p.to_string()).collect();
                println!(
                    "{}\t{}\t{}\t{}{}",
                    e.id,
                    e.ip,
                    e.host_veth,
                    ports.join(","),
                    if e.stale { "\t(stale)" } else { "" }
                );
            }
            Ok(())
        }
        Cmd::Gc { net } => {
            for id in netsetup::gc(&net.network())? {
                println!("reclaimed {id}");
            }
            Ok(())
        }
    }
}
