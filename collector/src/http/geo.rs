//! Geography for a request's events: which address the client has (the TCP peer, or what
//! trusted proxies say in `X-Forwarded-For`), and the `country_code`, `region` and `city`
//! that address gives to the events that carry no `country_code` of their own.
//!
//! It runs on the seed-shaped messages after the protocol's translation and before
//! validation, so the values it adds are validated like a client's. A message's own `ip`
//! (Segment's `context.ip`, PostHog's `$ip`, Snowplow's `ip`, or a seed event's `ip`) is located instead of
//! the request's address (one that is not an address gives no geography), and is removed
//! from the message. Without a database nothing runs here: a seed event's `ip` is then
//! ignored by validation like any unknown field, and the protocols never put an address
//! into `properties`.
//!
//! Invariants: the request's address is looked up at most once per request, and each other
//! address at most once per request; no address is stored or logged; a message with a
//! `country_code` keeps its geography as sent.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::Arc,
    time::Instant,
};

use http::HeaderMap;
use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::{
    config::GeoConfig,
    geo::{Found, GeoDb, GeoError, Place},
    logging::Throttle,
    metrics::Metrics,
};

/// Failed lookups (a damaged file) are logged once per interval, never with the address.
static LOOKUP_FAILED: Throttle = Throttle::new();

/// The geography database and the proxies whose `X-Forwarded-For` is believed.
pub struct Locator {
    db: Arc<GeoDb>,
    trusted: Vec<IpNet>,
}

impl Locator {
    /// The locator `geo` configures; `None` when no database file is configured.
    pub fn from_config(
        geo: &GeoConfig,
        max_string_bytes: usize,
    ) -> Result<Option<Locator>, GeoError> {
        let Some(path) = &geo.database else {
            return Ok(None);
        };
        let trusted =
            crate::geo::trusted_proxies(&geo.trusted_proxies).map_err(GeoError::Config)?;
        let db = Arc::new(GeoDb::open(path, max_string_bytes)?);
        tracing::info!(
            path = %path.display(),
            database_type = db.database_type(),
            build_epoch = db.build_epoch(),
            trusted_proxies = geo.trusted_proxies.len(),
            "geography database loaded: events without a country_code are located by client IP"
        );
        verify_in_background(db.clone(), path.clone());
        Ok(Some(Locator { db, trusted }))
    }

    /// Fills the geography of `messages` from their own `ip` or the request's client
    /// address (see [`client_ip`]).
    pub fn locate(
        &self,
        messages: &mut [Value],
        peer: SocketAddr,
        headers: &HeaderMap,
        metrics: &Metrics,
    ) {
        // Looked up on first need only: a request whose events all carry a country costs
        // nothing.
        let mut request_place: Option<Option<Place>> = None;
        let mut own: HashMap<IpAddr, Option<Place>> = HashMap::new();
        for m in messages.iter_mut() {
            let Value::Object(msg) = m else { continue };
            let own_ip = msg.remove("ip");
            if msg.get("country_code").is_some_and(|c| !c.is_null()) {
                continue;
            }
            let place = match own_ip {
                None | Some(Value::Null) => request_place
                    .get_or_insert_with(|| {
                        client_ip(peer.ip(), headers, &self.trusted)
                            .and_then(|ip| self.find(ip, metrics))
                    })
                    .as_ref(),
                Some(Value::String(text)) => match parse_ip(&text) {
                    Some(ip) => own
                        .entry(ip)
                        .or_insert_with(|| self.find(ip, metrics))
                        .as_ref(),
                    // Not an address: the message said where it is from, unreadably;
                    // the request's address would be someone else's.
                    None => None,
                },
                Some(_) => None,
            };
            if let Some(p) = place {
                fill(msg, p);
            }
        }
    }

    fn find(&self, ip: IpAddr, metrics: &Metrics) -> Option<Place> {
        let found = self.db.lookup(ip);
        if found == Found::Error {
            if let Some(suppressed) = LOOKUP_FAILED.check() {
                tracing::warn!(
                    suppressed,
                    "geography lookup failed: the geo.database file may be damaged \
                     (events keep coming, without geography)"
                );
            }
        }
        metrics.count_geo_lookup(match &found {
            Found::Place(_) => "found",
            Found::Nothing => "not_found",
            Found::Error => "error",
        });
        match found {
            Found::Place(p) => Some(p),
            Found::Nothing | Found::Error => None,
        }
    }
}

/// The deep check of the whole file ([`GeoDb::verify`]) on a thread of its own, so a large
/// file does not delay the start; a damaged file is reported as an error in the log (the
/// records that can be read keep being used).
fn verify_in_background(db: Arc<GeoDb>, path: PathBuf) {
    let spawned = std::thread::Builder::new()
        .name("geo-verify".into())
        .spawn(move || {
            let started = Instant::now();
            match db.verify() {
                Ok(()) => tracing::info!(
                    path = %path.display(),
                    secs = started.elapsed().as_secs_f64(),
                    "geography database verified"
                ),
                Err(e) => tracing::error!(
                    path = %path.display(),
                    error = %e,
                    "geography database is damaged: some addresses will not be located; \
                     replace geo.database and restart"
                ),
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the geography database check");
    }
}

/// Sets the fields of `place` the message does not have.
fn fill(msg: &mut Map<String, Value>, place: &Place) {
    for (field, value) in [
        ("country_code", &place.country_code),
        ("region", &place.region),
        ("city", &place.city),
    ] {
        if let Some(v) = value {
            if msg.get(field).is_none_or(Value::is_null) {
                msg.insert(field.into(), Value::String(v.clone()));
            }
        }
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// right-most address of `X-Forwarded-For` (all its headers, in order) that is not a
/// trusted proxy — each proxy appends the address it received the request from, so the
/// entries left of the first untrusted one could have been written by the client.
/// All entries trusted: the left-most. No header: the peer. An entry that is not an
/// address before an untrusted one is found: `None` (the chain cannot be followed).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // Split as bytes: a client's own entry with odd bytes must not hide the proxies' ones.
    let entries: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter(|e| !e.trim_ascii().is_empty())
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        client = std::str::from_utf8(entry).ok().and_then(parse_ip)?;
        if !is_trusted(&client) {
            return Some(client);
        }
    }
    Some(client)
}

/// An address as proxies and clients write it: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:443`; canonical (an IPv4-mapped IPv6 address as IPv4).
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            text.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&["192.0.2.1"]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &trusted),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(client_ip(ip("127.0.0.1"), &h, &[]), Some(ip("127.0.0.1")));
    }

    #[test]
    fn a_trusted_peer_gives_the_right_most_untrusted_address() {
        let trusted = nets(&["127.0.0.0/8", "10.0.0.0/8", "2001:db8:ffff::/48"]);
        let peer = ip("127.0.0.1");
        // The client wrote a fake first entry; the proxies appended the real one.
        let h = headers(&["6.6.6.6, 192.0.2.7, 10.1.2.3"]);
        assert_eq!(client_ip(peer, &h, &trusted), Some(ip("192.0.2.7")));
        // Several headers are one list, in order.
        let h = headers(&["6.6.6.6", "198.51.100.4", "10.0.0.1"]);
        assert_eq!(client_ip(peer, &h, &trusted), Some(ip("198.51.100.4")));
        // Ports, brackets and IPv6.
        let h = headers(&["[2001:db8:1::5]:4431, 2001:db8:ffff::1"]);
        assert_eq!(client_ip(peer, &h, &trusted), Some(ip("2001:db8:1::5")));
        let h = headers(&["192.0.2.9:5555"]);
        assert_eq!(client_ip(peer, &h, &trusted), Some(ip("192.0.2.9")));
        // No header: the proxy itself; all trusted: the left-most.
        assert_eq!(client_ip(peer, &headers(&[]), &trusted), Some(peer));
        let h = headers(&["10.9.9.9, 10.0.0.1"]);
        assert_eq!(client_ip(peer, &h, &trusted), Some(ip("10.9.9.9")));
    }

    #[test]
    fn a_broken_chain_gives_no_address() {
        let trusted = nets(&["127.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        assert_eq!(client_ip(peer, &headers(&["unknown"]), &trusted), None);
        assert_eq!(
            client_ip(peer, &headers(&["192.0.2.1, _hidden"]), &trusted),
            None
        );
        // Garbage left of the client's entry is never read.
        let h = headers(&["garbage, 192.0.2.1"]);
        assert_eq!(client_ip(peer, &h, &trusted), Some(ip("192.0.2.1")));
        let mut h = HeaderMap::new();
        let odd = HeaderValue::from_bytes(b"\xff\xfe, 192.0.2.8").expect("header");
        h.append("x-forwarded-for", odd);
        assert_eq!(client_ip(peer, &h, &trusted), Some(ip("192.0.2.8")));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let trusted = nets(&["127.0.0.0/8"]);
        let h = headers(&["::ffff:192.0.2.3"]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &h, &trusted),
            Some(ip("192.0.2.3"))
        );
        assert_eq!(parse_ip("[::ffff:10.0.0.1]"), Some(ip("10.0.0.1")));
        assert_eq!(parse_ip("not an address"), None);
    }

    #[test]
    fn fills_only_missing_fields() {
        let place = Place {
            country_code: Some("FR".into()),
            region: Some("Île-de-France".into()),
            city: Some("Paris".into()),
        };
        let mut msg = Map::new();
        msg.insert("city".into(), Value::String("Versailles".into()));
        msg.insert("region".into(), Value::Null);
        fill(&mut msg, &place);
        assert_eq!(msg["country_code"], "FR");
        assert_eq!(msg["region"], "Île-de-France");
        assert_eq!(msg["city"], "Versailles");
    }
}
