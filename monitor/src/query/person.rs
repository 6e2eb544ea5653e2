//! One person's identity and history (`monitor query user ID`): not a dashboard analysis
//! (it takes an id, not a range), but the same definitions.
//!
//! Definitions (the README's people): the id asked for is resolved to a person — an
//! anonymous id linked to a user (`identity_links`) resolves to that user; any other id is
//! the person itself. The person's ids are the person and every anonymous id linked to it.
//! `first_seen` is the earliest `actor_first_seen` of those ids (it survives the raw
//! events' retention); `last_seen` and `recent` come from the raw events sent with any of
//! them (newest first, through the actor index); `traits` merges `person_traits` over the
//! ids, per key the value with the latest event time (ties: the larger JSON text), as the
//! per-actor merge does.
//!
//! Invariant: read-only, every value a bind parameter.

use tokio_postgres::Client;

use super::QueryError;
use crate::model::{Person, PersonEvent, PERSON_EVENTS};

/// The person `id` belongs to; `None` when no event was ever sent with any of their ids.
pub async fn person(client: &Client, id: &str) -> Result<Option<Person>, QueryError> {
    let person: String = client
        .query_opt(
            "SELECT app_user_id FROM identity_links WHERE anonymous_id = $1",
            &[&id],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or_else(|| id.to_string());
    let anonymous_ids: Vec<String> = client
        .query(
            "SELECT anonymous_id FROM identity_links WHERE app_user_id = $1
             ORDER BY linked_at, anonymous_id",
            &[&person],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut ids = vec![person.clone()];
    ids.extend(anonymous_ids.iter().cloned());

    let by_ids: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&ids];
    let by_ids_limited: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&ids, &PERSON_EVENTS];
    let first = client.query_one(
        "SELECT min(first_seen) FROM actor_first_seen WHERE actor = ANY($1)",
        &by_ids,
    );
    let traits = client.query(
        "SELECT DISTINCT ON (key) key, value::TEXT
         FROM person_traits
         WHERE actor = ANY($1)
         ORDER BY key, set_at DESC, value::TEXT DESC",
        &by_ids,
    );
    let recent = client.query(
        "SELECT event_time, event_name, COALESCE(app_user_id, user_id::TEXT, anonymous_id),
                session_id, page_url, source
         FROM user_events
         WHERE COALESCE(app_user_id, user_id::TEXT, anonymous_id) = ANY($1)
         ORDER BY event_time DESC, event_id
         LIMIT $2",
        &by_ids_limited,
    );
    let (first, traits, recent) = tokio::try_join!(first, traits, recent)?;

    let first_seen: Option<time::OffsetDateTime> = first.try_get(0)?;
    let recent = recent
        .iter()
        .map(|r| {
            Ok(PersonEvent {
                time: r.try_get(0)?,
                event_name: r.try_get(1)?,
                actor: r.try_get(2)?,
                session_id: r.try_get(3)?,
                page_url: r.try_get(4)?,
                source: r.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    if first_seen.is_none() && recent.is_empty() {
        return Ok(None);
    }
    let traits = traits
        .iter()
        .map(|r| {
            let key: String = r.try_get(0)?;
            let text: String = r.try_get(1)?;
            Ok((
                key,
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            ))
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Some(Person {
        asked: id.to_string(),
        last_seen: recent.first().map(|e| e.time),
        person,
        anonymous_ids,
        traits,
        first_seen,
        recent,
    }))
}
