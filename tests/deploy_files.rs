//! The deployment files agree with the server they deploy: `fly.toml`, `railway.json`, the
//! `Dockerfile` (and the scripts it installs), and the VPS recipe in `deploy/vps/` parse,
//! carry what docs/deploy.md promises, and every `JAM_*` setting in them is one the server
//! reads, with a value its own command line accepts. Ports are checked against the
//! server's defaults, stop timeouts against its shutdown waits.
//!
//! It reads files and parses the real [`Config`]; it starts no server and no container
//! (deploy/check-build.sh runs the image's build step and the installed binary).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{CommandFactory, Parser};
use jam_server::config::{LogFormat, WtAddr};
use jam_server::Config;

/// The longest a stop takes on one node before the process exits: 3 s for clients to close,
/// 1 s for QUIC to go idle and 2 s to write the rooms to the store (src/server.rs,
/// `RunningServer::shutdown`); with Redis, about as much again to hand rooms over and
/// leave the directory. A platform's kill timeout must exceed it.
const LONGEST_STOP_SECS: i64 = 12;

/// The repository's root (this package is the workspace root).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The server's configuration with no flag given.
fn defaults() -> Config {
    Config::parse_from(["jam-server"])
}

/// The default WebTransport port.
fn default_wt_port() -> u16 {
    match defaults().wt_addr {
        WtAddr::At(at) => at.rsplit_once(':').unwrap().1.parse().unwrap(),
        WtAddr::Off => panic!("WebTransport is on by default"),
    }
}

/// The port of a `host:port`.
fn port_of(addr: &str) -> u16 {
    let (_, port) = addr.rsplit_once(':').expect("host:port");
    port.parse().expect("a port number")
}

/// Whether `list` is a comma-separated list of CIDR blocks (`172.16.0.0/12`, `::1/128`).
fn is_cidr_list(list: &str) -> bool {
    list.split(',').all(|block| {
        let Some((ip, bits)) = block.trim().split_once('/') else {
            return false;
        };
        let Ok(bits) = bits.parse::<u8>() else {
            return false;
        };
        match IpAddr::from_str(ip) {
            Ok(IpAddr::V4(_)) => bits <= 32,
            Ok(IpAddr::V6(_)) => bits <= 128,
            Err(_) => false,
        }
    })
}

/// Checks a deployment's `JAM_*` settings against the server and returns the
/// configuration they make. A variable the server reads is given to its command line as
/// the flag it stands for, and the result must pass [`Config::validate`];
/// `JAM_TRUSTED_PROXIES` must be a list of CIDR blocks; any other `JAM_*` name is a typo.
fn config_from_env(file: &str, env: &BTreeMap<String, String>) -> Config {
    let command = Config::command();
    let mut argv = vec!["jam-server".to_string()];
    for (name, value) in env.iter().filter(|(name, _)| name.starts_with("JAM_")) {
        let flag = command
            .get_arguments()
            .find(|arg| arg.get_env().is_some_and(|e| e == name.as_str()))
            .and_then(|arg| arg.get_long());
        match flag {
            Some(long) => {
                argv.push(format!("--{long}"));
                argv.push(value.clone());
            }
            None if name == "JAM_TRUSTED_PROXIES" => {
                assert!(
                    is_cidr_list(value),
                    "{file}: {name}={value}: not CIDR blocks"
                );
            }
            None => panic!("{file}: {name} is no variable the server reads"),
        }
    }
    let config = Config::try_parse_from(&argv).unwrap_or_else(|e| panic!("{file}: {argv:?}: {e}"));
    config
        .validate()
        .unwrap_or_else(|e| panic!("{file}: {argv:?}: {e}"));
    config
}

/// A TOML table's string values, as environment variables.
fn env_table(table: &toml::Value) -> BTreeMap<String, String> {
    table
        .as_table()
        .expect("a table")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("a string").to_string()))
        .collect()
}

/// `KEY=VALUE` lines (systemd `Environment=` lines, or an environment file), comments and
/// blank lines skipped.
fn env_lines<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    lines
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The values of `Key=` lines in a systemd unit, in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    unit.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The one value of a `Key=` line in a systemd unit.
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    match unit_values(unit, key).as_slice() {
        [one] => one,
        other => panic!("{key}= appears {} times", other.len()),
    }
}

#[test]
fn fly_toml_serves_http_on_the_server_port_and_quic_on_fly_global_services() {
    let fly: toml::Value = toml::from_str(&read("fly.toml")).expect("fly.toml parses");
    let env = env_table(&fly["env"]);
    let config = config_from_env("fly.toml", &env);

    // TLS at Fly's edge on 443 (80 redirected), HTTP/1.1 to the server's default port.
    let http = &fly["http_service"];
    assert_eq!(
        http["internal_port"].as_integer(),
        Some(defaults().http_addr.port().into())
    );
    assert!(
        !env.contains_key("JAM_HTTP_ADDR"),
        "the default port is the one Fly forwards to"
    );
    assert_eq!(http["force_https"].as_bool(), Some(true));
    assert_eq!(http["auto_stop_machines"].as_str(), Some("off"));
    let checks = http["checks"].as_array().expect("[[http_service.checks]]");
    assert!(checks
        .iter()
        .any(|c| c["path"].as_str() == Some("/healthz")));

    // QUIC: a UDP service on the same port inside and out, the server bound to
    // fly-global-services on it.
    assert_eq!(
        config.wt_addr,
        WtAddr::At("fly-global-services:4433".into())
    );
    let udp: Vec<&toml::Value> = fly["services"]
        .as_array()
        .expect("[[services]]")
        .iter()
        .filter(|s| s["protocol"].as_str() == Some("udp"))
        .collect();
    let [udp] = udp.as_slice() else {
        panic!("one UDP service");
    };
    let inside = udp["internal_port"].as_integer().unwrap();
    let outside: Vec<i64> = udp["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_integer().unwrap())
        .collect();
    assert_eq!(outside, [inside], "Fly does not rewrite UDP ports");
    assert_eq!(inside, i64::from(port_of("fly-global-services:4433")));
    assert_eq!(inside, i64::from(default_wt_port()));

    // A stop: SIGTERM, and time for the drain before Fly's SIGKILL (at most 300 s).
    assert_eq!(fly["kill_signal"].as_str(), Some("SIGTERM"));
    let kill_timeout = fly["kill_timeout"].as_integer().expect("seconds");
    assert!(
        (LONGEST_STOP_SECS..=300).contains(&kill_timeout),
        "{kill_timeout}"
    );

    // Logs, rooms and keys: JSON lines, and the store on the mounted volume.
    assert_eq!(config.log_format, LogFormat::Json);
    let mounts = fly["mounts"].as_array().expect("[[mounts]]");
    let destination = mounts[0]["destination"].as_str().unwrap();
    assert_eq!(config.data_dir, Some(PathBuf::from(destination)));
    assert!(
        config.cert_dir.starts_with(destination),
        "the resume key survives a deploy"
    );
    assert!(is_cidr_list(&env["JAM_TRUSTED_PROXIES"]));
    assert!(
        config.public_url.is_some(),
        "/connect must name the public address"
    );
    assert_ne!(
        config.allowed_origins, "*",
        "the app's origin, not every page"
    );
}

#[test]
fn railway_json_builds_the_dockerfile_and_runs_without_udp() {
    let railway: serde_json::Value =
        serde_json::from_str(&read("railway.json")).expect("railway.json parses");
    let build = &railway["build"];
    assert_eq!(build["builder"], "DOCKERFILE");
    let dockerfile = build["dockerfilePath"].as_str().unwrap();
    assert!(root().join(dockerfile).is_file(), "{dockerfile}");

    let deploy = &railway["deploy"];
    assert_eq!(deploy["healthcheckPath"], "/healthz");
    assert!(matches!(
        deploy["restartPolicyType"].as_str(),
        Some("ON_FAILURE" | "ALWAYS")
    ));
    // Railway sends SIGKILL drainingSeconds after SIGTERM (0 unless set), and takes a number
    // only.
    let draining = deploy["drainingSeconds"].as_i64().expect("a number");
    assert!(draining >= LONGEST_STOP_SECS, "{draining}");

    // Railway carries no UDP: the start command turns WebTransport off, so /connect sends
    // clients straight to the WebSocket. Its HTTP port comes from Railway's PORT.
    let start = deploy["startCommand"].as_str().unwrap();
    let mut words = start.split_whitespace();
    assert_eq!(words.next(), Some("jam-entrypoint"), "{start}");
    let config = Config::try_parse_from(std::iter::once("jam-server").chain(words))
        .unwrap_or_else(|e| panic!("{start}: {e}"));
    assert_eq!(config.wt_addr, WtAddr::Off);
    assert_eq!(config.http_addr, defaults().http_addr, "PORT moves it");
}

#[test]
fn the_dockerfile_runs_the_build_script_and_sets_up_the_runtime_it_documents() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));

    assert!(has("FROM rust:${RUST_VERSION}-bookworm AS build"));
    assert!(has("RUN bash deploy/build.sh /out/usr/local"));
    assert!(has("FROM debian:bookworm-slim"));
    assert!(has("COPY --from=build /out/usr/local/bin/ /usr/local/bin/"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("useradd --system --uid 10001 --gid jam")),
        "the user jam"
    );
    assert!(has(r#"ENTRYPOINT ["jam-entrypoint"]"#));
    assert!(has("HEALTHCHECK ") && dockerfile.contains(r#"CMD ["jam-healthcheck"]"#));
    assert!(has("STOPSIGNAL SIGTERM"));
    assert!(has(r#"VOLUME ["/data"]"#));

    // The ports it exposes are the server's defaults.
    let exposed: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(str::split_whitespace)
        .collect();
    let http = format!("{}/tcp", defaults().http_addr.port());
    let wt = format!("{}/udp", default_wt_port());
    assert_eq!(exposed, [http.as_str(), wt.as_str()]);

    // Its ENV instruction (with its continued lines) holds settings the server reads.
    let start = lines
        .iter()
        .position(|l| l.starts_with("ENV "))
        .expect("an ENV line");
    let mut env_block = Vec::new();
    for line in &lines[start..] {
        let line = line.trim_start_matches("ENV ");
        env_block.push(line.trim_end_matches('\\').trim());
        if !line.ends_with('\\') {
            break;
        }
    }
    let env = env_lines(env_block.into_iter());
    let config = config_from_env("Dockerfile", &env);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.data_dir, Some(PathBuf::from("/data")));
    assert!(config.cert_dir.starts_with("/data"));

    // What the Dockerfile runs is what the build script installs, and the entry point
    // becomes jam.
    let build = read("deploy/build.sh");
    for (script, installed) in [
        ("deploy/entrypoint.sh", "jam-entrypoint"),
        ("deploy/healthcheck.sh", "jam-healthcheck"),
    ] {
        assert!(
            build.contains(&format!(
                "install -m 0755 {script} \"$prefix/bin/{installed}\""
            )),
            "{installed}"
        );
    }
    assert!(build.contains("cargo build --release --locked --workspace --bin jam-server"));
    assert!(read("deploy/entrypoint.sh").contains("exec setpriv --reuid=jam --regid=jam"));

    // Nothing built or kept locally goes into the build context.
    let dockerignore = read(".dockerignore");
    let ignored: Vec<&str> = dockerignore.lines().collect();
    for path in [".git", "target/", "**/node_modules/", "certs/", "data/"] {
        assert!(ignored.contains(&path), ".dockerignore: {path}");
    }
}

#[test]
fn the_vps_unit_is_hardened_and_caddy_proxies_to_its_address() {
    let unit = read("deploy/vps/jam-server.service");
    let mut env = env_lines(unit_values(&unit, "Environment").into_iter());
    env.extend(env_lines(read("deploy/vps/jam-server.env").lines()));
    let config = config_from_env("deploy/vps", &env);

    // HTTP on loopback behind Caddy, which alone is trusted for X-Forwarded-*.
    assert!(config.http_addr.ip().is_loopback());
    assert!(config.admin_addr.is_some_and(|a| a.ip().is_loopback()));
    assert_eq!(env["JAM_TRUSTED_PROXIES"], "127.0.0.1/32,::1/128");
    let caddyfile = read("deploy/vps/Caddyfile");
    assert!(
        caddyfile.contains(&format!("reverse_proxy {} {{", config.http_addr)),
        "Caddy proxies to {}",
        config.http_addr
    );
    assert!(config.public_url.is_some());

    // The store is the one path it may write.
    let data = config.data_dir.expect("JAM_DATA_DIR");
    assert_eq!(unit_value(&unit, "ReadWritePaths"), data.to_str().unwrap());
    assert!(config.cert_dir.starts_with(&data));
    for (key, value) in [
        ("User", "jam"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert_eq!(unit_value(&unit, key), value, "{key}=");
    }
    let stop: i64 = unit_value(&unit, "TimeoutStopSec").parse().unwrap();
    assert!(stop >= LONGEST_STOP_SECS, "TimeoutStopSec={stop}");
    let files: u64 = unit_value(&unit, "LimitNOFILE").parse().unwrap();
    assert!(files >= 4096, "LimitNOFILE={files}");

    // The certificate files the env file names are the ones jam-cert-install writes.
    let install = read("deploy/vps/jam-cert-install");
    assert!(install.contains("dest=${JAM_TLS_DIR:-/etc/jam-server/tls}"));
    let env_file = read("deploy/vps/jam-server.env");
    for file in ["fullchain.pem", "privkey.pem"] {
        assert!(install.contains(&format!("\"$dest/{file}\"")), "{file}");
        assert!(
            env_file.contains(&format!("/etc/jam-server/tls/{file}")),
            "{file}"
        );
    }
}
