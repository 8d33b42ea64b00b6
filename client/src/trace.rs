//! Trace context through the queue (W3C Trace Context): a job enqueued inside a traced request
//! carries that trace, and its handler's span is a child of the `enqueue` span that wrote it
//! (itself a child of the request's), so one trace shows request -> enqueue -> wait -> handler.
//!
//! The context travels in the job's headers under the W3C names, so that a producer or a worker
//! in any language can set or read them:
//!
//! | header | value |
//! |---|---|
//! | [`TRACEPARENT`] (`"traceparent"`) | `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>` |
//! | [`TRACESTATE`] (`"tracestate"`) | the vendor list, as in HTTP (only when not empty) |
//!
//! Enqueueing ([`crate::Queries::enqueue_many`], [`crate::enqueue_in`], ...) runs in an
//! `enqueue` span and adds them when that span (with an OpenTelemetry layer; or else the current
//! OpenTelemetry context) has a valid span context, and leaves a caller's `traceparent` alone.
//! The runtime makes each handler's `job` span a child of the context it reads back. Without an
//! OpenTelemetry layer or provider nothing is added: propagation costs a lookup per job.

use std::str::FromStr;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use serde_json::Value;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The job header holding the W3C `traceparent` of the span that enqueued the job.
pub const TRACEPARENT: &str = "traceparent";
/// The job header holding the W3C `tracestate` that goes with [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// The span context to propagate from here: the current `tracing` span's, or else the current
/// OpenTelemetry context's; `None` when neither is valid.
fn current() -> Option<SpanContext> {
    let from_tracing = tracing::Span::current().context();
    let context = from_tracing.span().span_context().clone();
    if context.is_valid() {
        return Some(context);
    }
    let context = opentelemetry::Context::current()
        .span()
        .span_context()
        .clone();
    context.is_valid().then_some(context)
}

/// `traceparent` of a span context.
fn traceparent(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// The headers that carry the current trace context, once per batch; `None` without one.
pub(crate) fn current_headers() -> Option<serde_json::Map<String, Value>> {
    let context = current()?;
    let mut map = serde_json::Map::new();
    map.insert(TRACEPARENT.into(), Value::String(traceparent(&context)));
    let state = context.trace_state().header();
    if !state.is_empty() {
        map.insert(TRACESTATE.into(), Value::String(state));
    }
    Some(map)
}

/// A job's headers with `trace` added, unless they hold a `traceparent` already or are not a
/// JSON object (the caller's own format). `None` when nothing changes.
pub(crate) fn inject(
    headers: Option<&Value>,
    trace: &serde_json::Map<String, Value>,
) -> Option<Value> {
    let mut map = match headers {
        None => serde_json::Map::new(),
        Some(Value::Object(map)) if !map.contains_key(TRACEPARENT) => map.clone(),
        Some(_) => return None,
    };
    map.extend(
        trace
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );
    Some(Value::Object(map))
}

/// The remote span context a job's headers carry, if they carry a well-formed one.
pub(crate) fn extract(headers: Option<&Value>) -> Option<SpanContext> {
    let Some(Value::Object(map)) = headers else {
        return None;
    };
    let parent = map.get(TRACEPARENT)?.as_str()?;
    let mut parts = parent.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four parts; a later version may add some (W3C: read the first four).
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & TraceFlags::SAMPLED.to_u8());
    let state = map
        .get(TRACESTATE)
        .and_then(Value::as_str)
        .and_then(|state| TraceState::from_str(state).ok())
        .unwrap_or_default();
    let context = SpanContext::new(trace, span, flags, true, state);
    context.is_valid().then_some(context)
}

/// Makes `span` a child of the trace context in `headers`, if any.
pub(crate) fn adopt(span: &tracing::Span, headers: Option<&Value>) {
    if let Some(parent) = extract(headers) {
        // Without an OpenTelemetry layer this does nothing, and fails only in that sense.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_traceparent_is_read_back_as_written() {
        let written = json!({
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "congo=t61rcWkgMzE",
        });
        let context = extract(Some(&written)).expect("a context");
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_sampled() && context.is_remote());
        assert_eq!(context.trace_state().header(), "congo=t61rcWkgMzE");
        assert_eq!(
            traceparent(&context),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }

    #[test]
    fn malformed_or_empty_contexts_are_ignored() {
        for parent in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E473G-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            assert!(
                extract(Some(&json!({ "traceparent": parent }))).is_none(),
                "{parent:?}"
            );
        }
        assert!(extract(Some(&json!({ "traceparent": 7 }))).is_none());
        assert!(extract(Some(&json!(["traceparent"]))).is_none());
        assert!(extract(None).is_none());
    }

    #[test]
    fn the_context_joins_the_headers_but_never_replaces_a_callers_own() {
        let trace =
            json!({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
        let Value::Object(trace) = trace else {
            unreachable!()
        };
        assert_eq!(inject(None, &trace), Some(Value::Object(trace.clone())));
        assert_eq!(
            inject(Some(&json!({"content-type": "application/json"})), &trace),
            Some(json!({
                "content-type": "application/json",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            }))
        );
        let own = json!({"traceparent": "00-11111111111111111111111111111111-2222222222222222-00"});
        assert_eq!(inject(Some(&own), &trace), None);
        assert_eq!(inject(Some(&json!("opaque")), &trace), None);
        assert!(
            current_headers().is_none(),
            "no trace is current in a plain test"
        );
    }
}
