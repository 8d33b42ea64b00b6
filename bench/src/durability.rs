//! Scenario durability: the drain of the `drain` scenario (the runtime's defaults, no-op
//! handler) in each durability mode (`pgq.set_durability`: durable, balanced with the log
//! unlogged, volatile with the jobs unlogged too), beside the raw claim+ack loop in the same
//! mode. Only on the throwaway cluster: switching modes rewrites a database's queue tables.

use crate::Params;
use crate::baseline::Baseline;
use crate::drain::{baseline_drain, runtime_drain};
use crate::report::Measure;
use crate::target::{Target, db};

pub async fn run(target: &Target, params: &Params) -> Result<Vec<Measure>, String> {
    if !target.owned {
        eprintln!("pgq-bench: the durability scenario runs only on its own throwaway cluster");
        return Ok(Vec::new());
    }
    let admin = target.connect().await?;
    let mut measures = Vec::new();
    for mode in ["durable", "balanced", "volatile"] {
        admin
            .execute("SELECT pgq.set_durability($1)", &[&mode])
            .await
            .map_err(db)?;
        let variant = format!(" ({mode})");
        let raw = baseline_drain(target, &target.config, params, &variant, Baseline::Raw).await?;
        let (ours, detail) = runtime_drain(target, &target.config, params, &variant, false).await?;
        measures.push(
            Measure::rate(format!("durability{variant}"), params.jobs, ours)
                .raw(params.jobs as f64 / raw)
                .detail(detail),
        );
    }
    admin
        .execute("SELECT pgq.set_durability('durable')", &[])
        .await
        .map_err(db)?;
    Ok(measures)
}
