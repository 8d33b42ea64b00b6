//! Releases and installs: the release scripts' discipline, the catalog comparison every
//! upgrade test relies on, installing the extension, SQL-only installs, and how a client meets
//! an older or a newer schema.

mod catalog;
mod install;
mod schema;
mod scripts;
mod sql_only;
