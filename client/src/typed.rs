//! Typed jobs: a Rust type that is a job's arguments ([`JobArgs`]), serialised as JSON into the
//! payload, and a handler's result serialised into the job's log row.
//!
//! The wire format is for every language: the payload is the arguments as UTF-8 JSON, and the
//! job's headers say so with `{"content-type": "application/json"}` ([`CONTENT_TYPE`],
//! [`JSON`]). A handler reads a payload as JSON when the header says `application/json` or is
//! absent; another content type, or JSON that does not fit the type, ends the job at once as
//! `exception` (`pgq.fail`), since no retry would read it better.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail {
//!     to: String,
//! }
//!
//! impl pgqueuer::JobArgs for SendEmail {
//!     const ENTRYPOINT: &'static str = "send_email";
//! }
//!
//! let job = pgqueuer::NewJob::typed(&SendEmail { to: "ada@example.com".into() })?
//!     .priority(5)
//!     .dedupe_key("welcome-ada");
//! assert_eq!(job.entrypoint, "send_email");
//! assert_eq!(job.payload.as_deref(), Some(&br#"{"to":"ada@example.com"}"#[..]));
//! assert_eq!(job.headers, Some(serde_json::json!({"content-type": "application/json"})));
//! # Ok::<(), pgqueuer::Error>(())
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::handler_error::Unrecoverable;
use crate::{Error, Job, NewJob};

/// The header naming how a job's payload is encoded.
pub const CONTENT_TYPE: &str = "content-type";

/// The content type of typed jobs' payloads: UTF-8 JSON.
pub const JSON: &str = "application/json";

/// The largest result a handler may return: 1 MiB of JSON. A larger one ends the job as
/// `exception` (it is stored in the job's log row, which every dashboard reads).
pub const RESULT_LIMIT: usize = 1 << 20;

/// A job's arguments as a Rust type. The type names its entrypoint once; producers enqueue
/// values of it ([`NewJob::typed`]) and [`PgQueuer::job`](crate::PgQueuer::job) runs a
/// handler that receives them.
pub trait JobArgs: Serialize + DeserializeOwned + Send + 'static {
    /// The entrypoint its jobs run as.
    const ENTRYPOINT: &'static str;
}

impl NewJob {
    /// A job of `A::ENTRYPOINT` whose payload is `args` as JSON, with the header
    /// `content-type: application/json`. Set priority, delay, dedupe key and more headers with
    /// the builder methods. Fails only when `args` cannot be serialised (a map with non-string
    /// keys, a failing `Serialize` impl): [`Error::Invalid`].
    pub fn typed<A: JobArgs>(args: &A) -> Result<NewJob, Error> {
        let payload = serde_json::to_vec(args).map_err(|error| {
            Error::invalid(format!(
                "a {} cannot be serialised as JSON: {error}",
                std::any::type_name::<A>()
            ))
        })?;
        Ok(NewJob::new(A::ENTRYPOINT)
            .payload(payload)
            .header(CONTENT_TYPE, JSON))
    }
}

impl Job {
    /// The payload read as `A`: JSON, per the `content-type` header (absent is read as JSON;
    /// a NULL payload as JSON `null`). The error says why not, in a sentence.
    pub fn args<A: DeserializeOwned>(&self) -> Result<A, Unrecoverable> {
        let content_type = self
            .headers
            .as_ref()
            .and_then(|headers| headers.get(CONTENT_TYPE));
        match content_type {
            None => {}
            Some(Value::String(value)) if is_json(value) => {}
            Some(other) => {
                return Err(Unrecoverable::new(format!(
                    "job {} has content-type {other}, but {} is read from {JSON}",
                    self.id,
                    std::any::type_name::<A>()
                )));
            }
        }
        let read = match &self.payload {
            Some(bytes) => serde_json::from_slice(bytes),
            None => serde_json::from_value(Value::Null),
        };
        read.map_err(|error| {
            Unrecoverable::new(format!(
                "the payload of job {} is not a {} in JSON: {error}",
                self.id,
                std::any::type_name::<A>()
            ))
        })
    }
}

/// `application/json`, ignoring case and parameters (`application/json; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(JSON)
}

/// A handler's result as the detail of its successful log row: `None` for `()` (JSON null);
/// too large or not serialisable is an [`Unrecoverable`] error.
pub(crate) fn result_detail<R: Serialize>(result: &R) -> Result<Option<Value>, Unrecoverable> {
    let value = serde_json::to_value(result).map_err(|error| {
        Unrecoverable::new(format!(
            "the handler's result cannot be serialised as JSON: {error}"
        ))
    })?;
    if value.is_null() {
        return Ok(None);
    }
    let size = value.to_string().len();
    if size > RESULT_LIMIT {
        return Err(Unrecoverable::new(format!(
            "the handler's result is {size} bytes of JSON; results are limited to {RESULT_LIMIT}"
        )));
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_read_as_json() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("application/msgpack"));
        assert!(!is_json(""));
    }

    #[test]
    fn unit_results_store_nothing_and_large_ones_are_refused() {
        assert_eq!(result_detail(&()).map_err(|e| e.reason), Ok(None));
        assert_eq!(
            result_detail(&vec![1, 2]).map_err(|e| e.reason),
            Ok(Some(serde_json::json!([1, 2])))
        );
        let big = "x".repeat(RESULT_LIMIT);
        let refused = result_detail(&big).expect_err("over the limit");
        assert!(
            refused.reason.contains("limited to 1048576"),
            "{}",
            refused.reason
        );
    }
}
