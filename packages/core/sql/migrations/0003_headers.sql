-- Migration 3: job headers.
--
-- A job carries string metadata from the defer that created it to every run: the W3C
-- trace context of the deferring span (traceparent, tracestate), which @proc/otel
-- stores so that each run can be linked to the request that deferred it; anything a
-- plugin wants to propagate the same way. Set by the defer statement itself (no second
-- write), returned by the claim, NULL when a job has none, which is every job of an
-- app without such a plugin: an absent column value costs nothing in the row.
--
-- ADD COLUMN of a nullable column without a default is a catalogue change only: no
-- table rewrite, whatever the size of the table.
ALTER TABLE {{schema}}.jobs ADD COLUMN headers jsonb
  CHECK (headers IS NULL OR jsonb_typeof(headers) = 'object');

-- Defer a batch of jobs atomically, with their headers (p_headers: NULL for none, or a
-- JSON array of one object per job, or one for all). One array per column, element i of each being
-- job i (locks, queueing locks and scheduled_at may be NULL; p_args is a JSON array
-- of objects); a column array of one element holds the value of every job, as in a
-- batch of one task (measured: the client then sends and Postgres parses 5 values
-- instead of 5,000 per 1,000 jobs). Column arrays rather than one JSON array of job
-- objects: Postgres then parses each value with its own type's input function
-- instead of a JSON document with every key repeated per job (measured: 5.7 instead
-- of 6.6 ms per 1,000 jobs). One statement: a queueing-lock conflict anywhere in the batch raises
-- unique_violation on jobs_queueing_lock_idx and nothing is inserted. One NOTIFY per
-- distinct queue (per transaction; Postgres folds duplicates), fired on commit.
CREATE FUNCTION {{schema}}.defer_jobs_v3(
  p_queues text[], p_tasks text[], p_priorities integer[], p_locks text[], p_queueing_locks text[],
  p_args jsonb, p_scheduled_at timestamptz[], p_headers jsonb)
RETURNS SETOF bigint
LANGUAGE plpgsql
-- plpgsql caches the plan (a LANGUAGE sql function is planned on every call), and a
-- batch insert is never worth JIT compiling (it costs ~25 ms when the cost estimate
-- of a large batch crosses jit_above_cost).
SET jit = off
AS $$
DECLARE
  n integer := CASE WHEN jsonb_typeof(p_args) = 'array' THEN jsonb_array_length(p_args) END;
BEGIN
  IF n IS NULL OR cardinality(p_queues) NOT IN (1, n) OR cardinality(p_tasks) NOT IN (1, n)
     OR cardinality(p_priorities) NOT IN (1, n) OR cardinality(p_locks) NOT IN (1, n)
     OR cardinality(p_queueing_locks) NOT IN (1, n) OR cardinality(p_scheduled_at) NOT IN (1, n)
     OR (p_headers IS NOT NULL AND (jsonb_typeof(p_headers) <> 'array'
                                    OR jsonb_array_length(p_headers) NOT IN (1, n))) THEN
    RAISE EXCEPTION 'defer_jobs_v3: every argument must have one element per job, or one for all'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Widen the one-for-all columns (array_fill is cheap next to parsing n values).
  -- Not even looked at for a single job, the most common call.
  IF n > 1 THEN
    IF cardinality(p_queues) = 1 THEN p_queues := array_fill(p_queues[1], ARRAY[n]); END IF;
    IF cardinality(p_tasks) = 1 THEN p_tasks := array_fill(p_tasks[1], ARRAY[n]); END IF;
    IF cardinality(p_priorities) = 1 THEN p_priorities := array_fill(p_priorities[1], ARRAY[n]); END IF;
    IF cardinality(p_locks) = 1 THEN p_locks := array_fill(p_locks[1], ARRAY[n]); END IF;
    IF cardinality(p_queueing_locks) = 1 THEN p_queueing_locks := array_fill(p_queueing_locks[1], ARRAY[n]); END IF;
    IF cardinality(p_scheduled_at) = 1 THEN p_scheduled_at := array_fill(p_scheduled_at[1], ARRAY[n]); END IF;
    IF jsonb_array_length(p_headers) = 1 THEN
      p_headers := (SELECT jsonb_agg(p_headers -> 0) FROM generate_series(1, n));
    END IF;
  END IF;
  RETURN QUERY
  WITH inserted AS (
    INSERT INTO {{schema}}.jobs (queue_name, task_name, priority, lock, queueing_lock, args, scheduled_at,
                                 headers)
    SELECT j.queue, j.task, coalesce(j.priority, 0), j.lock, j.queueing_lock, coalesce(j.args, '{}'),
           j.scheduled_at, nullif(j.headers, 'null')
    -- ROWS FROM walks the arrays in lockstep: row i holds element i of each (and
    -- NULL headers for every row when p_headers is NULL: it pads a shorter function).
    FROM ROWS FROM (unnest(p_queues), unnest(p_tasks), unnest(p_priorities), unnest(p_locks),
                    unnest(p_queueing_locks), jsonb_array_elements(p_args), unnest(p_scheduled_at),
                    jsonb_array_elements(p_headers))
         WITH ORDINALITY AS j(queue, task, priority, lock, queueing_lock, args, scheduled_at, headers, ord)
    ORDER BY j.ord
    RETURNING id, queue_name, scheduled_at
  ), notified AS (
    -- "at" is set only when every new job of the queue is in the future, so that a
    -- worker can arm a timer instead of fetching for nothing. coalesce: a job with no
    -- schedule is ready now, and bool_and would skip its NULL (v1 did, and a ready job
    -- deferred beside a future one then waited for the next poll).
    SELECT pg_notify('{{channel}}', json_build_object(
             'type', 'job', 'queue', queue_name,
             'at', CASE WHEN bool_and(coalesce(scheduled_at > now(), false)) THEN min(scheduled_at) END)::text)
    FROM inserted
    GROUP BY queue_name
  )
  -- Referencing "notified" makes Postgres run it (an unreferenced SELECT CTE is skipped).
  SELECT i.id FROM inserted i WHERE (SELECT count(*) FROM notified) >= 0 ORDER BY i.id;
END;
$$;


-- Kept for workers of the previous release: defer_jobs_v3 without headers.
CREATE OR REPLACE FUNCTION {{schema}}.defer_jobs_v2(
  p_queues text[], p_tasks text[], p_priorities integer[], p_locks text[], p_queueing_locks text[],
  p_args jsonb, p_scheduled_at timestamptz[])
RETURNS SETOF bigint
LANGUAGE sql
AS $$
  SELECT {{schema}}.defer_jobs_v3(p_queues, p_tasks, p_priorities, p_locks, p_queueing_locks, p_args,
                                  p_scheduled_at, NULL);
$$;

-- Claim up to p_limit ready jobs for worker p_worker_id in one round trip, returned in
-- the order they should start (priority desc, id asc). Each claim is a new run
-- (run + 1): the worker writes the run's outcome with that number, and the write is
-- refused once the job has been claimed again or recovered. A job with a lock is
-- eligible only when lock_is_free_v2 says so. Because a claimed head stays visible as
-- todo to concurrent fetchers until it commits, they skip the rest of that lock instead
-- of racing for it; jobs_lock_idx is the backstop (the caller retries a fetch that hits it).
--
-- It returns what a worker does not already know about each job (not its status,
-- worker, result or finish time), with times as Unix milliseconds: the worker parses
-- every row of every fetch, and a timestamp's text costs a regular expression and
-- several strings to parse where a number costs nothing.
CREATE FUNCTION {{schema}}.fetch_jobs_v3(p_worker_id bigint, p_queues text[], p_limit integer)
RETURNS TABLE (id bigint, queue_name text, task_name text, priority integer, lock text, queueing_lock text,
               args jsonb, attempts integer, run integer, stalled_count integer, error jsonb, events jsonb,
               scheduled_at_ms double precision, created_at_ms double precision, started_at_ms double precision,
               headers jsonb)
LANGUAGE plpgsql
-- Each candidate query must walk its index in order (jobs_fetch_idx, or
-- jobs_queue_fetch_idx for one queue) and stop after p_limit rows. The planner would
-- rather sort every todo row: a generic plan assumes LIMIT $n returns 10% of the
-- table, and freshly inserted rows are not analysed yet (measured with 20,000 todo
-- jobs: 4-12 ms per fetch sorted, 0.15-0.2 ms in index order). enable_sort = off
-- leaves the index order as the only sensible plan. One static query per index, so
-- that each has a generic plan made once per session: planning the fetch on every
-- call (a custom plan) cost 0.24 of the 0.69 ms that claiming one job takes. No JIT:
-- it never pays off here.
SET plan_cache_mode = force_generic_plan
SET enable_sort = off
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
  -- The claimed rows' physical addresses: the update below then reads them directly
  -- (a TID scan) instead of looking each up in the primary key (measured: 0.5 µs per
  -- job). Safe because the rows stay locked by this transaction until it ends, so
  -- nobody else can move them.
  v_ctids tid[];
BEGIN
  IF cardinality(p_queues) = 1 THEN
    -- One queue: an equality, so that jobs_queue_fetch_idx gives the order.
    SELECT array_agg(c.ctid) INTO v_ctids FROM (
      SELECT j.ctid FROM {{schema}}.jobs j
      WHERE j.status = 'todo' AND j.queue_name = p_queues[1]
        AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
        AND (j.lock IS NULL OR {{schema}}.lock_is_free_v2(j.id, j.lock, j.priority))
      ORDER BY j.priority DESC, j.id ASC
      LIMIT p_limit
      FOR UPDATE OF j SKIP LOCKED) c;
  ELSE
    -- Every queue, or several: jobs_fetch_idx gives the order (ANY over several
    -- queues could use jobs_queue_fetch_idx only with a sort).
    SELECT array_agg(c.ctid) INTO v_ctids FROM (
      SELECT j.ctid FROM {{schema}}.jobs j
      WHERE j.status = 'todo' AND (p_queues IS NULL OR j.queue_name = ANY (p_queues))
        AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
        AND (j.lock IS NULL OR {{schema}}.lock_is_free_v2(j.id, j.lock, j.priority))
      ORDER BY j.priority DESC, j.id ASC
      LIMIT p_limit
      FOR UPDATE OF j SKIP LOCKED) c;
  END IF;
  IF v_ctids IS NULL THEN
    RETURN;
  END IF;
  -- The rows are locked (FOR UPDATE above) until this transaction ends.
  RETURN QUERY
  WITH claimed AS (
    UPDATE {{schema}}.jobs j
    SET status = 'doing',
        worker_id = p_worker_id,
        attempts = j.attempts + 1,
        run = j.run + 1,
        abort_requested = false,
        started_at = now()
    WHERE j.ctid = ANY (v_ctids)
    RETURNING j.id, j.queue_name, j.task_name, j.priority, j.lock, j.queueing_lock, j.args, j.attempts,
              j.run, j.stalled_count, j.error, j.events,
              -- Whole milliseconds, computed exactly (numeric), as a JavaScript Date holds them.
              (extract(epoch FROM date_trunc('milliseconds', j.scheduled_at)) * 1000)::float8 AS scheduled_at_ms,
              (extract(epoch FROM date_trunc('milliseconds', j.created_at)) * 1000)::float8 AS created_at_ms,
              (extract(epoch FROM date_trunc('milliseconds', j.started_at)) * 1000)::float8 AS started_at_ms,
              j.headers
  )
  SELECT c.id, c.queue_name, c.task_name, c.priority, c.lock, c.queueing_lock, c.args, c.attempts,
         c.run, c.stalled_count, c.error, c.events, c.scheduled_at_ms, c.created_at_ms, c.started_at_ms,
         c.headers
  FROM claimed c ORDER BY c.priority DESC, c.id ASC;
END;
$$;

-- Kept for workers of the previous release: fetch_jobs_v3 without headers.
CREATE OR REPLACE FUNCTION {{schema}}.fetch_jobs_v2(p_worker_id bigint, p_queues text[], p_limit integer)
RETURNS TABLE (id bigint, queue_name text, task_name text, priority integer, lock text, queueing_lock text,
               args jsonb, attempts integer, run integer, stalled_count integer, error jsonb, events jsonb,
               scheduled_at_ms double precision, created_at_ms double precision, started_at_ms double precision)
LANGUAGE sql
AS $$
  SELECT f.id, f.queue_name, f.task_name, f.priority, f.lock, f.queueing_lock, f.args, f.attempts, f.run,
         f.stalled_count, f.error, f.events, f.scheduled_at_ms, f.created_at_ms, f.started_at_ms
  FROM {{schema}}.fetch_jobs_v3(p_worker_id, p_queues, p_limit) f;
$$;
