-- The monitor's correction for people whose last event is at or after a range's end, as a
-- function that plans its statement only when there is something to correct.
--
-- The monitor counts the people active with a key in [since, until) from 0013's `last_at`
-- histogram (0018: and its minutes); a person whose last event is at or after `until` (a
-- client clock ahead, or `until` a moment in the past) is in a bucket past the range, and
-- counts only if it also has an event with the key in [since, until): that is read from its
-- raw events. Inside the monitor's statement that raw read was planned on every query, over
-- every chunk of the range (31 at 30 days), although it runs only when such people exist:
-- 9 of the breakdown's 14 ms of planning at 10M events, for a part that returned nothing.
--
-- Here it is planned when reached: PL/pgSQL plans a statement the first time it executes,
-- and the function returns before it when no event is dated at or after `until` (an index
-- probe). STABLE: it reads the snapshot of the monitor's statement, so the correction and
-- the sums it corrects see the same rows.
--
-- Returns, per key of `dims`, minus the number of people whose last event with the key is
-- at or after `until` and who have no event with the key in [since, until).

CREATE OR REPLACE FUNCTION edge_activity_later_people(dims SMALLINT[], since TIMESTAMPTZ,
                                                      until TIMESTAMPTZ)
RETURNS TABLE (dim SMALLINT, value TEXT, people BIGINT)
LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_column
BEGIN
    IF NOT EXISTS (SELECT 1 FROM user_events x WHERE x.event_time >= until) THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT l.dim, l.value,
           -count(*) FILTER (WHERE NOT EXISTS (
               SELECT 1
               FROM (SELECT i.anonymous_id AS actor FROM identity_links i
                     WHERE i.app_user_id = l.person
                     UNION ALL
                     SELECT l.person
                     WHERE NOT EXISTS (SELECT 1 FROM identity_links j
                                       WHERE j.anonymous_id = l.person)) a
               JOIN user_events e
                 ON COALESCE(e.app_user_id, e.user_id::TEXT, e.anonymous_id) = a.actor,
                    edge_activity_keys(e.device_type, e.country_code::TEXT, e.event_name,
                                       e.page_url) k
               WHERE e.event_time >= since AND e.event_time < until
                 AND k.dim = l.dim AND k.value = l.value))
    FROM activity_person_last l
    -- A person's last_at is the time of one of its events, by an actor linked to it now
    -- (0018's header): the people of the events dated there are all the candidates.
    WHERE l.person IN (SELECT DISTINCT p.person FROM person_events p
                       WHERE p.event_time >= until AND p.person IS NOT NULL)
      AND l.dim = ANY (dims) AND l.last_at >= until
    GROUP BY l.dim, l.value;
END
$fn$;
