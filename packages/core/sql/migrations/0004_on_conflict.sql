-- Migration 4: queueing-lock conflict modes (onConflict: error, ignore, replace).

-- Defer with a queueing-lock conflict mode (p_on_conflict):
-- * 'error' (or NULL): defer_jobs_v3, all or nothing; a conflict raises unique_violation.
-- * 'ignore': a job whose queueing lock is taken by a todo job is not inserted; its id is
--   that waiting job's.
-- * 'replace': the waiting job takes the new job's args, schedule and headers (a "replaced"
--   event records it) and its id is returned; with a schedule, a debounce: run once, after
--   the last defer, with the latest args.
-- Race-free under concurrent defers: each job is one INSERT ... ON CONFLICT on the partial
-- unique index of todo queueing locks, which waits for a concurrent insert of the same lock
-- to commit or roll back. One statement per job (not one for the batch): a statement cannot
-- insert-or-update the same row twice, which a batch naming one queueing lock twice would,
-- and ignore must read the waiting job with a snapshot taken after the conflict. A job the
-- waiting job was claimed away from between the two statements is not lost: ignore then
-- returns the id of that (now running) job, the one the defer was folded into.
CREATE FUNCTION {{schema}}.defer_jobs_v4(
  p_queues text[], p_tasks text[], p_priorities integer[], p_locks text[], p_queueing_locks text[],
  p_args jsonb, p_scheduled_at timestamptz[], p_headers jsonb, p_on_conflict text)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
  n integer := CASE WHEN jsonb_typeof(p_args) = 'array' THEN jsonb_array_length(p_args) END;
  v_ids bigint[] := '{}';
  v_id bigint;
  v_lock text;
BEGIN
  IF p_on_conflict IS NULL OR p_on_conflict = 'error' THEN
    RETURN QUERY SELECT {{schema}}.defer_jobs_v3(p_queues, p_tasks, p_priorities, p_locks, p_queueing_locks,
                                                 p_args, p_scheduled_at, p_headers);
    RETURN;
  END IF;
  IF p_on_conflict NOT IN ('ignore', 'replace') THEN
    RAISE EXCEPTION 'defer_jobs_v4: p_on_conflict must be error, ignore or replace, not %', p_on_conflict
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF n IS NULL OR cardinality(p_queues) NOT IN (1, n) OR cardinality(p_tasks) NOT IN (1, n)
     OR cardinality(p_priorities) NOT IN (1, n) OR cardinality(p_locks) NOT IN (1, n)
     OR cardinality(p_queueing_locks) NOT IN (1, n) OR cardinality(p_scheduled_at) NOT IN (1, n)
     OR (p_headers IS NOT NULL AND (jsonb_typeof(p_headers) <> 'array'
                                    OR jsonb_array_length(p_headers) NOT IN (1, n))) THEN
    RAISE EXCEPTION 'defer_jobs_v4: every argument must have one element per job, or one for all'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR i IN 1 .. n LOOP
    v_lock := p_queueing_locks[CASE WHEN cardinality(p_queueing_locks) = 1 THEN 1 ELSE i END];
    v_id := NULL;
    INSERT INTO {{schema}}.jobs AS j (queue_name, task_name, priority, lock, queueing_lock, args,
                                      scheduled_at, headers)
    VALUES (p_queues[CASE WHEN cardinality(p_queues) = 1 THEN 1 ELSE i END],
            p_tasks[CASE WHEN cardinality(p_tasks) = 1 THEN 1 ELSE i END],
            coalesce(p_priorities[CASE WHEN cardinality(p_priorities) = 1 THEN 1 ELSE i END], 0),
            p_locks[CASE WHEN cardinality(p_locks) = 1 THEN 1 ELSE i END],
            v_lock,
            coalesce(p_args -> (i - 1), '{}'),
            p_scheduled_at[CASE WHEN cardinality(p_scheduled_at) = 1 THEN 1 ELSE i END],
            nullif(p_headers -> (CASE WHEN jsonb_array_length(p_headers) = 1 THEN 0 ELSE i - 1 END), 'null'))
    ON CONFLICT (queueing_lock) WHERE status = 'todo' AND queueing_lock IS NOT NULL
    DO UPDATE SET args = EXCLUDED.args,
                  scheduled_at = EXCLUDED.scheduled_at,
                  headers = coalesce(EXCLUDED.headers, j.headers),
                  events = j.events || jsonb_build_object('type', 'replaced', 'at', now())
      WHERE p_on_conflict = 'replace'
    RETURNING j.id INTO v_id;
    IF v_id IS NULL THEN
      -- Ignored: the waiting job, read in a new snapshot (it committed before our insert saw it).
      SELECT o.id INTO v_id FROM {{schema}}.jobs o WHERE o.queueing_lock = v_lock AND o.status = 'todo';
      IF v_id IS NULL THEN
        SELECT o.id INTO v_id FROM {{schema}}.jobs o WHERE o.queueing_lock = v_lock ORDER BY o.id DESC LIMIT 1;
      END IF;
    END IF;
    v_ids := v_ids || v_id;
  END LOOP;
  -- As defer_jobs_v3: one NOTIFY per queue, with "at" when every job of it waits for a schedule.
  PERFORM pg_notify('{{channel}}', json_build_object(
            'type', 'job', 'queue', o.queue_name,
            'at', CASE WHEN bool_and(coalesce(o.scheduled_at > now(), false)) THEN min(o.scheduled_at) END)::text)
  FROM {{schema}}.jobs o
  WHERE o.id = ANY (v_ids) AND o.status = 'todo'
  GROUP BY o.queue_name;
  RETURN QUERY SELECT t.id FROM unnest(v_ids) WITH ORDINALITY AS t(id, ord) ORDER BY t.ord;
END;
$$;
