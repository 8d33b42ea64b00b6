// The graphile-worker peer of pgq-bench (`--graphile-modules DIR`): enqueues N no-op jobs with
// `addJobs` in batches, then drains them with graphile-worker's runner set up as its docs
// recommend for throughput (local queue, batched completion), and prints one line of JSON.
//
//   node graphile-worker.cjs DSN JOBS ENQUEUE_BATCH
//
// graphile-worker must be resolvable through NODE_PATH (pgq-bench sets it). It installs its own
// schema, graphile_worker, in the same database.
"use strict";
const { run, makeWorkerUtils, Logger } = require("graphile-worker");

// Silent: graphile-worker logs every job at level info by default, which a benchmark would
// measure instead of the queue.
const quiet = new Logger(() => () => {});

async function main() {
  const [dsn, jobsArg, batchArg] = process.argv.slice(2);
  const jobs = Number(jobsArg);
  const batch = Number(batchArg);
  const utils = await makeWorkerUtils({ connectionString: dsn, logger: quiet });
  await utils.migrate();
  const count = async () =>
    Number(
      (await utils.withPgClient((c) => c.query("SELECT count(*) FROM graphile_worker._private_jobs")))
        .rows[0].count,
    );
  await utils.withPgClient((c) => c.query("DELETE FROM graphile_worker._private_jobs"));
  await utils.withPgClient((c) => c.query("VACUUM ANALYZE graphile_worker._private_jobs"));

  const enqueueStart = process.hrtime.bigint();
  for (let i = 0; i < jobs; i += batch) {
    const specs = [];
    for (let j = i; j < Math.min(jobs, i + batch); j++) {
      specs.push({ identifier: "noop", payload: { user: 12345 } });
    }
    await utils.addJobs(specs);
  }
  const enqueueSeconds = Number(process.hrtime.bigint() - enqueueStart) / 1e9;
  await utils.withPgClient((c) => c.query("VACUUM ANALYZE graphile_worker._private_jobs"));
  await utils.withPgClient((c) => c.query("CHECKPOINT"));

  let handled = 0;
  let allHandled;
  const handledAll = new Promise((resolve) => (allHandled = resolve));
  const drainStart = process.hrtime.bigint();
  const runner = await run({
    connectionString: dsn,
    concurrency: 24,
    noHandleSignals: true,
    pollInterval: 1000,
    logger: quiet,
    taskList: {
      noop: async () => {
        handled += 1;
        if (handled >= jobs) allHandled();
      },
    },
    preset: {
      worker: {
        maxPoolSize: 25,
        localQueue: { size: 100 },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      },
    },
  });
  await handledAll;
  await runner.stop();
  const drainSeconds = Number(process.hrtime.bigint() - drainStart) / 1e9;
  const left = await count();
  await utils.release();
  const path = require("path");
  const fs = require("fs");
  const manifest = path.join(path.dirname(require.resolve("graphile-worker")), "..", "package.json");
  const version = JSON.parse(fs.readFileSync(manifest, "utf8")).version;
  console.log(
    JSON.stringify({
      version,
      jobs,
      enqueue_seconds: enqueueSeconds,
      drain_seconds: drainSeconds,
      handled,
      left,
    }),
  );
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
