//! The server under test: either a `jam-server` the bench spawns on free loopback ports
//! (optionally pinned with `taskset`), or one already running that `--url` names. Either
//! way it ends up as the URLs to connect to, where `/stats` is, and a PID to measure.

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};

use wtransport::endpoint::endpoint_side;
use wtransport::Endpoint;

use crate::cli::Args;
use crate::procfs::{self, Proc};

/// Receive buffer of a shared WebTransport socket: room for tens of ms of every
/// participant's datagrams (the kernel caps it at `net.core.rmem_max`, 4 MiB here).
const SHARED_SOCKET_RECV_BUFFER: usize = 4 << 20;

/// Where to connect and what to measure.
pub struct Target {
    /// `ws://…/ws`, when WebSocket is reachable.
    pub ws_url: Option<String>,
    /// `https://…/jam`, when WebTransport is reachable.
    pub wt_url: Option<String>,
    /// The WebTransport certificate's SHA-256.
    pub cert_hash: Option<String>,
    /// `http://HOST:PORT` serving `/stats`.
    pub stats_url: Option<String>,
    /// The server's PID, when known.
    pub pid: Option<u32>,
    child: Option<Child>,
    /// WebTransport endpoints shared by the participants (`--wt-sockets`), made on first use.
    wt_endpoints: OnceLock<Vec<Endpoint<endpoint_side::Client>>>,
}

impl Target {
    /// Spawns a server or resolves `--url`, as the arguments say. `max_room_size` is what
    /// a spawned server must allow.
    pub async fn open(args: &Args, max_room_size: u32) -> Result<Target> {
        match &args.url {
            Some(url) => Target::remote(args, url).await,
            None => Target::spawn(args, max_room_size).await,
        }
    }

    async fn remote(args: &Args, url: &str) -> Result<Target> {
        let mut t = Target {
            ws_url: None,
            wt_url: None,
            cert_hash: args.cert_hash.clone(),
            stats_url: args.stats_url.clone(),
            pid: args.server_pid,
            child: None,
            wt_endpoints: OnceLock::new(),
        };
        if let Some(rest) = url.strip_prefix("ws://") {
            t.ws_url = Some(url.to_owned());
            let authority = rest.split('/').next().unwrap_or(rest);
            t.stats_url
                .get_or_insert_with(|| format!("http://{authority}"));
        } else if url.starts_with("https://") {
            if t.cert_hash.is_none() {
                bail!("a WebTransport --url needs --cert-hash");
            }
            t.wt_url = Some(url.to_owned());
        } else if let Some(rest) = url.strip_prefix("http://") {
            let authority = rest.split('/').next().unwrap_or(rest);
            let base = format!("http://{authority}");
            t.resolve_connect(&base).await?;
            t.stats_url.get_or_insert(base);
        } else {
            bail!("--url must start with ws://, https:// or http://");
        }
        Ok(t)
    }

    async fn resolve_connect(&mut self, base: &str) -> Result<()> {
        let info = jam_client::fetch_connect(base)
            .await
            .with_context(|| format!("GET {base}/connect"))?;
        self.ws_url = info["websocket"]["url"].as_str().map(str::to_owned);
        let wt = &info["webtransport"];
        self.wt_url = wt["url"].as_str().map(str::to_owned);
        if self.cert_hash.is_none() {
            self.cert_hash = wt["certificateHashes"][0]["value"]
                .as_str()
                .map(str::to_owned);
        }
        Ok(())
    }

    async fn spawn(args: &Args, max_room_size: u32) -> Result<Target> {
        let bin = match &args.server_bin {
            Some(b) => b.clone(),
            None => server_next_to_me()?,
        };
        let http_port = free_tcp_port()?;
        let wt_port = free_udp_port()?;
        let mut server_args: Vec<String> = vec![
            "--http-addr".into(),
            format!("127.0.0.1:{http_port}"),
            "--wt-addr".into(),
            format!("127.0.0.1:{wt_port}"),
            "--ephemeral-cert".into(),
            "--max-room-size".into(),
            max_room_size.max(16).to_string(),
            // Every simulated participant connects from 127.0.0.1, which the server would
            // otherwise hold to 64 connections (and 128 TCP connections on its HTTP port).
            "--max-connections-per-address".into(),
            "1000000".into(),
            "--max-http-connections-per-address".into(),
            "1000000".into(),
            // The same for the rooms they create and the seats they leave away.
            "--room-create-burst".into(),
            "1000000".into(),
            "--room-creates-per-minute".into(),
            "1000000".into(),
            "--max-away-seats-per-address".into(),
            "1000000".into(),
            // And for their QUIC handshakes in progress while they connect together.
            "--max-handshakes-per-address".into(),
            "1000000".into(),
        ];
        // The default budget (1,000 events/s, bursts of 2,000) covers every load below
        // 500 events/s per participant, chords included; above that, raise it.
        if args.rate > 500.0 {
            let rate = (args.rate * 2.0).ceil() as u64;
            server_args.extend([
                "--rate-limit".into(),
                rate.to_string(),
                "--rate-burst".into(),
                (rate * 2).to_string(),
            ]);
        }
        server_args.extend(args.server_args.iter().cloned());
        let mut cmd = pinned(&bin, args.server_cpus.as_deref());
        cmd.args(&server_args)
            .env("RUST_LOG", &args.server_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let base = format!("http://127.0.0.1:{http_port}");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("{} exited during start-up: {status}", bin.display());
            }
            if let Ok((200, _)) = jam_client::http_get(&format!("{base}/healthz")).await {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("{} did not answer /healthz within 15 s", bin.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut t = Target {
            ws_url: None,
            wt_url: None,
            cert_hash: None,
            stats_url: Some(base.clone()),
            pid: Some(pid),
            child: Some(child),
            wt_endpoints: OnceLock::new(),
        };
        t.resolve_connect(&base).await?;
        Ok(t)
    }

    /// The WebSocket URL, or why there is none.
    pub fn ws(&self) -> Result<&str> {
        self.ws_url
            .as_deref()
            .ok_or_else(|| anyhow!("the target has no WebSocket URL"))
    }

    /// The WebTransport URL and certificate hash, or why there are none.
    pub fn wt(&self) -> Result<(&str, &str)> {
        match (&self.wt_url, &self.cert_hash) {
            (Some(u), Some(h)) => Ok((u, h)),
            _ => Err(anyhow!(
                "the target has no WebTransport URL and certificate hash"
            )),
        }
    }

    /// The shared WebTransport endpoint for participant `slot`, or `None` when each
    /// participant gets its own (`sockets` = 0).
    pub fn wt_endpoint(
        &self,
        slot: usize,
        sockets: usize,
    ) -> Result<Option<&Endpoint<endpoint_side::Client>>> {
        if sockets == 0 {
            return Ok(None);
        }
        let (_, hash) = self.wt()?;
        if self.wt_endpoints.get().is_none() {
            let made = (0..sockets)
                .map(|_| jam_client::wt_endpoint(hash, Some(SHARED_SOCKET_RECV_BUFFER)))
                .collect::<Result<Vec<_>, _>>()?;
            let _ = self.wt_endpoints.set(made);
        }
        let pool = self.wt_endpoints.get().expect("set above");
        Ok(Some(&pool[slot % pool.len()]))
    }

    /// Where the hostile neighbour's attacks go (`--hostile`): a WebSocket URL is needed.
    pub fn hostile_plan(&self) -> Result<crate::hostile::Plan> {
        let wt_addr = self.wt_url.as_deref().and_then(|u| {
            let rest = u.strip_prefix("https://")?;
            rest.split('/').next()?.parse().ok()
        });
        Ok(crate::hostile::Plan {
            ws_url: self.ws()?.to_owned(),
            wt_addr,
            http_base: self.stats_url.clone(),
        })
    }

    /// Where the server process may run, if the bench knows its PID.
    pub fn cpus(&self) -> Option<String> {
        self.pid.and_then(|p| procfs::cpus(Proc::Pid(p)))
    }

    /// Whether the bench started this server.
    pub fn spawned(&self) -> bool {
        self.child.is_some()
    }

    /// Whether a spawned server is still running (a remote one is assumed to be).
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => self.pid.is_none_or(procfs::alive),
        }
    }

    /// Stops a spawned server with SIGTERM (SIGKILL after 5 s); says how it ended.
    pub fn stop(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(format!("the server had already exited: {status}"));
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return (!status.success())
                    .then(|| format!("the server exited with {status} after SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Some("the server did not stop within 5 s of SIGTERM; killed".into())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn server_next_to_me() -> Result<PathBuf> {
    let me = std::env::current_exe().context("locating jam-bench")?;
    let bin = me.with_file_name("jam-server");
    if !bin.exists() {
        bail!(
            "no jam-server next to {} (build with `cargo build --release --bins`, or pass --server-bin / --url)",
            me.display()
        );
    }
    Ok(bin)
}

fn free_tcp_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `program`, run under `taskset -c CPUS` when `cpus` is given.
pub fn pinned(program: &std::path::Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(program);
            c
        }
        None => Command::new(program),
    }
}
