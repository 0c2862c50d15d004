//! `GET /metrics`: the server's counters and gauges in the Prometheus / OpenMetrics text
//! format, through `prometheus-client`. Everything is read when the endpoint is scraped
//! (the atomics of [`Stats`], the hub's rooms and seats, the process's resident memory):
//! the event path counts each thing once, in [`Stats`], and pays nothing for this module.
//!
//! Names follow Prometheus practice: a `jam_` prefix, `_total` on counters (added by the
//! encoder), the unit in the name (`_seconds`, `_bytes`), and labels for the kinds of one
//! thing (`transport`, `path`, `state`, `reason`, `limit`, `code`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jam_protocol::ErrorCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::auth::Refusal;
use crate::conn::Context;
use crate::stats::{Stats, Transport, FAN_OUT_BOUNDS_NS};

/// The OpenMetrics text format's content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `/metrics` route.
pub fn router(ctx: Arc<Context>) -> Router {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ServerCollector { ctx }));
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::new(registry))
}

async fn scrape(State(registry): State<Arc<Registry>>) -> Response {
    let mut body = String::with_capacity(4096);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        tracing::error!(error = %e, "encoding the metrics failed");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Reads the server's state at each scrape.
struct ServerCollector {
    ctx: Arc<Context>,
}

impl std::fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCollector").finish_non_exhaustive()
    }
}

/// One metric, or one family of labelled metrics, written by a [`DescriptorEncoder`].
struct Out<'a, 'e> {
    encoder: &'a mut DescriptorEncoder<'e>,
}

impl Out<'_, '_> {
    fn counter(&mut self, name: &str, help: &str, value: u64) -> std::fmt::Result {
        let metric = ConstCounter::new(value);
        let m = self
            .encoder
            .encode_descriptor(name, help, None, metric.metric_type())?;
        metric.encode(m)
    }

    fn gauge(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        value: u64,
    ) -> std::fmt::Result {
        let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
        let m = self
            .encoder
            .encode_descriptor(name, help, unit, metric.metric_type())?;
        metric.encode(m)
    }

    /// A family of one label: `values` are (label value, value).
    fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        label: &'static str,
        values: &[(&'static str, u64)],
    ) -> std::fmt::Result {
        let mut m = self.encoder.encode_descriptor(name, help, None, kind)?;
        for &(value_label, value) in values {
            let labels = [(label, value_label)];
            let member = m.encode_family(&labels)?;
            match kind {
                MetricType::Gauge => {
                    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(member)?
                }
                _ => ConstCounter::new(value).encode(member)?,
            }
        }
        Ok(())
    }
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let stats: &Stats = self.ctx.hub.stats();
        let snap = stats.snapshot();
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let mut out = Out {
            encoder: &mut encoder,
        };
        out.family(
            "jam_connections",
            "Open connections.",
            MetricType::Gauge,
            "transport",
            &[
                ("websocket", stats.connections(Transport::WebSocket)),
                ("webtransport", stats.connections(Transport::WebTransport)),
                ("socketio", stats.connections(Transport::SocketIo)),
            ],
        )?;
        out.gauge(
            "jam_rooms",
            "Live rooms.",
            None,
            self.ctx.hub.room_count() as u64,
        )?;
        out.gauge(
            "jam_history_bytes",
            "Bytes of history kept for replay in every room, bookkeeping included (--history-budget).",
            None,
            self.ctx.hub.history_bytes(),
        )?;
        let (active, away) = self.ctx.hub.seat_counts();
        out.family(
            "jam_seats",
            "Seats in all rooms: active, or away (held for a resume).",
            MetricType::Gauge,
            "state",
            &[("active", active as u64), ("away", away as u64)],
        )?;
        out.family(
            "jam_events_received",
            "event:broadcast messages accepted from clients, by the path they came on.",
            MetricType::Counter,
            "path",
            &[
                ("reliable", snap.events_in.saturating_sub(snap.datagrams_in)),
                ("datagram", snap.datagrams_in),
            ],
        )?;
        out.counter(
            "jam_deliveries",
            "Relayed events handed to a receiver (queued or sent as a datagram).",
            snap.deliveries,
        )?;
        out.counter(
            "jam_datagrams_sent",
            "Relayed events sent as WebTransport datagrams.",
            snap.datagrams_out,
        )?;
        out.counter(
            "jam_deliveries_dropped",
            "Datagram-class deliveries dropped (receiver lagging or datagram send failed).",
            snap.dropped,
        )?;
        out.counter(
            "jam_slow_consumers",
            "Connections cut off because they stopped reading.",
            snap.slow_consumers,
        )?;
        out.family(
            "jam_rate_limited",
            "Requests refused or dropped over a budget, by the budget.",
            MetricType::Counter,
            "limit",
            &[
                ("events", get(&stats.rate_limited_events)),
                ("room_requests", get(&stats.rate_limited_room_requests)),
                ("join_guesses", get(&stats.rate_limited_joins)),
            ],
        )?;
        out.family(
            "jam_connections_refused",
            "Connections refused before any message, by reason.",
            MetricType::Counter,
            "reason",
            &[
                ("origin", get(&stats.refused_origin)),
                ("address_limit", get(&stats.refused_address)),
                ("server_limit", get(&stats.refused_server_full)),
                ("http_address_limit", get(&stats.refused_tcp_address)),
                ("handshake_limit", self.ctx.handshakes().refused()),
            ],
        )?;
        out.gauge(
            "jam_quic_handshakes",
            "QUIC handshakes in progress (--max-handshakes, --max-handshakes-per-address).",
            None,
            self.ctx.handshakes().in_progress() as u64,
        )?;
        out.counter(
            "jam_quic_retries",
            "QUIC Initials from sources not yet proven answered with a Retry (--quic-retry).",
            self.ctx.handshakes().retries(),
        )?;
        let errors: Vec<(&'static str, u64)> = ErrorCode::ALL
            .iter()
            .map(|&code| (code.as_str(), get(&stats.errors[code as usize])))
            .collect();
        out.family(
            "jam_errors",
            "Error answers to clients, by code (including those the per-connection throttle withheld).",
            MetricType::Counter,
            "code",
            &errors,
        )?;
        let refused: Vec<(&'static str, u64)> = Refusal::ALL
            .iter()
            .enumerate()
            .map(|(i, r)| (r.as_str(), get(&stats.auth_refused[i])))
            .collect();
        out.family(
            "jam_auth_refused",
            "Sign-ins refused (docs/protocol.md §13), by reason: never the token itself.",
            MetricType::Counter,
            "reason",
            &refused,
        )?;
        let store = self.ctx.hub.store();
        let ops = store.ops();
        out.family(
            "jam_store_ops",
            "Room store operations (docs/protocol.md §12), by kind: never one per note.",
            MetricType::Counter,
            "op",
            &[
                ("put", get(&ops.put)),
                ("delete", get(&ops.delete)),
                ("load", get(&ops.load)),
                ("ping", get(&ops.ping)),
                ("failed", get(&ops.failed)),
            ],
        )?;
        out.gauge(
            "jam_store_ready",
            "1 while the room store answers, 0 while it does not.",
            None,
            store.is_ready().into(),
        )?;
        out.gauge(
            "jam_store_unsaved",
            "Room state changes handed to the store and not yet written.",
            None,
            store.unsaved(),
        )?;
        let (per_bucket, sum_ns) = stats.fan_out.read();
        let mut buckets = Vec::with_capacity(per_bucket.len());
        for (i, &n) in per_bucket.iter().enumerate() {
            let bound = FAN_OUT_BOUNDS_NS
                .get(i)
                .map_or(f64::INFINITY, |&ns| ns as f64 / 1e9);
            buckets.push((bound, n));
        }
        let m = encoder.encode_descriptor(
            "jam_fanout",
            "Time to relay one event to its room: encode once and hand to every receiver.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        let count = per_bucket.iter().sum();
        let mut m = m;
        m.encode_histogram::<NoLabelSet>(sum_ns as f64 / 1e9, count, &buckets, None)?;
        if let Some(rss) = resident_bytes() {
            Out {
                encoder: &mut encoder,
            }
            .gauge(
                "process_resident_memory",
                "Resident memory of the server process.",
                Some(&Unit::Bytes),
                rss,
            )?;
        }
        Ok(())
    }
}

/// The process's resident set size (Linux: `VmRSS` in `/proc/self/status`).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
