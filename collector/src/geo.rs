//! Geography from an IP address: the operator's MaxMind-format database file (GeoLite2 or
//! GeoIP2, City or Country layout), read into memory once at start-up.
//!
//! A lookup decodes only `country.iso_code`, `subdivisions[0].names.en` (else its
//! `iso_code`) and `city.names.en`, borrowing the strings from the file's bytes.
//!
//! At start-up the file's metadata and the layout of its tree are checked and a few
//! addresses looked up ([`GeoDb::open`]); the deep check of every record
//! ([`GeoDb::verify`]) runs beside ingest afterwards.
//!
//! Invariants: a [`Place`] always passes [`crate::event::validate`] (a country code is two
//! ASCII letters, upper-cased; names are non-empty, NUL-free and cut to the string bound),
//! so a damaged or unusual database can cost an event its geography, never the event; a
//! file that cannot be read or is not a MaxMind DB is refused when the collector starts,
//! with the path and the reason. IP addresses are neither kept nor logged here.

use std::{net::IpAddr, path::Path, path::PathBuf};

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum GeoError {
    #[error("geo.database {path}: cannot read the file: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "geo.database {path}: not a usable MaxMind DB file (damaged, truncated or another \
         format; expected e.g. GeoLite2-City.mmdb): {message}"
    )]
    Invalid { path: PathBuf, message: String },
    /// A `[geo]` setting that does not parse (refused earlier by the configuration's own
    /// validation; kept so no caller can skip it).
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Where an address is, as far as the database knows: what fills `country_code`,
/// `region` and `city`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    pub country_code: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
}

impl Place {
    pub fn is_empty(&self) -> bool {
        self.country_code.is_none() && self.region.is_none() && self.city.is_none()
    }
}

/// What one lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Place(Place),
    /// The database has no data for the address (private, reserved, or just unknown).
    Nothing,
    /// The database failed to decode the address's record (a damaged file).
    Error,
}

/// An open database.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
    /// The largest string a [`Place`] holds (`limits.max_string_bytes`).
    max_string_bytes: usize,
}

/// The part of a GeoIP2/GeoLite2 City or Country record that is used.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Named<'a>>,
    #[serde(borrow)]
    subdivisions: Option<Vec<Named<'a>>>,
    #[serde(borrow)]
    city: Option<Named<'a>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
    #[serde(borrow)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

impl GeoDb {
    /// Reads and checks the file (its metadata and the layout of its search tree), then
    /// looks one address up, so that a damaged file is refused at start-up.
    pub fn open(path: &Path, max_string_bytes: usize) -> Result<GeoDb, GeoError> {
        let bytes = std::fs::read(path).map_err(|source| GeoError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |e: maxminddb::MaxMindDbError| GeoError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let reader = maxminddb::Reader::from_source(bytes).map_err(invalid)?;
        let db = GeoDb {
            reader,
            max_string_bytes,
        };
        // A probe through the tree and into the data section: a file whose tree points
        // outside its data fails here rather than on every request.
        for probe in ["1.1.1.1", "2001:4860::1"] {
            if let Ok(ip) = probe.parse::<IpAddr>() {
                db.decode(ip).map_err(invalid)?;
            }
        }
        Ok(db)
    }

    /// Checks the whole file: every node of the search tree and every record it points
    /// to. Takes about a second per 10 MB (a GeoLite2-City file: several seconds), so the
    /// collector runs it beside ingest after start-up rather than before.
    pub fn verify(&self) -> Result<(), String> {
        self.reader.verify().map_err(|e| e.to_string())
    }

    /// The database's type (`GeoLite2-City`, …), for the start-up log line.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// The database's build time, seconds since the Unix epoch.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// Where `ip` is. An IPv4-mapped IPv6 address (a dual-stack socket's peer) is looked
    /// up as the IPv4 address it holds.
    pub fn lookup(&self, ip: IpAddr) -> Found {
        match self.decode(ip.to_canonical()) {
            Ok(Some(place)) if !place.is_empty() => Found::Place(place),
            Ok(_) => Found::Nothing,
            Err(_) => Found::Error,
        }
    }

    fn decode(&self, ip: IpAddr) -> Result<Option<Place>, maxminddb::MaxMindDbError> {
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return Ok(None);
        }
        let found = self.reader.lookup(ip)?;
        let Some(record) = found.decode::<Record<'_>>()? else {
            return Ok(None);
        };
        let subdivision = record.subdivisions.as_ref().and_then(|s| s.first());
        Ok(Some(Place {
            country_code: record
                .country
                .as_ref()
                .and_then(|c| c.iso_code)
                .and_then(country_code),
            region: english(subdivision)
                .or_else(|| subdivision.and_then(|s| s.iso_code))
                .and_then(|s| self.text(s)),
            city: english(record.city.as_ref()).and_then(|s| self.text(s)),
        }))
    }

    /// A name as an event field takes it: non-empty, without NUL, cut to the bound.
    fn text(&self, s: &str) -> Option<String> {
        let s = s.trim();
        if s.is_empty() || s.contains('\0') {
            return None;
        }
        let mut cut = s.len().min(self.max_string_bytes);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        Some(s[..cut].to_string()).filter(|s| !s.is_empty())
    }
}

/// `geo.trusted_proxies` as networks: CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single
/// addresses; the message names the key and the entry that does not parse.
pub fn trusted_proxies(list: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    list.iter()
        .map(|entry| {
            let e = entry.trim();
            e.parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!(
                        "geo.trusted_proxies: {entry:?} is not an IP address or a CIDR such as \
                         10.0.0.0/8"
                    )
                })
        })
        .collect()
}

/// A record's English name.
fn english<'a>(named: Option<&Named<'a>>) -> Option<&'a str> {
    named.and_then(|n| n.names.as_ref()?.en)
}

/// An ISO 3166-1 alpha-2 code as `country_code` takes it, upper-cased.
fn country_code(code: &str) -> Option<String> {
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| code.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_addresses_or_cidrs() {
        let list =
            |l: &[&str]| trusted_proxies(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let nets = list(&["10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "::1"]).expect("valid");
        assert_eq!(nets.len(), 4);
        assert!(nets[1].contains(&"127.0.0.1".parse::<IpAddr>().expect("ip")));
        let e = list(&["10.0.0.0/33"]).expect_err("bad prefix");
        assert!(
            e.contains("geo.trusted_proxies") && e.contains("10.0.0.0/33"),
            "{e}"
        );
    }

    #[test]
    fn country_codes_are_two_letters() {
        assert_eq!(country_code("fr").as_deref(), Some("FR"));
        assert_eq!(country_code("FRA"), None);
        assert_eq!(country_code("1A"), None);
        assert_eq!(country_code(""), None);
    }

    #[test]
    fn refuses_what_is_not_a_database_with_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("GeoLite2-City.mmdb");
        std::fs::write(&path, b"not a MaxMind database at all").expect("write");
        let e = GeoDb::open(&path, 256).err().expect("refused").to_string();
        assert!(
            e.contains("geo.database") && e.contains("GeoLite2-City.mmdb"),
            "{e}"
        );
        assert!(e.contains("not a usable MaxMind DB file"), "{e}");
        let e = GeoDb::open(&dir.path().join("missing.mmdb"), 256)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("cannot read the file"), "{e}");
    }
}
