//! Enqueueing through any client, a transaction included, so that jobs commit or roll back
//! with the caller's own rows: the main reason to keep jobs in PostgreSQL.
//!
//! ```no_run
//! # async fn example(client: &mut pgqueuer::tokio_postgres::Client) -> Result<(), pgqueuer::Error> {
//! use pgqueuer::{NewJob, OnConflict, enqueue_in};
//! let tx = client.transaction().await?;
//! tx.execute("INSERT INTO orders (id) VALUES (42)", &[]).await?;
//! enqueue_in(&tx, &[NewJob::new("ship_order").payload("42")], OnConflict::Raise).await?;
//! tx.commit().await?; // the order and its job, or neither
//! # Ok(()) }
//! ```
//!
//! The `enqueued` notification is part of the transaction too: workers hear of the job when it
//! commits, and never when it rolls back.

use std::borrow::Cow;

use postgres_types::ToSql;
use serde_json::Value;
use tokio_postgres::GenericClient;

use crate::Error;
use crate::job::{NewJob, OnConflict};

/// The statement that enqueues a batch; `Queries` prepares it too.
pub(crate) const ENQUEUE_MANY: &str = "SELECT pgq.enqueue_many($1::text[], $2::bytea[], $3::int[], \
        ARRAY(SELECT make_interval(secs => s) FROM unnest($4::float8[]) WITH ORDINALITY AS u(s, i) ORDER BY i), \
        $5::text[], $6::jsonb[], $7::text)";

/// The arguments of `pgq.enqueue_many` for a batch, borrowed from it (headers that gain the
/// current trace context, `crate::trace`, are copies).
pub(crate) struct EnqueueArgs<'a> {
    entrypoints: Vec<&'a str>,
    payloads: Vec<Option<&'a [u8]>>,
    priorities: Vec<i32>,
    delays: Vec<Option<f64>>,
    keys: Vec<Option<&'a str>>,
    headers: Vec<Option<Headers<'a>>>,
    on_conflict: &'static str,
}

impl<'a> EnqueueArgs<'a> {
    pub(crate) fn of(jobs: &'a [NewJob], on_conflict: OnConflict) -> EnqueueArgs<'a> {
        EnqueueArgs {
            entrypoints: jobs.iter().map(|job| job.entrypoint.as_str()).collect(),
            payloads: jobs.iter().map(|job| job.payload.as_deref()).collect(),
            priorities: jobs.iter().map(|job| job.priority).collect(),
            delays: jobs
                .iter()
                .map(|job| job.delay.map(|delay| delay.as_secs_f64()))
                .collect(),
            keys: jobs.iter().map(|job| job.dedupe_key.as_deref()).collect(),
            headers: {
                let trace = crate::trace::current_headers();
                jobs.iter()
                    .map(|job| {
                        let own = job.headers.as_ref();
                        match trace
                            .as_ref()
                            .and_then(|trace| crate::trace::inject(own, trace))
                        {
                            Some(with_trace) => Some(Headers(Cow::Owned(with_trace))),
                            None => own.map(|own| Headers(Cow::Borrowed(own))),
                        }
                    })
                    .collect()
            },
            on_conflict: match on_conflict {
                OnConflict::Raise => "raise",
                OnConflict::Skip => "skip",
            },
        }
    }

    /// The parameters of `pgq.enqueue` for the first job (`Queries::enqueue_one`).
    pub(crate) fn one(&self) -> [&(dyn ToSql + Sync); 6] {
        [
            &self.entrypoints[0],
            &self.payloads[0],
            &self.priorities[0],
            &self.delays[0],
            &self.keys[0],
            &self.headers[0],
        ]
    }

    /// The statement's parameters, in order.
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 7] {
        [
            &self.entrypoints,
            &self.payloads,
            &self.priorities,
            &self.delays,
            &self.keys,
            &self.headers,
            &self.on_conflict,
        ]
    }
}

/// A job's headers: the caller's, or a copy with the trace context added.
#[derive(Debug)]
struct Headers<'a>(Cow<'a, Value>);

impl ToSql for Headers<'_> {
    fn to_sql(
        &self,
        ty: &postgres_types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.as_ref().to_sql(ty, out)
    }

    fn accepts(ty: &postgres_types::Type) -> bool {
        <Value as ToSql>::accepts(ty)
    }

    postgres_types::to_sql_checked!();
}

/// Enqueues `jobs` through `client`: a `tokio_postgres::Client`, a `Transaction`, or anything
/// else that is a [`GenericClient`]. In a transaction, the jobs (and the notification that
/// wakes workers) exist only if it commits. Returns the ids in input order; with
/// [`OnConflict::Skip`], `None` where a dedupe key was taken. One statement, not prepared
/// ahead: two round trips (the `Queries` methods use prepared statements, one).
pub async fn enqueue_in<C>(
    client: &C,
    jobs: &[NewJob],
    on_conflict: OnConflict,
) -> Result<Vec<Option<i64>>, Error>
where
    C: GenericClient + Sync,
{
    // An `enqueue` span: the jobs carry its trace context (crate::trace).
    let span = tracing::info_span!("enqueue", jobs = jobs.len());
    let args = span.in_scope(|| EnqueueArgs::of(jobs, on_conflict));
    let row = tracing::Instrument::instrument(client.query_one(ENQUEUE_MANY, &args.params()), span)
        .await
        .map_err(Error::from_db)?;
    Ok(row.try_get(0)?)
}
