//! How a protocol's bodies are encoded beyond `Content-Encoding`: the [`BodyEncoding`]
//! a protocol returns ([`super::protocol::Protocol::body_encoding`]), plain JSON unless it
//! has forms of its own (PostHog's, in [`super::form`]). A leaf of `http/`: the body reader
//! ([`super::body`]) calls it, protocols name it, and it names neither.

use std::{future::Future, pin::Pin};

use bytes::Bytes;

use crate::memory::Held;

use super::{Ingest, Refusal};

/// A body's decoding into JSON bytes.
pub type Decoded<'a> = Pin<Box<dyn Future<Output = Result<Bytes, Refusal>> + Send + 'a>>;

/// How a protocol's bodies are encoded beyond `Content-Encoding` (which [`Ingest`] has
/// already undone when [`BodyEncoding::decode`] runs).
///
/// Invariant: `decode` charges what it allocates to `held` before allocating it
/// (`Ingest::charge`) and returns at most `limits.max_decoded_bytes`; a malformed body is
/// a 4xx [`Refusal`] naming its form.
pub trait BodyEncoding: Sync {
    /// Whether bodies may come as forms (`application/x-www-form-urlencoded`), besides
    /// JSON and `text/plain`.
    fn takes_forms(&self) -> bool {
        false
    }
    /// The JSON bytes `raw` carries.
    fn decode<'a>(
        &'a self,
        ingest: &'a Ingest,
        raw: Bytes,
        parts: &'a http::request::Parts,
        held: &'a mut Held,
    ) -> Decoded<'a>;
}

/// Bodies that are JSON as they are (every protocol but PostHog's).
pub struct PlainJson;

impl BodyEncoding for PlainJson {
    fn decode<'a>(
        &'a self,
        _: &'a Ingest,
        raw: Bytes,
        _: &'a http::request::Parts,
        _: &'a mut Held,
    ) -> Decoded<'a> {
        Box::pin(std::future::ready(Ok(raw)))
    }
}
