-- Appends an event to the outbox: the next sequence from outbox_head, whose
-- row stays locked until the calling transaction commits (so sequences are
-- gap-free and in commit order), and a notification that listeners get when,
-- and only if, it commits. Call it last in the transaction, so the lock is
-- held only while committing. One definition, which every statement that
-- writes an event calls, in the same round trip as its change.
CREATE FUNCTION outbox_append(event bytea, channel text) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    WITH head AS (UPDATE outbox_head SET last_sequence = last_sequence + 1 RETURNING last_sequence),
         stored AS (INSERT INTO outbox (sequence, payload) SELECT last_sequence, event FROM head)
    SELECT last_sequence FROM head, pg_notify(channel, last_sequence::text)
$$;
