//! Trace context through the queue (client/src/trace.rs): a handler's span is a child of the
//! span that enqueued its job, through the job's `traceparent` header, whoever wrote it.

use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use pgqueuer::{Job, Mode, NewJob, OnConflict, PgQueuer, Queries, RunOptions};
use pgqueuer_tests::{TestDb, scalar};
use serde_json::Value;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

/// A span another language's producer wrote by hand: trace and span id.
const FOREIGN_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const FOREIGN_SPAN: &str = "00f067aa0ba902b7";

fn job_span_of(spans: &[SpanData], id: i64) -> &SpanData {
    spans
        .iter()
        .find(|span| {
            span.name == "job"
                && span
                    .attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "id" && kv.value.as_str() == id.to_string())
        })
        .unwrap_or_else(|| panic!("no job span for job {id} among {spans:#?}"))
}

#[tokio::test]
async fn a_handlers_span_is_a_child_of_the_span_that_enqueued_its_job() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("pgqueuer-tests")));
    // The test's runtime runs every task on this thread, so this subscriber sees them all.
    let _default = tracing::subscriber::set_default(subscriber);

    let db = TestDb::installed().await;
    let q = Queries::new(db.connect().await);
    let request = tracing::info_span!("request");
    let ours = q
        .enqueue_many(&[NewJob::new("traced")], OnConflict::Raise)
        .instrument(request.clone())
        .await
        .expect("enqueue inside the request")[0]
        .expect("an id");
    let outside = q
        .enqueue_many(&[NewJob::new("traced")], OnConflict::Raise)
        .await
        .expect("enqueue outside any span")[0]
        .expect("an id");
    let foreign: i64 = scalar(
        &db.connect().await,
        &format!(
            "SELECT pgq.enqueue('traced', headers => \
             '{{\"traceparent\": \"00-{FOREIGN_TRACE}-{FOREIGN_SPAN}-01\"}}')"
        ),
        &[],
    )
    .await;
    let headers: Value = scalar(
        &db.connect().await,
        "SELECT jsonb_object_agg(id, coalesce(headers, 'null')) FROM pgq.jobs",
        &[],
    )
    .await;
    assert!(
        headers[ours.to_string()]["traceparent"]
            .as_str()
            .is_some_and(|parent| parent.starts_with("00-") && parent.ends_with("-01")),
        "{headers}"
    );
    // Outside the request, the enqueue span starts a trace of its own.
    let trace_of = |id: i64| {
        headers[id.to_string()]["traceparent"]
            .as_str()
            .map(|parent| parent[3..35].to_string())
    };
    assert!(
        trace_of(outside).is_some() && trace_of(outside) != trace_of(ours),
        "{headers}"
    );

    let mut pgq = PgQueuer::new(pgqueuer::config(&db.dsn).expect("settings"));
    pgq.entrypoint("traced", |_job: Job| async move { Ok(()) });
    pgq.run(RunOptions {
        mode: Mode::Drain,
        ..RunOptions::default()
    })
    .await
    .expect("drain");
    drop(request);
    provider.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");

    let request = spans
        .iter()
        .find(|span| span.name == "request")
        .expect("the request span");
    // request -> enqueue -> (the wait) -> job
    let enqueue = spans
        .iter()
        .find(|span| {
            span.name == "enqueue" && span.parent_span_id == request.span_context.span_id()
        })
        .expect("the enqueue span, a child of the request");
    let job = job_span_of(&spans, ours);
    assert_eq!(
        (job.span_context.trace_id(), job.parent_span_id),
        (
            request.span_context.trace_id(),
            enqueue.span_context.span_id()
        ),
        "the handler's span is the enqueue's child, in the request's trace"
    );

    let job = job_span_of(&spans, foreign);
    assert_eq!(
        (
            job.span_context.trace_id().to_string(),
            job.parent_span_id.to_string()
        ),
        (FOREIGN_TRACE.to_string(), FOREIGN_SPAN.to_string()),
        "a traceparent written in SQL is followed too"
    );

    let job = job_span_of(&spans, outside);
    assert_ne!(
        job.span_context.trace_id(),
        request.span_context.trace_id(),
        "a job enqueued outside the request is in a trace of its own"
    );
}
