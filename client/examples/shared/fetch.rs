//! The quick start's job type, shared by `producer` and `consumer`.

use serde::{Deserialize, Serialize};

/// Fetch a URL: the arguments of a `fetch` job, stored as JSON in its payload.
#[derive(Debug, Serialize, Deserialize)]
pub struct Fetch {
    pub url: String,
}

impl pgqueuer::JobArgs for Fetch {
    const ENTRYPOINT: &'static str = "fetch";
}
