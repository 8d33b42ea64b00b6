//! `Queries`: typed async wrappers over every SQL function of the extension.
//!
//! Each call is one round trip: the statements are prepared once per `Queries` (on first use)
//! and reused. Durations travel as seconds and become intervals in SQL.

use std::time::{Duration, SystemTime};

use postgres_types::ToSql;
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio_postgres::{Client, Row, Statement};
use uuid::Uuid;

use crate::Interval;
use crate::enqueue::EnqueueArgs;
use crate::job::claim_arrays;
use crate::job::{Ack, Claim, Job, JobOutcome, JobState, NewJob, OnConflict};
use crate::rows::{BacklogRow, LogRow, SummaryRow, ThroughputRow, WorkerRow};
use crate::{Capability, Error, Schema};

/// An entrypoint's fleet-wide settings for [`Queries::configure`]; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntrypointSettings {
    /// At most this many picked jobs at once (0 = unlimited).
    pub concurrency_limit: Option<i32>,
    /// Jobs started per second (0 = unlimited).
    pub rate_limit: Option<f64>,
    /// A picked job whose heartbeat is older may be re-picked.
    pub heartbeat_timeout: Option<Duration>,
    /// Attempts before an exception is final (1 = no retry).
    pub max_attempts: Option<i32>,
    /// Wait before the first retry, doubled each further retry.
    pub retry_delay: Option<Duration>,
    /// Cap of that wait.
    pub retry_delay_max: Option<Duration>,
    /// Keep the job as `failed` after its final exception instead of deleting it.
    pub hold_on_failure: Option<bool>,
    /// Announce the end of each job on channel `pgq_done`, for callers that wait for them
    /// ([`Completions`](crate::Completions)); off by default. Needs schema 0.5.0.
    pub notify_completion: Option<bool>,
}

/// How long the log and the per-minute statistics are kept ([`Queries::retention`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Log rows older than this are deleted by the maintenance; `None` keeps them forever.
    pub log: Option<Interval>,
    /// `pgq.stats` rows older than this are deleted.
    pub stats: Interval,
}

impl Retention {
    fn from_row(row: &Row) -> Result<Retention, Error> {
        Ok(Retention {
            log: row.try_get::<_, Option<String>>(0)?.map(Interval::new),
            stats: Interval::new(row.try_get::<_, String>(1)?),
        })
    }
}

/// What a crash or a failover may lose, traded for speed (`pgq.set_durability`,
/// docs/operating.md).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Every table logged (the default): nothing committed is lost.
    Durable,
    /// The log and the statistics unlogged: a crash empties them; jobs are kept.
    Balanced,
    /// The jobs unlogged too: a crash or failover loses every queued and running job.
    Volatile,
}

impl Durability {
    /// Its name in SQL.
    pub fn label(self) -> &'static str {
        match self {
            Durability::Durable => "durable",
            Durability::Balanced => "balanced",
            Durability::Volatile => "volatile",
        }
    }

    /// The mode `label` names ([`Error::Invalid`] for any other).
    pub fn from_label(label: &str) -> Result<Durability, Error> {
        match label {
            "durable" => Ok(Durability::Durable),
            "balanced" => Ok(Durability::Balanced),
            "volatile" => Ok(Durability::Volatile),
            other => Err(Error::invalid(format!(
                "durability must be durable, balanced or volatile, not {other:?}"
            ))),
        }
    }
}

/// Declares every statement `Queries` prepares, one line each: the `Call` naming it (also its
/// index in `Queries::prepared`) and its SQL.
macro_rules! statements {
    ($($call:ident = $sql:expr;)*) => {
        /// A statement of `Queries`, prepared on first use (or all at once by `prepare_all`).
        #[derive(Clone, Copy)]
        enum Call {
            $($call,)*
        }

        impl Call {
            const ALL: &'static [Call] = &[$(Call::$call,)*];
            const COUNT: usize = Call::ALL.len();

            /// What the schema needs for this statement to prepare.
            fn needs(self) -> Option<Capability> {
                match self {
                    Call::Fail => Some(Capability::Fail),
                    Call::ConfigureNotify => Some(Capability::NotifyCompletion),
                    Call::Pause | Call::Resume => Some(Capability::Pause),
                    Call::Retention | Call::SetLogRetention | Call::SetStatsRetention => {
                        Some(Capability::Retention)
                    }
                    Call::Durability | Call::SetDurability => Some(Capability::Durability),
                    Call::Backlog | Call::Workers => Some(Capability::ReadModel),
                    Call::Overview => Some(Capability::Overview),
                    Call::SchedulerServes => Some(Capability::Scheduler),
                    _ => None,
                }
            }

            fn sql(self) -> &'static str {
                match self {
                    $(Call::$call => $sql,)*
                }
            }
        }
    };
}

statements! {
    EnqueueMany = crate::enqueue::ENQUEUE_MANY;
    EnqueueOne = "SELECT pgq.enqueue($1::text, $2::bytea, $3::int, \
        make_interval(secs => $4::float8), $5::text, $6::jsonb)";
    Dequeue = "SELECT * FROM pgq.dequeue($1::text[], $2::int, $3::uuid)";
    Heartbeat = "SELECT pgq.heartbeat($1::bigint[], $2::uuid, $3::int[])";
    Ack = "SELECT pgq.ack($1::bigint[], $2::pgq.job_state[], $3::jsonb[], \
        $4::uuid, $5::int[])";
    Fail = "SELECT pgq.fail($1::bigint[], $2::jsonb[], $3::uuid, $4::int[])";
    Retry = "SELECT pgq.retry($1::bigint, make_interval(secs => $2::float8), \
        $3::text, $4::uuid, $5::int)";
    Cancel = "SELECT pgq.cancel($1::bigint[])";
    Release = "SELECT pgq.release($1::bigint[], $2::uuid, $3::int[])";
    ReleaseLost = "SELECT pgq.release_lost($1::uuid, $2::bigint[], $3::int[])";
    CancelRequested = "SELECT job_id, claim_token FROM pgq.cancel_requested($1::bigint[])";
    Lease = "SELECT extract(epoch FROM pgq.lease($1::text[]))::float8";
    Requeue = "SELECT pgq.requeue($1::bigint[])";
    Clear = "SELECT pgq.clear($1::text)";
    JobStateOf = "SELECT job_id, status, detail FROM pgq.job_status($1::bigint[])";
    Configure = "SELECT name FROM pgq.configure($1::text, $2::int, $3::float8, \
        make_interval(secs => $4::float8), $5::int, make_interval(secs => $6::float8), \
        make_interval(secs => $7::float8), $8::text)";
    ConfigureNotify = "SELECT name FROM pgq.configure($1::text, $2::int, $3::float8, \
        make_interval(secs => $4::float8), $5::int, make_interval(secs => $6::float8), \
        make_interval(secs => $7::float8), $8::text, $9::boolean)";
    Schedule = "SELECT pgq.schedule($1::text, $2::text, $3::text)";
    Unschedule = "SELECT pgq.unschedule($1::text, $2::text)";
    UnscheduleId = "SELECT pgq.unschedule_id($1::bigint)";
    Pause = "SELECT pgq.pause($1::text)";
    Resume = "SELECT pgq.resume($1::text)";
    // A fresh install has no settings row yet: the defaults (sql/maintenance.sql).
    Retention = "SELECT CASE WHEN s.singleton IS NULL THEN '7 days' \
        ELSE s.log_retention::text END, coalesce(s.stats_retention::text, '90 days') \
        FROM (SELECT) AS one LEFT JOIN pgq.settings s ON true";
    SetLogRetention = "SELECT log_retention::text, stats_retention::text \
        FROM pgq.set_log_retention($1::text::interval)";
    SetStatsRetention = "SELECT log_retention::text, stats_retention::text \
        FROM pgq.set_stats_retention($1::text::interval)";
    Durability = "SELECT pgq.durability()";
    SetDurability = "SELECT pgq.set_durability($1::text, $2::text::interval)";
    Tick = "SELECT pgq.tick()";
    SchedulerServes = "SELECT pgq._scheduler_serves()";
    // Before 0.7.0: the scheduler's backend, without asking the schema.
    SchedulerProbe = "SELECT EXISTS (SELECT FROM pg_catalog.pg_stat_activity \
        WHERE backend_type = 'pgqueuer scheduler' AND datname = current_database())";
    Summary = "SELECT entrypoint, status, priority, count, oldest \
        FROM pgq.queue_summary ORDER BY entrypoint, status, priority DESC";
    Backlog = "SELECT entrypoint, queued, ready, picked, held, oldest_queued_seconds \
        FROM pgq.backlog ORDER BY entrypoint";
    Workers = "SELECT worker_id, jobs, entrypoints, oldest_heartbeat, last_heartbeat \
        FROM pgq.workers ORDER BY worker_id";
    Overview = "SELECT pgq.overview(make_interval(secs => $1::float8))::text";
    Throughput = "SELECT second, entrypoint, status, count FROM pgq.throughput \
        ORDER BY second, entrypoint, status";
    Log = "SELECT id, job_id, entrypoint, status, attempts, detail, created \
        FROM pgq.log WHERE $1::text IS NULL OR entrypoint = $1 ORDER BY id DESC LIMIT $2::bigint";
    PurgeLog = "SELECT pgq.purge_log(make_interval(secs => $1::float8))";
    Begin = "BEGIN";
    Commit = "COMMIT";
}

/// Typed calls of the extension's SQL API over one connection.
///
/// ```no_run
/// # async fn example() -> Result<(), pgqueuer::Error> {
/// use pgqueuer::{NewJob, OnConflict, Queries};
/// let q = Queries::new(pgqueuer::connect_from_env().await?);
/// q.enqueue(["fetch"], [b"hello world".to_vec()], [0]).await?;
/// q.enqueue_many(&[NewJob::new("mail").payload("hi").dedupe_key("welcome-7")], OnConflict::Skip)
///     .await?;
/// # Ok(()) }
/// ```
pub struct Queries {
    client: Client,
    prepared: [OnceCell<Statement>; Call::COUNT],
    /// The database's schema, read on first need.
    schema: OnceCell<Schema>,
}

fn seconds(duration: Option<Duration>) -> Option<f64> {
    duration.map(|duration| duration.as_secs_f64())
}

impl Queries {
    /// Wraps a connection (from [`crate::connect`] or [`crate::connect_from_env`]).
    pub fn new(client: Client) -> Queries {
        Queries {
            client,
            prepared: std::array::from_fn(|_| OnceCell::new()),
            schema: OnceCell::new(),
        }
    }

    /// The underlying connection, for SQL of your own (in the same transaction, say).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The database's pgqueuer schema: its version and what it can do, read on first use.
    pub async fn schema(&self) -> Result<&Schema, Error> {
        self.schema
            .get_or_try_init(|| Schema::read(&self.client))
            .await
    }

    /// Checks that the database holds a pgqueuer schema of a version this client works with
    /// ([`SCHEMA_VERSIONS`](crate::SCHEMA_VERSIONS)) and returns that version;
    /// [`Error::Schema`] otherwise.
    pub async fn check_schema(&self) -> Result<String, Error> {
        self.schema().await?.supported().map(str::to_string)
    }

    /// Prepares every statement now rather than on first use (the worker runtime does this at
    /// start, so that pipelined calls go out in the order they are made). Statements the
    /// schema has no function for are left out.
    pub async fn prepare_all(&self) -> Result<(), Error> {
        for &call in Call::ALL {
            if let Some(capability) = call.needs()
                && !self.schema().await?.has(capability)
            {
                continue;
            }
            self.statement(call).await?;
        }
        Ok(())
    }

    async fn statement(&self, call: Call) -> Result<&Statement, Error> {
        let cell = &self.prepared[call as usize];
        cell.get_or_try_init(|| self.client.prepare(call.sql()))
            .await
            .map_err(Error::from_db)
    }

    async fn one_row(&self, call: Call, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error> {
        let statement = self.statement(call).await?;
        self.client
            .query_one(statement, params)
            .await
            .map_err(Error::from_db)
    }

    async fn rows(&self, call: Call, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
        let statement = self.statement(call).await?;
        self.client
            .query(statement, params)
            .await
            .map_err(Error::from_db)
    }

    async fn count(&self, call: Call, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        let n: i64 = self.one_row(call, params).await?.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The quick start's shape: one job per entrypoint, with payloads and priorities in the
    /// same order. Returns the ids in input order. A taken dedupe key cannot happen here (no keys).
    pub async fn enqueue<E, P, R>(
        &self,
        entrypoints: E,
        payloads: P,
        priorities: R,
    ) -> Result<Vec<i64>, Error>
    where
        E: IntoIterator,
        E::Item: Into<String>,
        P: IntoIterator<Item = Vec<u8>>,
        R: IntoIterator<Item = i32>,
    {
        let mut payloads = payloads.into_iter();
        let mut priorities = priorities.into_iter();
        let jobs: Vec<NewJob> = entrypoints
            .into_iter()
            .map(|entrypoint| NewJob {
                entrypoint: entrypoint.into(),
                payload: payloads.next(),
                priority: priorities.next().unwrap_or(0),
                ..NewJob::default()
            })
            .collect();
        let ids = self.enqueue_many(&jobs, OnConflict::Raise).await?;
        Ok(ids.into_iter().flatten().collect())
    }

    /// Enqueues a batch in one statement. Returns the ids in input order; with
    /// [`OnConflict::Skip`], `None` where a dedupe key was taken.
    pub async fn enqueue_many(
        &self,
        jobs: &[NewJob],
        on_conflict: OnConflict,
    ) -> Result<Vec<Option<i64>>, Error> {
        // An `enqueue` span: the jobs carry its trace context, so their handlers are its
        // children (crate::trace).
        let span = tracing::info_span!("enqueue", jobs = jobs.len());
        let args = span.in_scope(|| EnqueueArgs::of(jobs, on_conflict));
        let row =
            tracing::Instrument::instrument(self.one_row(Call::EnqueueMany, &args.params()), span)
                .await?;
        Ok(row.try_get(0)?)
    }

    /// Claims up to `batch_size` jobs of these entrypoints, best first.
    pub async fn dequeue(
        &self,
        entrypoints: &[&str],
        batch_size: i32,
        worker_id: Option<Uuid>,
    ) -> Result<Vec<Job>, Error> {
        self.rows(Call::Dequeue, &[&entrypoints, &batch_size, &worker_id])
            .await?
            .iter()
            .map(Job::from_row)
            .collect()
    }

    /// Reports how claimed jobs ended and claims up to `batch_size` more, in one transaction
    /// and one round trip: `BEGIN`, `pgq.ack`, `pgq.dequeue` and `COMMIT` are sent together
    /// (pipelined). The claim runs after the ack in the same transaction, so it counts the
    /// seats the ack freed and sees the jobs it put back; one commit (one WAL flush) covers
    /// both. If anything fails, nothing of it happened. Returns (how many acks changed a job,
    /// the claimed jobs). With no acks it is a plain `dequeue`; with `batch_size` 0 a plain
    /// `ack`.
    pub async fn ack_and_dequeue(
        &self,
        acks: &[Ack],
        entrypoints: &[&str],
        batch_size: i32,
        worker_id: Option<Uuid>,
    ) -> Result<(u64, Vec<Job>), Error> {
        if acks.is_empty() && batch_size == 0 {
            return Ok((0, Vec::new()));
        }
        if acks.is_empty() {
            return Ok((0, self.dequeue(entrypoints, batch_size, worker_id).await?));
        }
        if batch_size == 0 {
            return Ok((self.ack(acks, worker_id).await?, Vec::new()));
        }
        // Prepared before anything is sent, so that the four go out in this order.
        let begin = self.statement(Call::Begin).await?;
        let ack = self.statement(Call::Ack).await?;
        let dequeue = self.statement(Call::Dequeue).await?;
        let commit = self.statement(Call::Commit).await?;
        let claims: Vec<Claim> = acks.iter().map(|ack| ack.claim).collect();
        let (ids, tokens) = claim_arrays(&claims);
        let statuses: Vec<&JobState> = acks.iter().map(|ack| &ack.status).collect();
        let details: Vec<Option<&Value>> = acks.iter().map(|ack| ack.detail.as_ref()).collect();
        let client = &self.client;
        let ack_params: [&(dyn ToSql + Sync); 5] = [&ids, &statuses, &details, &worker_id, &tokens];
        let dequeue_params: [&(dyn ToSql + Sync); 3] = [&entrypoints, &batch_size, &worker_id];
        let (began, acked, claimed, committed) = tokio::join!(
            client.execute(begin, &[]),
            client.query_one(ack, &ack_params),
            client.query(dequeue, &dequeue_params),
            client.execute(commit, &[]),
        );
        // The first failure is the cause; the later statements failed because of it (a
        // COMMIT of a failed transaction rolls back without an error of its own).
        began.map_err(Error::from_db)?;
        let acked: i64 = acked.map_err(Error::from_db)?.try_get(0)?;
        let claimed = claimed.map_err(Error::from_db)?;
        committed.map_err(Error::from_db)?;
        let jobs = claimed
            .iter()
            .map(Job::from_row)
            .collect::<Result<_, _>>()?;
        Ok((u64::try_from(acked).unwrap_or(0), jobs))
    }

    /// Refreshes the heartbeat of picked jobs: of these claims (and only jobs `worker_id`
    /// holds, if given). Returns how many were refreshed.
    pub async fn heartbeat(&self, claims: &[Claim], worker_id: Option<Uuid>) -> Result<u64, Error> {
        let (ids, tokens) = claim_arrays(claims);
        self.count(Call::Heartbeat, &[&ids, &worker_id, &tokens])
            .await
    }

    /// Reports how claimed jobs ended, in one statement. Returns how many changed.
    pub async fn ack(&self, acks: &[Ack], worker_id: Option<Uuid>) -> Result<u64, Error> {
        let claims: Vec<Claim> = acks.iter().map(|ack| ack.claim).collect();
        let (ids, tokens) = claim_arrays(&claims);
        let statuses: Vec<&JobState> = acks.iter().map(|ack| &ack.status).collect();
        let details: Vec<Option<&Value>> = acks.iter().map(|ack| ack.detail.as_ref()).collect();
        self.count(Call::Ack, &[&ids, &statuses, &details, &worker_id, &tokens])
            .await
    }

    /// Ends claimed jobs at once as failures, without retrying them whatever `max_attempts`
    /// says (`pgq.fail`): for errors no retry can mend. Each `(claim, detail)` ends like an
    /// exception on its last attempt (deleted with an `exception` log row, or held when the
    /// entrypoint holds failures). Returns how many were taken. On a schema older than 0.5.0,
    /// which has no `pgq.fail`, they are acked as `exception` instead (retried per
    /// `max_attempts`).
    pub async fn fail(
        &self,
        failures: &[(Claim, Option<Value>)],
        worker_id: Option<Uuid>,
    ) -> Result<u64, Error> {
        if !self.schema().await?.has(Capability::Fail) {
            tracing::warn!(
                "the pgqueuer schema has no pgq.fail (before 0.5.0): acking as exception"
            );
            let acks: Vec<Ack> = failures
                .iter()
                .map(|(claim, detail)| Ack {
                    claim: *claim,
                    status: JobState::Exception,
                    detail: detail.clone(),
                })
                .collect();
            return self.ack(&acks, worker_id).await;
        }
        let claims: Vec<Claim> = failures.iter().map(|(claim, _)| *claim).collect();
        let (ids, tokens) = claim_arrays(&claims);
        let details: Vec<Option<&Value>> = failures.iter().map(|(_, d)| d.as_ref()).collect();
        self.count(Call::Fail, &[&ids, &details, &worker_id, &tokens])
            .await
    }

    /// Asks for a picked job to run again after `delay`. False when it is not (or no longer)
    /// in that claim, or not held by `worker_id`.
    pub async fn retry(
        &self,
        claim: Claim,
        delay: Duration,
        reason: Option<&str>,
        worker_id: Option<Uuid>,
    ) -> Result<bool, Error> {
        let row = self
            .one_row(
                Call::Retry,
                &[
                    &claim.id,
                    &delay.as_secs_f64(),
                    &reason,
                    &worker_id,
                    &claim.token,
                ],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Gives back picked jobs this worker will not finish (on shutdown): queued again at once,
    /// attempts unchanged. Returns how many.
    pub async fn release(&self, claims: &[Claim], worker_id: Option<Uuid>) -> Result<u64, Error> {
        let (ids, tokens) = claim_arrays(claims);
        self.count(Call::Release, &[&ids, &worker_id, &tokens])
            .await
    }

    /// After a lost connection: gives back every job `worker_id` holds but the `held` claims
    /// (claims whose reply never arrived). Every held claim needs its token. Returns how many.
    pub async fn release_lost(&self, worker_id: Uuid, held: &[Claim]) -> Result<u64, Error> {
        let ids: Vec<i64> = held.iter().map(|claim| claim.id).collect();
        let tokens: Vec<Option<i32>> = held.iter().map(|claim| claim.token).collect();
        self.count(Call::ReleaseLost, &[&worker_id, &ids, &tokens])
            .await
    }

    /// Which of these jobs are running with their cancel requested, and in which claim.
    pub async fn cancel_requested(&self, ids: &[i64]) -> Result<Vec<Claim>, Error> {
        self.rows(Call::CancelRequested, &[&ids])
            .await?
            .iter()
            .map(|row| {
                Ok(Claim {
                    id: row.try_get(0)?,
                    token: Some(row.try_get(1)?),
                })
            })
            .collect()
    }

    /// The shortest lease (heartbeat_timeout) of these entrypoints.
    pub async fn lease(&self, entrypoints: &[&str]) -> Result<Duration, Error> {
        let seconds: f64 = self
            .one_row(Call::Lease, &[&entrypoints])
            .await?
            .try_get(0)?;
        Ok(Duration::from_secs_f64(seconds.max(0.0)))
    }

    /// Cancels queued, picked or held jobs. Returns how many.
    pub async fn cancel(&self, ids: &[i64]) -> Result<u64, Error> {
        self.count(Call::Cancel, &[&ids]).await
    }

    /// Puts held (failed) jobs back in the queue. Returns how many.
    pub async fn requeue(&self, ids: &[i64]) -> Result<u64, Error> {
        self.count(Call::Requeue, &[&ids]).await
    }

    /// Removes the queued jobs of one entrypoint, or of all. Returns how many.
    pub async fn clear(&self, entrypoint: Option<&str>) -> Result<u64, Error> {
        self.count(Call::Clear, &[&entrypoint]).await
    }

    /// The latest status of each job, with its detail (a successful job's result, an error, a
    /// reason), ordered by id; unknown ids are left out.
    pub async fn job_status(&self, ids: &[i64]) -> Result<Vec<JobOutcome>, Error> {
        self.rows(Call::JobStateOf, &[&ids])
            .await?
            .iter()
            .map(JobOutcome::from_row)
            .collect()
    }

    /// Waits until every job in `ids` has ended (`successful`, `exception`, `canceled`,
    /// `deleted`, or held as `failed`) and returns their outcomes, ordered by id. Ids that
    /// `pgq.job_status` does not know (never committed, or purged) are left out at once.
    ///
    /// It polls `pgq.job_status` for all of them in one query, first after 10 ms, then twice
    /// as long each time up to `max_poll`. [`Completions`](crate::Completions) waits on
    /// notifications instead, for entrypoints configured with `notify_completion`.
    pub async fn wait_for(
        &self,
        ids: &[i64],
        max_poll: Duration,
    ) -> Result<Vec<JobOutcome>, Error> {
        let mut wait = Duration::from_millis(10).min(max_poll);
        loop {
            let outcomes = self.job_status(ids).await?;
            if outcomes.iter().all(JobOutcome::is_finished) {
                return Ok(outcomes);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(max_poll);
        }
    }

    /// Creates or updates an entrypoint's fleet-wide settings.
    pub async fn configure(
        &self,
        entrypoint: &str,
        settings: &EntrypointSettings,
    ) -> Result<(), Error> {
        let on_failure = settings
            .hold_on_failure
            .map(|hold| if hold { "hold" } else { "delete" });
        let (heartbeat, retry_delay, retry_max) = (
            seconds(settings.heartbeat_timeout),
            seconds(settings.retry_delay),
            seconds(settings.retry_delay_max),
        );
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &entrypoint,
            &settings.concurrency_limit,
            &settings.rate_limit,
            &heartbeat,
            &settings.max_attempts,
            &retry_delay,
            &retry_max,
            &on_failure,
        ];
        // Without the new setting, the call that schemas before 0.5.0 know.
        let call = match &settings.notify_completion {
            None => Call::Configure,
            Some(notify) => {
                self.schema()
                    .await?
                    .requires(Capability::NotifyCompletion)?;
                params.push(notify);
                Call::ConfigureNotify
            }
        };
        self.one_row(call, &params).await.map(drop)
    }

    /// Registers a cron schedule; returns its id.
    pub async fn schedule(
        &self,
        entrypoint: &str,
        expression: &str,
        timezone: &str,
    ) -> Result<i64, Error> {
        let row = self
            .one_row(Call::Schedule, &[&entrypoint, &expression, &timezone])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Removes one schedule of an entrypoint, or all of them. Returns how many.
    pub async fn unschedule(
        &self,
        entrypoint: &str,
        expression: Option<&str>,
    ) -> Result<u64, Error> {
        self.count(Call::Unschedule, &[&entrypoint, &expression])
            .await
    }

    /// Whether a scheduler (the extension's background worker) serves this database, firing
    /// schedules and running the maintenance; when none does, the runtime calls
    /// [`tick`](Queries::tick) itself. Asks `pgq._scheduler_serves()` (0.7.0 on), and on older
    /// schemas looks for the scheduler's backend itself.
    pub async fn scheduler_serves(&self) -> Result<bool, Error> {
        let call = match self.schema().await?.has(Capability::Scheduler) {
            true => Call::SchedulerServes,
            false => Call::SchedulerProbe,
        };
        Ok(self.one_row(call, &[]).await?.try_get(0)?)
    }

    /// Fires due schedules; returns the next due time of schedules and deferred jobs.
    pub async fn tick(&self) -> Result<Option<SystemTime>, Error> {
        Ok(self.one_row(Call::Tick, &[]).await?.try_get(0)?)
    }

    /// Live jobs by entrypoint, status and priority.
    pub async fn queue_summary(&self) -> Result<Vec<SummaryRow>, Error> {
        self.rows(Call::Summary, &[])
            .await?
            .iter()
            .map(|row| {
                Ok(SummaryRow {
                    entrypoint: row.try_get(0)?,
                    status: row.try_get(1)?,
                    priority: row.try_get(2)?,
                    count: row.try_get(3)?,
                    oldest: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// The latest `limit` log rows, newest first, of one entrypoint or of all.
    pub async fn log(&self, entrypoint: Option<&str>, limit: i64) -> Result<Vec<LogRow>, Error> {
        self.rows(Call::Log, &[&entrypoint, &limit])
            .await?
            .iter()
            .map(|row| {
                Ok(LogRow {
                    id: row.try_get(0)?,
                    job_id: row.try_get(1)?,
                    entrypoint: row.try_get(2)?,
                    status: row.try_get(3)?,
                    attempts: row.try_get(4)?,
                    detail: row.try_get(5)?,
                    created: row.try_get(6)?,
                })
            })
            .collect()
    }

    /// Enqueues one job with `pgq.enqueue` (the single-job call other languages use) and
    /// returns its id; a taken dedupe key is [`Error::Duplicate`]. Headers gain the current
    /// trace context as with [`enqueue_many`](Queries::enqueue_many).
    pub async fn enqueue_one(&self, job: &NewJob) -> Result<i64, Error> {
        let span = tracing::info_span!("enqueue", jobs = 1);
        let args = span.in_scope(|| EnqueueArgs::of(std::slice::from_ref(job), OnConflict::Raise));
        let one = args.one();
        let row =
            tracing::Instrument::instrument(self.one_row(Call::EnqueueOne, &one), span).await?;
        Ok(row.try_get(0)?)
    }

    /// Removes one schedule by id. Returns how many (0 or 1).
    pub async fn unschedule_id(&self, schedule_id: i64) -> Result<u64, Error> {
        self.count(Call::UnscheduleId, &[&schedule_id]).await
    }

    /// Stops claiming an entrypoint's jobs (running ones finish; enqueueing goes on). False
    /// when it was paused already. Needs [`Capability::Pause`].
    pub async fn pause(&self, entrypoint: &str) -> Result<bool, Error> {
        self.schema().await?.requires(Capability::Pause)?;
        Ok(self
            .one_row(Call::Pause, &[&entrypoint])
            .await?
            .try_get(0)?)
    }

    /// Claims a paused entrypoint's jobs again. False when it was not paused.
    pub async fn resume(&self, entrypoint: &str) -> Result<bool, Error> {
        self.schema().await?.requires(Capability::Pause)?;
        Ok(self
            .one_row(Call::Resume, &[&entrypoint])
            .await?
            .try_get(0)?)
    }

    /// How long the log and the statistics are kept. Needs [`Capability::Retention`].
    pub async fn retention(&self) -> Result<Retention, Error> {
        self.schema().await?.requires(Capability::Retention)?;
        Retention::from_row(&self.one_row(Call::Retention, &[]).await?)
    }

    /// Keeps log rows for `retention` (`None`: forever); the maintenance deletes older ones.
    /// From 0 to 100 years. Returns the retention now.
    pub async fn set_log_retention(
        &self,
        retention: Option<&Interval>,
    ) -> Result<Retention, Error> {
        self.schema().await?.requires(Capability::Retention)?;
        let text = retention.map(Interval::as_str);
        Retention::from_row(&self.one_row(Call::SetLogRetention, &[&text]).await?)
    }

    /// Keeps the per-minute statistics for `retention` (1 hour to 100 years). Returns the
    /// retention now.
    pub async fn set_stats_retention(&self, retention: &Interval) -> Result<Retention, Error> {
        self.schema().await?.requires(Capability::Retention)?;
        let text = retention.as_str();
        Retention::from_row(&self.one_row(Call::SetStatsRetention, &[&text]).await?)
    }

    /// The durability mode. Needs [`Capability::Durability`].
    pub async fn durability(&self) -> Result<Durability, Error> {
        self.schema().await?.requires(Capability::Durability)?;
        let label: String = self.one_row(Call::Durability, &[]).await?.try_get(0)?;
        Durability::from_label(&label)
    }

    /// Switches to `mode`, waiting at most `lock_timeout` for the tables' locks (each table
    /// that changes is rewritten). Returns the previous mode.
    pub async fn set_durability(
        &self,
        mode: Durability,
        lock_timeout: &Interval,
    ) -> Result<Durability, Error> {
        self.schema().await?.requires(Capability::Durability)?;
        let (label, timeout) = (mode.label(), lock_timeout.as_str());
        let previous: String = self
            .one_row(Call::SetDurability, &[&label, &timeout])
            .await?
            .try_get(0)?;
        Durability::from_label(&previous)
    }

    /// Each entrypoint's live jobs (`pgq.backlog`). Needs [`Capability::ReadModel`].
    pub async fn backlog(&self) -> Result<Vec<BacklogRow>, Error> {
        self.schema().await?.requires(Capability::ReadModel)?;
        self.rows(Call::Backlog, &[])
            .await?
            .iter()
            .map(|row| {
                Ok(BacklogRow {
                    entrypoint: row.try_get(0)?,
                    queued: row.try_get(1)?,
                    ready: row.try_get(2)?,
                    picked: row.try_get(3)?,
                    held: row.try_get(4)?,
                    oldest_queued_seconds: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// The workers running jobs now (`pgq.workers`). Needs [`Capability::ReadModel`].
    pub async fn workers(&self) -> Result<Vec<WorkerRow>, Error> {
        self.schema().await?.requires(Capability::ReadModel)?;
        self.rows(Call::Workers, &[])
            .await?
            .iter()
            .map(|row| {
                Ok(WorkerRow {
                    worker_id: row.try_get(0)?,
                    jobs: row.try_get(1)?,
                    entrypoints: row.try_get(2)?,
                    oldest_heartbeat: row.try_get(3)?,
                    last_heartbeat: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// The read model of the dashboards and metrics (`pgq.overview`): one JSON document with
    /// the live jobs per entrypoint, outcomes and rates over `span` (1 second to 100 years),
    /// recent exceptions, held and running jobs, workers and schedules, read without payloads
    /// and without scanning the log (sql/overview.sql has the fields). Needs
    /// [`Capability::Overview`]; `pgq_monitor` may call it.
    pub async fn overview(&self, span: Duration) -> Result<String, Error> {
        self.schema().await?.requires(Capability::Overview)?;
        let seconds = span.as_secs_f64();
        Ok(self
            .one_row(Call::Overview, &[&seconds])
            .await?
            .try_get(0)?)
    }

    /// Outcomes per second over the last hour (`pgq.throughput`, which reads the log).
    pub async fn throughput(&self) -> Result<Vec<ThroughputRow>, Error> {
        self.rows(Call::Throughput, &[])
            .await?
            .iter()
            .map(|row| {
                Ok(ThroughputRow {
                    second: row.try_get(0)?,
                    entrypoint: row.try_get(1)?,
                    status: row.try_get(2)?,
                    count: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Deletes log rows older than `older_than`. Returns how many.
    pub async fn purge_log(&self, older_than: Duration) -> Result<u64, Error> {
        self.count(Call::PurgeLog, &[&older_than.as_secs_f64()])
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Queries` is the one gateway to the SQL API: every public function of `sql/` (no
    /// leading `_`) and every view is called by one of its statements (or by `Schema`, which
    /// reads `pgq.version()`). A function added to `sql/` without a method fails here.
    #[test]
    fn every_public_function_and_view_has_a_call() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let tree = pgqueuer_release::Tree::read(&root).expect("the checkout's sql/");
        let mut statements: Vec<&str> = Call::ALL.iter().map(|call| call.sql()).collect();
        statements.push(crate::schema::VERSION);
        let mut public = Vec::new();
        for name in pgqueuer_release::SQL_FILES {
            let text = tree
                .file(&pgqueuer_release::sql_path(name))
                .expect("a file of sql/");
            for statement in pgqueuer_release::statements(text) {
                let words: Vec<&str> = statement.split_whitespace().take(3).collect();
                let kind = match words.as_slice() {
                    ["CREATE", "FUNCTION", _] => "(",
                    ["CREATE", "VIEW", _] => " ",
                    _ => continue,
                };
                let object = words[2].split('(').next().unwrap_or_default();
                if object.starts_with("pgq.") && !object.starts_with("pgq._") {
                    public.push(format!("{object}{kind}"));
                }
            }
        }
        assert!(public.len() > 30, "the public API found: {public:?}");
        let missing: Vec<&String> = public
            .iter()
            .filter(|object| !statements.iter().any(|sql| sql.contains(object.as_str())))
            .collect();
        assert!(
            missing.is_empty(),
            "public functions and views no statement of Queries calls: {missing:?}"
        );
    }
}
