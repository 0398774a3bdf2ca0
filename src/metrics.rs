//! Prometheus metrics of a `backup` or `apply` run, served while it runs
//! (`--metrics-addr`, or `metrics.addr` in the configuration) and, with
//! `--metrics-linger SECS`, a while after it ends, so that a scheduled job's
//! last values are scraped. Metrics are kept with `prometheus-client` (the
//! Prometheus project's Rust client) and served by `hyper`; the exposition
//! format is the library's.
//!
//! Labels are bounded: a topic label takes at most [`MAX_TOPICS`] names (the
//! rest are counted under `_other`), a status label the classes `2xx`,
//! `3xx`, `4xx`, `5xx` and `error`, an outcome label `done` and `failed`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The most topic label values; further topics are counted as `_other`.
pub const MAX_TOPICS: usize = 500;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Records backed up (stored in segments) or restored (acknowledged by
    /// the target to this run's producers), per topic (a restore's: the
    /// target topic).
    pub records: Family<TopicLabel, Counter>,
    /// Bytes of keys, values and headers (names and values) of those
    /// records, uncompressed, per topic: what `SegmentMeta::uncompressed_bytes`
    /// counts (a restore's schema-ID rewrite keeps every size).
    pub bytes: Family<TopicLabel, Counter>,
    /// Records still to take (to the end offsets read at the start) or to
    /// write (at most: records a restore leaves out are taken off when
    /// their partition is done), per topic.
    pub lag: Family<TopicLabel, Gauge>,
    /// Segments stored by a backup.
    pub segments: Counter,
    /// Registry requests by the class of their answer.
    pub registry_requests: Family<StatusLabel, Counter>,
    /// Registry steps of an apply, done or failed.
    pub steps: Family<OutcomeLabel, Counter>,
    /// When the run last finished without error (seconds since the epoch).
    pub last_success: Gauge<f64, AtomicU64>,
    topics: Mutex<BTreeSet<String>>,
}

impl Metrics {
    /// Metrics of their own, not served (tests; the process's are [`global`]).
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("kafka_backup");
        let m = Self {
            registry: Registry::default(),
            records: Family::default(),
            bytes: Family::default(),
            lag: Family::default(),
            segments: Counter::default(),
            registry_requests: Family::default(),
            steps: Family::default(),
            last_success: Gauge::default(),
            topics: Mutex::new(BTreeSet::new()),
        };
        registry.register(
            "records",
            "Records backed up (stored in segments; topic: the source topic) or restored (acknowledged by the target to this run; topic: the target topic)",
            m.records.clone(),
        );
        registry.register(
            "bytes",
            "Bytes of keys, values and headers (names and values) of those records, uncompressed: as taken from the source (backup) or as acknowledged by the target (apply)",
            m.bytes.clone(),
        );
        registry.register(
            "lag_records",
            "Records still to back up (to the end offsets read at the start) or to restore (the backup's records of the partitions left, less those confirmed in the target; an upper bound while --to-timestamp or missing_id_policy skip leave records out, taken off as each partition is done: 0 after a restore that succeeded)",
            m.lag.clone(),
        );
        registry.register(
            "segments_stored",
            "Segments a backup stored",
            m.segments.clone(),
        );
        registry.register(
            "registry_requests",
            "Schema Registry requests by the class of their answer",
            m.registry_requests.clone(),
        );
        registry.register(
            "registry_steps",
            "Registry steps of an apply, done or failed",
            m.steps.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When the run last finished without error",
            m.last_success.clone(),
        );
        Self { registry, ..m }
    }

    /// The label for `topic`: its name while fewer than [`MAX_TOPICS`]
    /// have one, `_other` after.
    pub fn topic(&self, topic: &str) -> TopicLabel {
        let mut seen = self.topics.lock().expect("metrics topics lock");
        if seen.contains(topic) || seen.len() < MAX_TOPICS {
            seen.insert(topic.to_owned());
            TopicLabel {
                topic: topic.to_owned(),
            }
        } else {
            TopicLabel {
                topic: "_other".to_owned(),
            }
        }
    }

    /// Counts a registry answer (`None`: no answer).
    pub fn registry_answer(&self, status: Option<u16>) {
        let status = match status {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(_) => "5xx",
            None => "error",
        };
        self.registry_requests
            .get_or_create(&StatusLabel { status })
            .inc();
    }

    /// The exposition text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The process's metrics (kept whether or not they are served: a few
/// atomic additions per segment and per request).
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Serves `GET /metrics` (any path) on `addr` from a thread of its own until
/// the process ends; gives the address bound (`:0` picks a port).
pub fn serve(addr: &str) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the metrics endpoint");
            runtime.block_on(accept(listener));
        })?;
    Ok(bound)
}

async fn accept(listener: std::net::TcpListener) {
    use hyper::service::service_fn;
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                let body = global().encode();
                hyper::Response::builder()
                    .header(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_past_the_bound_are_counted_together() {
        let m = Metrics::new();
        for i in 0..MAX_TOPICS + 10 {
            m.records.get_or_create(&m.topic(&format!("t{i}"))).inc();
        }
        // a topic seen before keeps its own label
        m.records.get_or_create(&m.topic("t0")).inc();
        let text = m.encode();
        assert!(
            text.contains("kafka_backup_records_total{topic=\"t0\"} 2"),
            "{text}"
        );
        assert!(text.contains("kafka_backup_records_total{topic=\"_other\"} 10"));
        let labels = text
            .lines()
            .filter(|l| l.starts_with("kafka_backup_records_total{"))
            .count();
        assert_eq!(labels, MAX_TOPICS + 1);
    }

    #[test]
    fn registry_answers_are_counted_by_class() {
        let m = Metrics::new();
        for s in [Some(200), Some(204), Some(404), Some(503), None] {
            m.registry_answer(s);
        }
        let text = m.encode();
        for (class, n) in [("2xx", 2), ("4xx", 1), ("5xx", 1), ("error", 1)] {
            assert!(
                text.contains(&format!(
                    "kafka_backup_registry_requests_total{{status=\"{class}\"}} {n}"
                )),
                "{text}"
            );
        }
    }
}
