//! The SQL API's verbs, called as any language calls them (and through `Queries`): enqueue,
//! claim, report, cancel, limits, notifications, status, settings, claims under a pinned xmin,
//! and what no role or search path may subvert.

mod ack;
mod cancel;
mod configure;
mod dequeue;
mod enqueue;
mod limits;
mod notify;
mod overview;
mod pinned;
mod queries;
mod security;
mod status;
