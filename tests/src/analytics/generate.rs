//! The generator of [`Dataset`]: deterministic events with the shapes the analyses must
//! handle (see the module doc of `analytics`).
//!
//! Identities: numeric seed users (`user_id` an integer); users with opaque string ids
//! (`usr_…`, e-mails); anonymous-only visitors (an `anonymous_id`, no user); visitors who
//! sign up in mid-session (anonymous events, then an `identify` carrying both ids and
//! traits, then events as the user — some of them first seen the day before the sign-up);
//! known numeric users signing in on a new device (an anonymous id linked to an old user);
//! a trait changed by a later identify; and users first seen 13 and 30 days ago.
//! Events with neither id exist too (no person).

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{day_start, Dataset, Event, COUNTRIES, DAYS, DEVICES, USERS};

/// Who sends an event: the ids as the client sends them.
#[derive(Debug, Clone, Default)]
struct Who {
    /// The seed's numeric id (sent as a JSON integer).
    user_id: Option<i64>,
    /// A string user id.
    text_id: Option<String>,
    anonymous_id: Option<String>,
}

impl Who {
    fn numeric(u: i64) -> Who {
        Who {
            user_id: Some(u),
            ..Who::default()
        }
    }
    fn text(id: String) -> Who {
        Who {
            text_id: Some(id),
            ..Who::default()
        }
    }
    fn anonymous(id: String) -> Who {
        Who {
            anonymous_id: Some(id),
            ..Who::default()
        }
    }
    fn nobody() -> Who {
        Who::default()
    }
    fn identified(&self) -> bool {
        self.user_id.is_some() || self.text_id.is_some()
    }
}

struct Gen {
    rng: StdRng,
    events: Vec<Event>,
    sessions: u64,
    limit: OffsetDateTime,
}

impl Gen {
    fn id(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.gen()).into_uuid()
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        who: &Who,
        session: Option<&str>,
        name: &str,
        at: OffsetDateTime,
        device: Option<&str>,
        country: Option<&str>,
        traits: Option<Value>,
    ) {
        if at >= self.limit {
            return;
        }
        let page_url = if self.rng.gen_bool(0.1) {
            None
        } else {
            Some(format!("/p/{}", self.rng.gen_range(0..30)))
        };
        let event_type = match name {
            "page_view" => "view",
            "add_to_cart" | "checkout_start" | "purchase" => "action",
            "identify" => "identify",
            _ => "engagement",
        };
        let event_id = self.id();
        self.events.push(Event {
            event_id,
            user_id: who.user_id,
            app_user_id: who
                .text_id
                .clone()
                .or_else(|| who.user_id.map(|u| u.to_string())),
            anonymous_id: who.anonymous_id.clone(),
            traits,
            session_id: session.map(str::to_string),
            event_type: event_type.to_string(),
            event_name: name.to_string(),
            page_url,
            device_type: device.map(str::to_string),
            country_code: country.map(str::to_string),
            event_time: at,
        });
    }

    fn next_session_id(&mut self, who: &Who) -> String {
        self.sessions += 1;
        if who.identified() {
            format!("s{}", self.sessions)
        } else {
            format!("anon{}", self.sessions)
        }
    }

    /// One session from `start`: browsing, then the funnel with drop-offs; sometimes a step
    /// out of order or a purchase without a cart. Strictly increasing times; returns the
    /// time after the last event.
    fn session(
        &mut self,
        who: &Who,
        start: OffsetDateTime,
        device: Option<&str>,
        country: Option<&str>,
    ) -> OffsetDateTime {
        let sid = self.next_session_id(who);
        self.session_in(who, &sid, start, device, country)
    }

    fn session_in(
        &mut self,
        who: &Who,
        sid: &str,
        start: OffsetDateTime,
        device: Option<&str>,
        country: Option<&str>,
    ) -> OffsetDateTime {
        let r = &mut self.rng;
        let mut names: Vec<&str> = Vec::new();
        if r.gen_bool(0.1) {
            names.push("add_to_cart"); // before any page view: must not count as step 2 alone
        }
        for _ in 0..r.gen_range(1..=3) {
            let search = r.gen_bool(0.3);
            names.extend(
                ["page_view", "search"]
                    .into_iter()
                    .take(1 + usize::from(search)),
            );
        }
        if r.gen_bool(0.55) {
            names.push("add_to_cart");
            if r.gen_bool(0.3) {
                names.push("page_view");
            }
            if r.gen_bool(0.6) {
                if r.gen_bool(0.05) {
                    names.push("purchase"); // before checkout: step 4 needs a later one
                }
                names.push("checkout_start");
                if r.gen_bool(0.65) {
                    names.push("purchase");
                }
            }
        } else if r.gen_bool(0.1) {
            names.push("purchase"); // without a cart
        }
        if r.gen_bool(0.2) {
            names.push("click");
        }
        let mut t = start;
        for name in names {
            self.push(who, Some(sid), name, t, device, country, None);
            t += Duration::milliseconds(self.rng.gen_range(2_000..400_000));
        }
        t
    }

    /// A visitor browses anonymously from `start`, signs up in the same session (an
    /// identify with both ids and traits), goes on as the user, and may return on later
    /// days as the user only.
    fn signup(&mut self, anon: String, user: Who, start: OffsetDateTime, today: OffsetDateTime) {
        let device = Some("mobile");
        let country = Some("CN");
        let visitor = Who::anonymous(anon.clone());
        let sid = self.next_session_id(&visitor);
        let mut t = start;
        for name in ["page_view", "search", "page_view"] {
            self.push(&visitor, Some(&sid), name, t, device, country, None);
            t += Duration::milliseconds(self.rng.gen_range(5_000..900_000));
        }
        let both = Who {
            anonymous_id: Some(anon),
            ..user.clone()
        };
        let plan = if self.rng.gen_bool(0.5) {
            "free"
        } else {
            "pro"
        };
        let traits = json!({"plan": plan, "name": "李雷", "signup": true});
        self.push(
            &both,
            Some(&sid),
            "identify",
            t,
            device,
            country,
            Some(traits),
        );
        t += Duration::milliseconds(self.rng.gen_range(2_000..60_000));
        // Some clients keep sending the anonymous id with the user id, some do not.
        let after = if self.rng.gen_bool(0.5) {
            both
        } else {
            user.clone()
        };
        let t = self.session_in(&after, &sid, t, device, country);
        // A later identify changes a trait: the latest wins.
        if self.rng.gen_bool(0.4) {
            self.push(
                &user,
                None,
                "identify",
                t + Duration::hours(2),
                device,
                country,
                Some(json!({"plan": "enterprise"})),
            );
        }
        let mut day = day_start(t) + Duration::days(1);
        while day < today + Duration::days(1) {
            if self.rng.gen_bool(0.3) {
                let at = day + Duration::milliseconds(self.rng.gen_range(0..86_400_000));
                self.session(&user, at, device, country);
            }
            day += Duration::days(1);
        }
    }
}

impl Dataset {
    pub fn generate(seed: u64, t0: OffsetDateTime) -> Dataset {
        let today = day_start(t0);
        let mut g = Gen {
            rng: StdRng::seed_from_u64(seed),
            events: Vec::new(),
            sessions: 0,
            limit: t0,
        };
        for user in 1..=USERS {
            // Every fifth user has an opaque string id, the rest the seed's integers.
            let who = if user % 5 == 0 {
                if user % 10 == 0 {
                    Who::text(format!("user{user}@example.com"))
                } else {
                    Who::text(format!("usr_{:x}", user * 7919))
                }
            } else {
                Who::numeric(user)
            };
            let first_back = g.rng.gen_range(1..=DAYS);
            let device = DEVICES[g.rng.gen_range(0..DEVICES.len())];
            let country = COUNTRIES[g.rng.gen_range(0..COUNTRIES.len())];
            let mut p_return = 0.55;
            for back in (1..=first_back).rev() {
                if back != first_back && !g.rng.gen_bool(p_return) {
                    continue;
                }
                p_return *= 0.85;
                let day = today - Duration::days(back);
                for _ in 0..g.rng.gen_range(1..=3) {
                    // Some sessions start just before midnight and run into the next day.
                    let start = if g.rng.gen_bool(0.08) {
                        day + Duration::hours(23) + Duration::minutes(g.rng.gen_range(40..60))
                    } else {
                        day + Duration::milliseconds(g.rng.gen_range(0..86_400_000))
                    };
                    g.session(&who, start, device, country);
                }
                for _ in 0..g.rng.gen_range(0..=2) {
                    let at = day + Duration::milliseconds(g.rng.gen_range(0..86_400_000));
                    g.push(&who, None, "app_open", at, device, country, None);
                }
            }
        }
        // Sessions of nobody (no id at all): in funnels and paths, not in people.
        for _ in 0..20 {
            let at = today - Duration::milliseconds(g.rng.gen_range(0..DAYS * 86_400_000));
            let device = DEVICES[g.rng.gen_range(0..DEVICES.len())];
            g.session(&Who::nobody(), at, device, Some("FR"));
        }
        // Anonymous-only visitors: people of their own, some returning on another day.
        for k in 0..40 {
            let who = Who::anonymous(format!("anon-{k:04}"));
            let at = today - Duration::milliseconds(g.rng.gen_range(0..DAYS * 86_400_000));
            let device = DEVICES[g.rng.gen_range(0..DEVICES.len())];
            g.session(&who, at, device, Some("FR"));
            if k % 4 == 0 {
                g.session(&who, at + Duration::days(1), device, Some("FR"));
            }
        }
        // Sign-ups in mid-session; every third starts just before midnight, so the visitor
        // is first seen the day before the user.
        for k in 0..40i64 {
            let user = if k % 2 == 0 {
                Who::text(format!("sig_{k}@example.com"))
            } else {
                Who::text(format!("usr_sig{k}"))
            };
            let back = g.rng.gen_range(1..=DAYS);
            let day = today - Duration::days(back);
            let start = if k % 3 == 0 {
                day - Duration::minutes(g.rng.gen_range(5..30))
            } else {
                day + Duration::milliseconds(g.rng.gen_range(0..80_000_000))
            };
            g.signup(format!("v-{k:04}"), user, start, today);
        }
        // Known numeric users signing in on a new device: an anonymous id linked to them.
        for k in 1..=20i64 {
            let at = today - Duration::milliseconds(g.rng.gen_range(0..DAYS * 86_400_000));
            g.signup(format!("dev-{k:04}"), Who::numeric(k * 3), at, today);
        }
        // History: users first seen 30 and 13 days ago, some returning since.
        for k in 0..15i64 {
            let who = Who::text(format!("old_{k}"));
            for back in [30, 13] {
                let at = today - Duration::days(back) + Duration::hours(k);
                g.session(&who, at, Some("desktop"), Some("JP"));
            }
            if k % 3 == 0 {
                g.session(&who, today - Duration::days(2), Some("desktop"), Some("JP"));
            }
        }
        // The last hour: returning users and new ones (first seen today).
        for k in 0..50 {
            let user = if k % 5 == 0 {
                1000 + k
            } else {
                g.rng.gen_range(1..=USERS)
            };
            let at = t0 - Duration::milliseconds(g.rng.gen_range(20_000..4_200_000));
            g.session(&Who::numeric(user), at, Some("mobile"), Some("US"));
        }
        for k in 0..7 {
            let at = t0 - Duration::milliseconds(9_000 - k * 1_000);
            let who = Who::numeric(2000 + k);
            g.push(&who, None, "heartbeat_ping", at, None, None, None);
        }
        // Exactly on the windows' starts (inclusive) and just outside 24 h.
        let edges = [
            (9001, Duration::hours(24)),
            (9002, Duration::hours(1)),
            (9003, Duration::minutes(5)),
            (9004, Duration::seconds(10)),
            (9005, Duration::hours(24) + Duration::milliseconds(1)),
        ];
        for (user, back) in edges {
            let who = Who::numeric(user);
            let at = t0 - back;
            g.push(
                &who,
                None,
                "app_open",
                at,
                Some("desktop"),
                Some("DE"),
                None,
            );
        }
        let mut events = g.events;
        events.sort_by_key(|e| e.event_time);
        Dataset { t0, events }
    }
}
