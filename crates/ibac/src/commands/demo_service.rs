//! `ibac demo-service`: one service of the demo shop. It answers HTTP (or a
//! line protocol over TCP) and calls its dependencies every second through
//! its proxy; `/_stats` tells how its calls went.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::anyhow;
use ibac_local::demo::{DemoService, run as serve};

use crate::exit;

/// Arguments of `ibac demo-service`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service's name
    #[arg(env = "IBAC_DEMO_NAME", long)]
    name: String,
    /// Where it listens
    #[arg(env = "IBAC_DEMO_LISTEN", long)]
    listen: SocketAddr,
    /// Speak a line protocol over TCP instead of HTTP
    #[arg(env = "IBAC_DEMO_TCP", long)]
    tcp: bool,
    /// An HTTP URL to call every interval, through $HTTP_PROXY (repeat)
    #[arg(env = "IBAC_DEMO_CALL", long = "call", value_name = "URL")]
    calls: Vec<String>,
    /// A TCP target to call every interval: name=host:port (repeat)
    #[arg(
        env = "IBAC_DEMO_CALL_TCP",
        long = "call-tcp",
        value_name = "NAME=ADDR"
    )]
    tcp_calls: Vec<String>,
    /// How often to call
    #[arg(env = "IBAC_DEMO_INTERVAL", long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let proxy = std::env::var("HTTP_PROXY")
        .or_else(|_| std::env::var("http_proxy"))
        .ok()
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.trim_start_matches("http://")
                .trim_end_matches('/')
                .parse::<SocketAddr>()
                .map_err(|_| anyhow!("HTTP_PROXY `{p}` is not http://ip:port"))
        })
        .transpose()?;
    if !args.calls.is_empty() && proxy.is_none() {
        return Err(anyhow!(
            "--call needs HTTP_PROXY: the calls go through the workload's proxy"
        ));
    }
    let tcp_calls = args
        .tcp_calls
        .iter()
        .map(|c| {
            let (name, addr) = c
                .split_once('=')
                .ok_or_else(|| anyhow!("`{c}`: write --call-tcp name=host:port"))?;
            Ok((
                name.to_string(),
                addr.parse()
                    .map_err(|_| anyhow!("`{addr}` is not host:port"))?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let service = DemoService {
        name: args.name.clone(),
        listen: args.listen,
        tcp: args.tcp,
        calls: args.calls.clone(),
        tcp_calls,
        proxy,
        interval: args.interval,
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            tokio::select! {
                r = serve(service) => r,
                () = crate::commands::ca::shutdown_signal() => Ok(()),
            }
        })?;
    Ok(exit::OK)
}
