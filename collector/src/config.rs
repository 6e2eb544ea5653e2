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
}

/// The largest `limits.max_string_bytes` accepted: PostgreSQL refuses a B-tree entry
/// over about 2,700 bytes, and event_name and session_id are indexed with event_time.
pub const MAX_INDEXED_STRING_BYTES: usize = 2048;

/// Bounds on every input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Maximum request body, as sent (compressed) — larger gets 413.
    pub max_body_bytes: usize,
    /// Maximum body after gzip decoding — larger gets 413.
    pub max_decoded_bytes: usize,
    /// Maximum events in one /batch request.
    pub max_batch_events: usize,
    /// Maximum length, in bytes, of any string field except URLs; at most
    /// [`MAX_INDEXED_STRING_BYTES`].
    pub max_string_bytes: usize,
    /// Maximum length, in bytes, of page_url and referrer.
    pub max_url_bytes: usize,
    /// Maximum size of `properties` once serialised.
    pub max_properties_bytes: usize,
    /// Maximum nesting depth of `properties`.
    pub max_properties_depth: usize,
    /// How far in the past an event_time may be (default 2 years: offline queues,
    /// historical imports and long outages' backlogs land).
    pub max_event_age_secs: u64,
    /// How far in the future an event_time may be (clock skew).
    pub max_event_future_secs: u64,
    /// Requests per second allowed per client IP (0 = unlimited).
    pub rate_limit_per_ip: u32,
    /// Maximum concurrent connections on the ingest listener.
    pub max_connections: usize,
    /// Seconds a client may take to send its request headers.
    pub header_timeout_secs: u64,
    /// Memory all requests in flight may hold together: bodies as read, decoded, and parsed
    /// (see [`crate::memory`] for how a request is charged). Past it a request waits up to
    /// `inflight_wait_ms`, then gets 503 + Retry-After. Must hold one largest request.
    pub max_inflight_bytes: u64,
    /// How long a request may wait for room under `max_inflight_bytes`.
    pub inflight_wait_ms: u64,
    /// Segment's bound on one message on the Segment routes, as received (serialised JSON):
    /// a larger one is refused with 400 naming its index.
    pub segment_max_message_bytes: usize,
    /// Segment's bound on one request on the Segment routes (after gzip decoding): a larger
    /// one holding Segment messages gets 413.
    pub segment_max_batch_bytes: usize,
}

/// The sled write-ahead buffer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BufferConfig {
    /// Logical bytes of buffered records at which ingest answers 503.
    pub max_bytes: u64,
    /// sled page-cache size.
    pub cache_bytes: u64,
    /// `flush` (default): a 2xx survives a process kill (sled's flush, sync_file_range on
    /// Linux). `fsync`: additionally fsync the buffer's files before answering, so a 2xx also
    /// survives power loss, at a throughput cost.
    pub durability: Durability,
    /// Group-commit window (µs): a flush starts at most this long after the previous one
    /// started, so that busy ingest shares each flush among more requests (0: flush as
    /// soon as anything waits). An idle buffer flushes at once.
    pub commit_window_us: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    Flush,
    Fsync,
}

/// The forwarder that drains the buffer into TimescaleDB.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// Target events per COPY batch.
    pub batch_events: usize,
    /// How long to wait for a batch to fill before sending a partial one.
    pub linger_ms: u64,
    /// Concurrent COPY connections used when there is a backlog.
    pub connections: usize,
    /// First retry delay after a transient error.
    pub retry_initial_ms: u64,
    /// Cap of the exponential backoff.
    pub retry_max_ms: u64,
    /// Whether forwarding starts paused (resume with POST /v1/forwarding/resume).
    pub start_paused: bool,
    /// Deadline of one host's connect (TCP, TLS and startup together); a multi-host URL's
    /// next host is tried after it.
    pub connect_timeout_secs: u64,
    /// Deadline of one database step (a COPY with its commit, a heartbeat insert); also the
    /// server's `statement_timeout` for the collector's sessions.
    pub operation_timeout_secs: u64,
}

/// Geography from the client IP ([`crate::geo`], [`crate::http::geo`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeoConfig {
    /// A MaxMind DB file (GeoLite2-City.mmdb, GeoIP2-Country.mmdb, …), read at start-up.
    /// Without it no event is located.
    pub database: Option<PathBuf>,
    /// Proxies (addresses or CIDRs) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
}

/// HTTPS on the listeners. Plain HTTP unless `cert` and `key` are set; then the ingest
/// listener speaks only TLS, HTTP/2 and HTTP/1.1 chosen by ALPN. Both files are read again
/// on SIGHUP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first (e.g. a `fullchain.pem`).
    pub cert: Option<PathBuf>,
    /// PEM private key of the leaf certificate (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: Option<PathBuf>,
    /// Also serve the admin listener over TLS, with the same certificate.
    pub admin: bool,
    /// Seconds a client may take to complete the TLS handshake.
    pub handshake_timeout_secs: u64,
    /// Offer HTTP/2 by ALPN (HTTP/1.1 is always offered).
    pub http2: bool,
    /// Requests one HTTP/2 connection may have in progress at once.
    pub http2_max_concurrent_streams: u32,
    /// Seconds between HTTP/2 pings on a connection with no traffic; a ping unanswered for
    /// as long closes the connection (a vanished peer).
    pub http2_keep_alive_secs: u64,
}

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
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_decoded_bytes: 4 << 20,
            max_batch_events: 1000,
            max_string_bytes: 256,
            max_url_bytes: 2048,
            max_properties_bytes: 16 << 10,
            max_properties_depth: 8,
            max_event_age_secs: 730 * 24 * 3600,
            max_event_future_secs: 3600,
            rate_limit_per_ip: 0,
            max_connections: 4096,
            header_timeout_secs: 10,
            max_inflight_bytes: 64 << 20,
            inflight_wait_ms: 1000,
            segment_max_message_bytes: 32 << 10,
            segment_max_batch_bytes: 500 << 10,
        }
    }
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_bytes: 1 << 30,
            cache_bytes: 64 << 20,
            durability: Durability::Flush,
            commit_window_us: 1000,
        }
    }
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            batch_events: 5000,
            linger_ms: 1000,
            connections: 2,
            retry_initial_ms: 200,
            retry_max_ms: 30_000,
            start_paused: false,
            connect_timeout_secs: 5,
            operation_timeout_secs: 30,
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            admin: false,
            handshake_timeout_secs: 10,
            http2: true,
            http2_max_concurrent_streams: 100,
            http2_keep_alive_secs: 20,
        }
    }
}

impl TlsConfig {
    /// The certificate and key files, when TLS is on.
    pub fn files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.cert.as_deref()?, self.key.as_deref()?))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        match (&self.cert, &self.key) {
            (Some(_), None) => return invalid("tls.cert is set without tls.key: set both"),
            (None, Some(_)) => return invalid("tls.key is set without tls.cert: set both"),
            (None, None) if self.admin => {
                return invalid("tls.admin needs tls.cert and tls.key");
            }
            _ => {}
        }
        if self.handshake_timeout_secs == 0 {
            return invalid("tls.handshake_timeout_secs must be positive");
        }
        if self.http2_max_concurrent_streams == 0 {
            return invalid("tls.http2_max_concurrent_streams must be positive");
        }
        if self.http2_keep_alive_secs == 0 {
            return invalid("tls.http2_keep_alive_secs must be positive");
        }
        Ok(())
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

/// Hides the password of a database URL for logs and error messages: a `postgres://` URL's
/// password (also of a multi-host URL, which the `url` crate cannot parse) and the
/// `password=` of a key-value connection string.
pub fn redact_url(url: &str) -> String {
    if !url.contains("://") {
        return url
            .split(' ')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.password().is_some() && parsed.set_password(Some("***")).is_ok() {
            return redact_query(parsed.as_str());
        }
        return redact_query(url);
    }
    // Multi-host (`postgres://u:p@h1:5432,h2:5432/db`): the userinfo ends at the last '@'
    // before the path.
    let scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let path = url[scheme..]
        .find('/')
        .map(|i| scheme + i)
        .unwrap_or(url.len());
    match url[scheme..path].rfind('@').map(|i| scheme + i) {
        Some(at) => match url[scheme..at].find(':') {
            Some(colon) => redact_query(&format!("{}:***{}", &url[..scheme + colon], &url[at..])),
            None => redact_query(url),
        },
        None => redact_query(url),
    }
}

/// Hides a `password=` query parameter (libpq accepts one in the URL's query).
fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some(("password", _)) => "password=***".to_string(),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
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
