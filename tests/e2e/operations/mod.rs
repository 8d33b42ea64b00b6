//! Operating a queue: backups, durability modes, the maintenance (retention, the statistics
//! rollup), pausing an entrypoint.

mod backup;
mod durability;
mod maintenance;
mod pause;
