//! Exporting traces and metrics over OTLP/HTTP (feature `otlp`): one call that installs an
//! OpenTelemetry tracer provider and meter provider, for applications that do not set up
//! OpenTelemetry themselves. Those that do need none of this: the trace context
//! ([`crate::trace`]) and the runtime's metrics use the OpenTelemetry API and reach whatever
//! providers the application installed.
//!
//! ```no_run
//! # fn example() -> Result<(), pgqueuer::Error> {
//! use tracing_subscriber::layer::SubscriberExt;
//! // OTEL_EXPORTER_OTLP_ENDPOINT, or http://localhost:4318 when unset.
//! let telemetry = pgqueuer::telemetry::otlp(None, "mailer")?;
//! let subscriber = tracing_subscriber::registry().with(telemetry.layer());
//! tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
//! // ... run the worker; then, to send what is buffered:
//! telemetry.shutdown()?;
//! # Ok(()) }
//! ```
//!
//! Plain HTTP only (a collector beside the worker is the usual setup). The exporters use a
//! blocking HTTP client on the SDK's own threads: call [`otlp`] and [`Telemetry::shutdown`]
//! outside async code, or in `tokio::task::spawn_blocking`.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_subscriber::registry::LookupSpan;

use crate::Error;

/// The installed providers. Keep it for the life of the program and call
/// [`shutdown`](Telemetry::shutdown) at its end: spans and metrics are sent in batches.
#[derive(Debug)]
pub struct Telemetry {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

/// Installs OTLP/HTTP exporters of traces and metrics as the global OpenTelemetry providers,
/// with `service` as `service.name`. `endpoint` is the collector's base URL
/// (`http://collector:4318`; `/v1/traces` and `/v1/metrics` are added); `None` reads the
/// standard `OTEL_EXPORTER_OTLP_*` variables.
pub fn otlp(endpoint: Option<&str>, service: &str) -> Result<Telemetry, Error> {
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        Error::Setup(format!("cannot export {what} over OTLP: {error}"))
    };
    let base = endpoint.map(|endpoint| endpoint.trim_end_matches('/'));
    let mut spans = SpanExporter::builder().with_http();
    let mut metrics = MetricExporter::builder().with_http();
    if let Some(base) = base {
        spans = spans.with_endpoint(format!("{base}/v1/traces"));
        metrics = metrics.with_endpoint(format!("{base}/v1/metrics"));
    }
    let spans = spans.build().map_err(|error| failed("traces", &error))?;
    let metrics = metrics.build().map_err(|error| failed("metrics", &error))?;
    let resource = Resource::builder()
        .with_service_name(service.to_string())
        .build();
    let tracer = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let meter = SdkMeterProvider::builder()
        .with_periodic_exporter(metrics)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_tracer_provider(tracer.clone());
    opentelemetry::global::set_meter_provider(meter.clone());
    Ok(Telemetry { tracer, meter })
}

impl Telemetry {
    /// A tracer of the installed provider.
    pub fn tracer(&self, name: &'static str) -> SdkTracer {
        self.tracer.tracer(name)
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans (pgqueuer's `job` spans
    /// and the application's), for `tracing_subscriber::registry().with(...)`.
    pub fn layer<S>(&self) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.tracer("pgqueuer"))
    }

    /// Sends what is buffered and stops the exporters.
    pub fn shutdown(self) -> Result<(), Error> {
        let traces = self.tracer.shutdown();
        let metrics = self.meter.shutdown();
        traces.map_err(|error| Error::Setup(format!("exporting traces: {error}")))?;
        metrics.map_err(|error| Error::Setup(format!("exporting metrics: {error}")))?;
        Ok(())
    }
}
