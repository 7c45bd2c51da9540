//! `GET /metrics`: requests, errors, latency, batch sizes, the queue and the
//! model version, in the Prometheus text format (OpenMetrics).

use std::sync::Mutex;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::ModelInfo;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: &'static str,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub name: String,
    pub version: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub errors: Family<RequestLabels, Counter>,
    pub latency: Family<RequestLabels, Histogram>,
    pub batch_size: Histogram,
    pub inference_seconds: Histogram,
    pub queue_depth: Gauge<i64, AtomicI64>,
    pub in_flight: Gauge<i64, AtomicI64>,
    pub model: Family<ModelLabels, Gauge<i64, AtomicI64>>,
    pub swaps: Counter,
    pub log_dropped: Counter,
    serving: Mutex<Option<ModelLabels>>,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 100 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 22))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gourd_serve");
        let requests = Family::<RequestLabels, Counter>::default();
        let errors = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let inference_seconds = latency_histogram();
        let queue_depth = Gauge::<i64, AtomicI64>::default();
        let in_flight = Gauge::<i64, AtomicI64>::default();
        let model = Family::<ModelLabels, Gauge<i64, AtomicI64>>::default();
        let swaps = Counter::default();
        let log_dropped = Counter::default();
        registry.register("requests", "Requests answered, by endpoint and HTTP status", requests.clone());
        registry.register("errors", "Requests answered with an error (4xx or 5xx)", errors.clone());
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its answer",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        registry.register("batch_size", "Rows in each batch the model ran", batch_size.clone());
        registry.register_with_unit(
            "inference_duration",
            "Time the model took for each batch",
            prometheus_client::registry::Unit::Seconds,
            inference_seconds.clone(),
        );
        registry.register("queue_depth", "Requests waiting for the model", queue_depth.clone());
        registry.register("requests_in_flight", "Requests received and not yet answered", in_flight.clone());
        registry.register("model", "The model version answering (1) and those that answered before (0)", model.clone());
        registry.register("model_swaps", "New model versions put in place while serving", swaps.clone());
        registry.register(
            "log_dropped",
            "Input log lines dropped because the log could not keep up",
            log_dropped.clone(),
        );
        Metrics {
            registry,
            requests,
            errors,
            latency,
            batch_size,
            inference_seconds,
            queue_depth,
            in_flight,
            model,
            swaps,
            log_dropped,
            serving: Mutex::new(None),
        }
    }

    pub fn model_loaded(&self, info: &ModelInfo) {
        let labels = ModelLabels { name: info.name.clone(), version: info.version.clone() };
        let mut serving = self.serving.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = serving.replace(labels.clone()) {
            self.model.get_or_create(&old).set(0);
        }
        self.model.get_or_create(&labels).set(1);
    }

    pub fn answered(&self, endpoint: &'static str, code: u16, seconds: f64) {
        let labels = RequestLabels { endpoint, code };
        self.requests.get_or_create(&labels).inc();
        if code >= 400 {
            self.errors.get_or_create(&labels).inc();
        }
        self.latency.get_or_create(&labels).observe(seconds);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
