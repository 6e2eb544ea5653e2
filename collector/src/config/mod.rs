//! The collector's configuration, in one place: defaults, then a TOML file, then environment
//! variables, then command-line flags (each overrides the one before).
//!
//! Environment: `COLLECTOR_<KEY>` for top-level keys and `COLLECTOR_<SECTION>__<KEY>` for
//! nested ones (e.g. `COLLECTOR_LIMITS__MAX_BODY_BYTES`), plus the seed's `DB_HOST`,
//! `DB_PORT`, `DB_NAME`, `DB_USER`, `DB_PASSWORD`, which build `database_url` when it is not
//! given. Every key is documented in `deploy/collector.toml`.
//!
//! Invariant: a configuration that loads is usable: limits are positive and addresses parse.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Everything `collector serve` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Public ingest listener (beacons).
    pub listen: SocketAddr,
    /// Admin listener (/metrics, /v1/buffer, forwarding control). Loopback by default.
    pub admin_listen: SocketAddr,
    /// Bearer token for the admin listener; required when it is not bound to loopback.
    pub admin_token: Option<String>,
    /// Recently accepted events kept in memory for the admin listener's live tail
    /// (`GET /v1/tail`); 0 turns the tail off. Exposes event contents to admin clients.
    pub admin_tail_events: usize,
    /// Directory of the sled write-ahead buffer.
    pub data_dir: PathBuf,
    /// Central TimescaleDB. When absent, built from DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD.
    pub database_url: Option<String>,
    /// Identifies this collector in `user_events.collector_id` and heartbeats.
    pub collector_id: String,
    /// Region label shown in heartbeats and the monitor.
    pub region: String,
    /// Accepted write keys without a source name; with `sources` empty too, no key is
    /// required.
    pub write_keys: Vec<String>,
    /// Named write keys, source name → key: one collector serving several apps. The name
    /// (never the key) is stored with each event in `user_events.source`.
    pub sources: BTreeMap<String, String>,
    /// Allowed CORS origins; `*` allows any.
    pub cors_origins: Vec<String>,
    pub limits: Limits,
    pub buffer: BufferConfig,
    pub forward: ForwardConfig,
    pub geo: GeoConfig,
    pub tls: TlsConfig,
    /// Seconds between heartbeats written to `collector_heartbeats`.
    pub heartbeat_interval_secs: u64,
    /// On SIGTERM, how long open connections may take to finish their requests before they
    /// are closed. Forwarding stops at once (a batch in flight stays buffered), so the whole
    /// shutdown takes at most about this plus 2 s, whatever the database does.
    pub shutdown_timeout_secs: u64,
    /// How long (ms) the allocator keeps freed memory before it returns it to the OS
    /// ([`crate::allocator`]): lower keeps less resident after bursts, at some CPU per
    /// request (README, Benchmarks: where the memory goes). `MIMALLOC_PURGE_DELAY` in the
    /// environment wins.
    pub allocator_purge_delay_ms: u64,
}

/// The largest `limits.max_string_bytes` accepted: PostgreSQL refuses a B-tree entry
/// over about 2,700 bytes, and event_name and session_id are indexed with event_time.
pub const MAX_INDEXED_STRING_BYTES: usize = 2048;

mod redact;
mod sections;

pub use redact::redact_url;
pub use sections::{
    BufferConfig, Durability, ForwardConfig, GeoConfig, Limits, Maintenance, TlsConfig,
};

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            admin_token: None,
            admin_tail_events: 1000,
            data_dir: PathBuf::from("./data/buffer"),
            database_url: None,
            collector_id: default_collector_id(),
            region: "local".into(),
            write_keys: Vec::new(),
            sources: BTreeMap::new(),
            cors_origins: vec!["*".into()],
            limits: Limits::default(),
            buffer: BufferConfig::default(),
            forward: ForwardConfig::default(),
            geo: GeoConfig::default(),
            tls: TlsConfig::default(),
            heartbeat_interval_secs: 10,
            shutdown_timeout_secs: 5,
            allocator_purge_delay_ms: 10,
        }
    }
}

fn default_collector_id() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "collector".into())
}

impl Config {
    /// Loads defaults ← `file` ← environment ← `overrides` (flags, already as a partial map).
    pub fn load(
        file: Option<&std::path::Path>,
        overrides: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig
            .merge(seed_db_env())
            .merge(collector_env())
            .merge(Serialized::defaults(overrides));
        let cfg: Config = fig.extract().map_err(Box::new)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let positive = [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_decoded_bytes", l.max_decoded_bytes),
            ("limits.max_batch_events", l.max_batch_events),
            ("limits.max_string_bytes", l.max_string_bytes),
            ("limits.max_url_bytes", l.max_url_bytes),
            ("limits.max_properties_bytes", l.max_properties_bytes),
            ("limits.max_properties_depth", l.max_properties_depth),
            ("limits.max_connections", l.max_connections),
            (
                "limits.segment_max_message_bytes",
                l.segment_max_message_bytes,
            ),
            ("limits.segment_max_batch_bytes", l.segment_max_batch_bytes),
            ("forward.batch_events", self.forward.batch_events),
            ("forward.connections", self.forward.connections),
            (
                "forward.apply_batch_events",
                self.forward.apply_batch_events,
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError::Invalid(format!("{name} must be positive")));
        }
        // event_name and session_id are indexed: a B-tree entry over ~2,700 bytes is refused
        // by PostgreSQL (SQLSTATE 54000) at forwarding time, after the 2xx. Refuse the
        // configuration instead.
        if l.max_string_bytes > MAX_INDEXED_STRING_BYTES {
            return Err(ConfigError::Invalid(format!(
                "limits.max_string_bytes must be at most {MAX_INDEXED_STRING_BYTES}: longer \
                 indexed strings (event_name, session_id) would be refused by the database"
            )));
        }
        let largest = crate::memory::largest_charge(l.max_body_bytes, l.max_decoded_bytes);
        if l.max_inflight_bytes < largest {
            return Err(ConfigError::Invalid(format!(
                "limits.max_inflight_bytes ({}) must hold one largest request: at least {largest} \
                 (max_body_bytes + {} × max_decoded_bytes)",
                l.max_inflight_bytes,
                crate::memory::PARSE_FACTOR + 1
            )));
        }
        if self.buffer.max_bytes == 0 {
            return Err(ConfigError::Invalid(
                "buffer.max_bytes must be positive".into(),
            ));
        }
        if !self.admin_listen.ip().is_loopback() && self.admin_token.is_none() {
            return Err(ConfigError::Invalid(format!(
                "admin_listen {} is not loopback: set admin_token (COLLECTOR_ADMIN_TOKEN)",
                self.admin_listen
            )));
        }
        if self.admin_tail_events > 100_000 {
            return Err(ConfigError::Invalid(format!(
                "admin_tail_events ({}) must be at most 100000 (about 4 KiB of memory each)",
                self.admin_tail_events
            )));
        }
        crate::geo::trusted_proxies(&self.geo.trusted_proxies).map_err(ConfigError::Invalid)?;
        self.tls.validate()?;
        if self.collector_id.is_empty() || self.collector_id.len() > 128 {
            return Err(ConfigError::Invalid(
                "collector_id must be 1 to 128 bytes".into(),
            ));
        }
        Ok(())
    }
}

/// `COLLECTOR_*` variables that name a configuration key. Others are ignored rather than
/// refused: `COLLECTOR_CONFIG` is the config-file flag's variable, and orchestrators inject
/// variables of their own (a Kubernetes service named `collector` adds `COLLECTOR_PORT`).
fn collector_env() -> Env {
    let keys: Vec<String> = serde_json::to_value(Config::default())
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default();
    Env::prefixed("COLLECTOR_").split("__").filter(move |key| {
        let top = key.as_str().split('.').next().unwrap_or("");
        keys.iter().any(|k| k.eq_ignore_ascii_case(top))
    })
}

/// The seed's `DB_*` variables, turned into a `database_url` when `DB_HOST` is set.
fn seed_db_env() -> Serialized<serde_json::Map<String, serde_json::Value>> {
    let mut map = serde_json::Map::new();
    if let Ok(host) = std::env::var("DB_HOST") {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        let user = var("DB_USER", "postgres");
        let password = std::env::var("DB_PASSWORD").ok();
        let auth = match password {
            Some(p) => format!("{}:{}", encode(&user), encode(&p)),
            None => encode(&user),
        };
        let url = format!(
            "postgres://{auth}@{host}:{}/{}",
            var("DB_PORT", "5432"),
            encode(&var("DB_NAME", "user_analytics"))
        );
        map.insert("database_url".into(), url.into());
    }
    Serialized::defaults(map)
}

/// Characters left as they are in a URL userinfo or path component: RFC 3986 unreserved.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a URL userinfo or path component.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://u:s%40cret@h1:5432,h2:5433/db?target_session_attrs=read-write"),
            "postgres://u:***@h1:5432,h2:5433/db?target_session_attrs=read-write"
        );
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=secret"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("host=h user=u password=secret dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
    }

    #[test]
    fn defaults_validate() {
        Config::default().validate().expect("defaults are valid");
    }

    #[test]
    fn indexed_strings_stay_under_the_index_row_limit() {
        let mut c = Config::default();
        c.limits.max_string_bytes = MAX_INDEXED_STRING_BYTES;
        c.validate().expect("the cap itself is valid");
        c.limits.max_string_bytes = MAX_INDEXED_STRING_BYTES + 1;
        let e = c.validate().expect_err("over the cap").to_string();
        assert!(e.contains("limits.max_string_bytes"), "{e}");
    }

    #[test]
    fn trusted_proxies_are_validated() {
        let mut c = Config::default();
        c.geo.trusted_proxies = vec!["10.0.0.0/33".into()];
        let e = c.validate().expect_err("bad CIDR").to_string();
        assert!(
            e.contains("geo.trusted_proxies") && e.contains("10.0.0.0/33"),
            "{e}"
        );
    }

    #[test]
    fn tls_files_come_in_pairs() {
        let mut c = Config::default();
        assert!(c.tls.files().is_none(), "plain HTTP by default");
        c.tls.cert = Some("cert.pem".into());
        let e = c.validate().expect_err("cert without key").to_string();
        assert!(e.contains("tls.key"), "{e}");
        c.tls.key = Some("key.pem".into());
        c.validate().expect("both");
        c.tls = TlsConfig {
            admin: true,
            ..TlsConfig::default()
        };
        let e = c.validate().expect_err("admin without files").to_string();
        assert!(e.contains("tls.admin"), "{e}");
    }

    #[test]
    fn encodes_userinfo() {
        assert_eq!(encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
