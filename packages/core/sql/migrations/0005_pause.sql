-- Migration 5: pausing queues.

-- Paused queues: their jobs are not claimed (fetch_jobs_v3 reads this table once per
-- fetch) until resumed; deferring still works, running jobs finish. A row per queue,
-- whether or not it has jobs, so that a pause outlives every worker and even an empty queue.
CREATE TABLE {{schema}}.paused_queues (
  queue_name text COLLATE "C" PRIMARY KEY CHECK (length(queue_name) BETWEEN 1 AND 128),
  paused_at timestamptz NOT NULL DEFAULT now()
);

-- Pause (p_paused) or resume queue p_queue; true when that changed something. Tells the
-- workers on {{channel}} ({"type": "pause" | "resume", "queue": ...}) so that they drop the
-- queue's prefetched jobs at once and, on resume, fetch at once.
CREATE FUNCTION {{schema}}.pause_queue_v1(p_queue text, p_paused boolean)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
  v_changed integer;
BEGIN
  IF p_paused THEN
    INSERT INTO {{schema}}.paused_queues (queue_name) VALUES (p_queue) ON CONFLICT DO NOTHING;
  ELSE
    DELETE FROM {{schema}}.paused_queues WHERE queue_name = p_queue;
  END IF;
  GET DIAGNOSTICS v_changed = ROW_COUNT;
  IF v_changed > 0 THEN
    PERFORM pg_notify('{{channel}}', json_build_object(
              'type', CASE WHEN p_paused THEN 'pause' ELSE 'resume' END, 'queue', p_queue)::text);
  END IF;
  RETURN v_changed > 0;
END;
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
CREATE OR REPLACE FUNCTION {{schema}}.fetch_jobs_v3(p_worker_id bigint, p_queues text[], p_limit integer)
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
  v_paused text[];
BEGIN
  -- Paused queues (pause_queue_v1): their jobs are not claimed. Read once per fetch; the
  -- paths below are the usual ones unless some queue is paused.
  SELECT array_agg(pq.queue_name) INTO v_paused FROM {{schema}}.paused_queues pq;
  IF v_paused IS NOT NULL AND p_queues IS NOT NULL THEN
    -- A worker of some queues: the same paths, without the paused ones.
    p_queues := ARRAY(SELECT unnest(p_queues) EXCEPT SELECT unnest(v_paused));
    IF cardinality(p_queues) = 0 THEN
      RETURN;
    END IF;
  END IF;
  IF v_paused IS NOT NULL AND p_queues IS NULL THEN
    -- A worker of every queue while some are paused. Walking jobs_fetch_idx and skipping
    -- the paused queues' jobs would read every one of them on every fetch (a paused queue
    -- is usually the one with a backlog). Instead: the queues that have todo jobs, read
    -- from jobs_queue_fetch_idx one step per queue (a loose index scan), the best p_limit
    -- candidates of each unpaused queue, and the best p_limit of those, claimed.
    SELECT array_agg(c.ctid) INTO v_ctids FROM (
      SELECT j.ctid FROM {{schema}}.jobs j
      WHERE j.id = ANY (ARRAY(
              SELECT cand.id
              FROM (
                WITH RECURSIVE queues(name) AS (
                  (SELECT q.queue_name FROM {{schema}}.jobs q WHERE q.status = 'todo'
                   ORDER BY q.queue_name LIMIT 1)
                  UNION ALL
                  SELECT (SELECT q.queue_name FROM {{schema}}.jobs q
                          WHERE q.status = 'todo' AND q.queue_name > queues.name
                          ORDER BY q.queue_name LIMIT 1)
                  FROM queues WHERE queues.name IS NOT NULL)
                SELECT queues.name FROM queues
                WHERE queues.name IS NOT NULL AND queues.name <> ALL (v_paused)) active,
              LATERAL (
                SELECT o.id, o.priority FROM {{schema}}.jobs o
                WHERE o.status = 'todo' AND o.queue_name = active.name
                  AND (o.scheduled_at IS NULL OR o.scheduled_at <= now())
                  AND (o.lock IS NULL OR {{schema}}.lock_is_free_v2(o.id, o.lock, o.priority))
                ORDER BY o.priority DESC, o.id ASC
                LIMIT p_limit) cand
              ORDER BY cand.priority DESC, cand.id ASC
              LIMIT p_limit))
        AND j.status = 'todo'
      ORDER BY j.priority DESC, j.id ASC
      LIMIT p_limit
      FOR UPDATE OF j SKIP LOCKED) c;
  ELSIF cardinality(p_queues) = 1 THEN
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
