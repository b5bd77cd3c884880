-- The complete proc schema at the latest migration. A test applies every file in
-- migrations/ to one database and this file to another and compares the catalogues:
-- they must be equal. Never edit a released migration; append a new one and update
-- this file to match.
--
-- {{schema}} is replaced by the configured (validated, quoted) schema name and
-- {{channel}} by the NOTIFY channel name derived from it.
--
-- Functions carry a version suffix (_v1): when a migration changes one, it adds _v2
-- and keeps _v1 until a later release, so old and new workers can run side by side
-- during a rolling deploy.

CREATE SCHEMA IF NOT EXISTS {{schema}};

CREATE TYPE {{schema}}.job_status AS ENUM ('todo', 'doing', 'succeeded', 'failed', 'cancelled', 'aborted');

CREATE TABLE {{schema}}.workers (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  host text NOT NULL,
  pid integer NOT NULL,
  queues text[],
  concurrency integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  last_heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX workers_last_heartbeat_at_idx ON {{schema}}.workers (last_heartbeat_at);

CREATE TABLE {{schema}}.jobs (
  id bigserial PRIMARY KEY,
  -- Names and locks are identifiers, compared byte for byte (COLLATE "C"): under a
  -- case- or accent-insensitive database collation, locks "A" and "a" would otherwise
  -- be one lock. Byte comparisons also make every insert into the indexes on these
  -- columns cheaper than locale-aware ones.
  queue_name text COLLATE "C" NOT NULL CHECK (length(queue_name) BETWEEN 1 AND 128),
  task_name text COLLATE "C" NOT NULL CHECK (length(task_name) BETWEEN 1 AND 128),
  priority integer NOT NULL DEFAULT 0,
  lock text COLLATE "C" CHECK (length(lock) BETWEEN 1 AND 256),
  queueing_lock text COLLATE "C" CHECK (length(queueing_lock) BETWEEN 1 AND 256),
  args jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(args) = 'object'),
  status {{schema}}.job_status NOT NULL DEFAULT 'todo',
  scheduled_at timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  stalled_count integer NOT NULL DEFAULT 0,
  -- The worker running the job, or that ran its last attempt; NULL while it waits
  -- (todo). Deliberately no foreign key: deleting a worker row must never rewrite
  -- jobs (Procrastinate issue #1454). The worker of every attempt is in the events.
  worker_id bigint,
  abort_requested boolean NOT NULL DEFAULT false,
  result jsonb,
  error jsonb,
  -- The job's history: an array of {"type", "at", ...} objects appended by the
  -- functions that change the job. Kept on the row rather than in a side table so
  -- that history costs no extra index or insert; it is deleted with the job. Events
  -- the columns already say are not stored, so that the hot paths (defer, fetch,
  -- complete) write no history at all; readers (jobFromRow) add them back:
  -- * first, {"type": "deferred", "at": created_at};
  -- * last, while the job is doing or succeeded: {"type": "started", "at": started_at,
  --   "worker_id": worker_id} (unless abort_requested, see derived_events_v1), then,
  --   once succeeded, {"type": "succeeded", "at": finished_at}.
  -- Any other change stores those last ones first (derived_events_v1), since the
  -- columns they come from are about to change or the order would be lost.
  -- (Measured: appending "started" and "succeeded" cost 12% of the database's time
  -- per job in a drain.)
  events jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  -- The claim count: +1 at every claim, never restored. Each claim is a distinct run,
  -- and a worker writes a run's outcome only while the job is still doing that run
  -- (fencing: a run that was recovered or claimed again can change nothing).
  run integer NOT NULL DEFAULT 0,
  -- String metadata carried from the defer to every run (the deferring span's W3C trace
  -- context, for one); NULL when there is none.
  headers jsonb CHECK (headers IS NULL OR jsonb_typeof(headers) = 'object')
);

-- Fetch: workers scan ready jobs by priority desc, id asc. Partial, so finished jobs
-- (the bulk of a long-lived table) are not in it and cost nothing to skip.
CREATE INDEX jobs_fetch_idx ON {{schema}}.jobs (priority DESC, id ASC) WHERE status = 'todo';
-- Fetch for workers that listen to a few queues of a busy table.
CREATE INDEX jobs_queue_fetch_idx ON {{schema}}.jobs (queue_name, priority DESC, id ASC) WHERE status = 'todo';
-- The earliest future job (worker timers) and ready scheduled jobs.
CREATE INDEX jobs_scheduled_at_idx ON {{schema}}.jobs (scheduled_at) WHERE status = 'todo' AND scheduled_at IS NOT NULL;
-- Locks: at most one doing job per lock, enforced across all processes.
CREATE UNIQUE INDEX jobs_lock_idx ON {{schema}}.jobs (lock) WHERE status = 'doing' AND lock IS NOT NULL;
-- The lock-order check during fetch looks up the other todo/doing jobs of a lock.
CREATE INDEX jobs_lock_order_idx ON {{schema}}.jobs (lock, priority DESC, id ASC) WHERE status IN ('todo', 'doing') AND lock IS NOT NULL;
-- Queueing locks: at most one todo job per queueing lock.
CREATE UNIQUE INDEX jobs_queueing_lock_idx ON {{schema}}.jobs (queueing_lock) WHERE status = 'todo' AND queueing_lock IS NOT NULL;
-- Stalled-job detection and abort polling look up doing jobs by worker.
CREATE INDEX jobs_worker_id_idx ON {{schema}}.jobs (worker_id) WHERE status = 'doing';
-- Cleanup of old finished jobs.
CREATE INDEX jobs_finished_at_idx ON {{schema}}.jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Periodic-task dedup: the primary key makes each (task, periodic id, tick) deferrable
-- exactly once, whatever the number of schedulers racing for it.
CREATE TABLE {{schema}}.periodic_defers (
  task_name text NOT NULL,
  periodic_id text NOT NULL,
  defer_timestamp bigint NOT NULL,
  job_id bigint,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (task_name, periodic_id, defer_timestamp)
);

-- When the database last heard a heartbeat, from any worker, and when the last silence
-- that every worker shared ended. One row.
CREATE TABLE {{schema}}.liveness (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  -- NULL until the first heartbeat of a v2 worker: a new database has had no silence.
  last_heartbeat_at timestamptz,
  -- The longest gap between two heartbeats (of any worker) that is not a silence, as
  -- the last beat said: no beat for longer means no worker can reach the database.
  silence_seconds double precision,
  silence_ended_at timestamptz
);
INSERT INTO {{schema}}.liveness DEFAULT VALUES;

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

-- Kept for workers of the previous release: defer_jobs_v3 without headers.
CREATE FUNCTION {{schema}}.defer_jobs_v2(
  p_queues text[], p_tasks text[], p_priorities integer[], p_locks text[], p_queueing_locks text[],
  p_args jsonb, p_scheduled_at timestamptz[])
RETURNS SETOF bigint
LANGUAGE sql
AS $$
  SELECT {{schema}}.defer_jobs_v3(p_queues, p_tasks, p_priorities, p_locks, p_queueing_locks, p_args,
                                  p_scheduled_at, NULL);
$$;
-- Kept for older workers: defer_jobs_v2 with the same arguments.
CREATE FUNCTION {{schema}}.defer_jobs_v1(
  p_queues text[], p_tasks text[], p_priorities integer[], p_locks text[], p_queueing_locks text[],
  p_args jsonb, p_scheduled_at timestamptz[])
RETURNS SETOF bigint
LANGUAGE sql
AS $$
  SELECT {{schema}}.defer_jobs_v2(p_queues, p_tasks, p_priorities, p_locks, p_queueing_locks, p_args, p_scheduled_at);
$$;

-- The events a reader derives from the columns of job j (see the events column): a
-- function that changes a doing or succeeded job any other way than the hot paths
-- stores them first, as `events || derived_events_v1(j) || <its own event>`, with j
-- the row before the change. While a job is doing, its "started" is derived unless
-- an abort was requested: that request is an event of the attempt, stored after the
-- attempt's "started", which it therefore stores first; abort_requested (reset by
-- every fetch) then says the start is stored.
CREATE FUNCTION {{schema}}.derived_events_v1(j {{schema}}.jobs)
RETURNS jsonb
LANGUAGE sql
STABLE
AS $$
  SELECT CASE WHEN j.status IN ('doing', 'succeeded') AND j.started_at IS NOT NULL AND NOT j.abort_requested
              THEN jsonb_build_array(jsonb_build_object('type', 'started', 'at', j.started_at, 'worker_id', j.worker_id))
              ELSE '[]'::jsonb END
      || CASE WHEN j.status = 'succeeded'
              THEN jsonb_build_array(jsonb_build_object('type', 'succeeded', 'at', j.finished_at))
              ELSE '[]'::jsonb END;
$$;

-- Whether a todo job of lock p_lock may start now: no other job of that lock is
-- doing, and no other todo job of it is ahead (priority desc, id asc) and either ready
-- or waiting for a retry. A job that has run before (attempts > 0) and waits for its
-- retry keeps its place, so that jobs of a lock run in order (as Procrastinate does);
-- a job deferred with a future schedule has not started its turn and does not block
-- (Procrastinate #1599).
-- plpgsql so that the plan is cached (a LANGUAGE sql function with a subquery is
-- neither inlined nor cached, and would be planned for every locked candidate).
CREATE FUNCTION {{schema}}.lock_is_free_v2(p_id bigint, p_lock text, p_priority integer)
RETURNS boolean
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
  RETURN NOT EXISTS (
    SELECT 1 FROM {{schema}}.jobs o
    WHERE o.lock = p_lock
      AND o.id <> p_id
      AND o.status IN ('todo', 'doing')
      AND (o.status = 'doing'
           OR ((o.scheduled_at IS NULL OR o.scheduled_at <= now() OR o.attempts > 0)
               AND (o.priority > p_priority OR (o.priority = p_priority AND o.id < p_id)))));
END;
$$;

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

-- Kept for workers of the previous release: fetch_jobs_v3 without headers.
CREATE FUNCTION {{schema}}.fetch_jobs_v2(p_worker_id bigint, p_queues text[], p_limit integer)
RETURNS TABLE (id bigint, queue_name text, task_name text, priority integer, lock text, queueing_lock text,
               args jsonb, attempts integer, run integer, stalled_count integer, error jsonb, events jsonb,
               scheduled_at_ms double precision, created_at_ms double precision, started_at_ms double precision)
LANGUAGE sql
AS $$
  SELECT f.id, f.queue_name, f.task_name, f.priority, f.lock, f.queueing_lock, f.args, f.attempts, f.run,
         f.stalled_count, f.error, f.events, f.scheduled_at_ms, f.created_at_ms, f.started_at_ms
  FROM {{schema}}.fetch_jobs_v3(p_worker_id, p_queues, p_limit) f;
$$;

-- Older workers claim through fetch_jobs_v2 too, so that every claim numbers its run.
CREATE FUNCTION {{schema}}.fetch_jobs_v1(p_worker_id bigint, p_queues text[], p_limit integer)
RETURNS TABLE (id bigint, queue_name text, task_name text, priority integer, lock text, queueing_lock text,
               args jsonb, attempts integer, stalled_count integer, error jsonb, events jsonb,
               scheduled_at_ms double precision, created_at_ms double precision, started_at_ms double precision)
LANGUAGE sql
AS $$
  SELECT f.id, f.queue_name, f.task_name, f.priority, f.lock, f.queueing_lock, f.args, f.attempts,
         f.stalled_count, f.error, f.events, f.scheduled_at_ms, f.created_at_ms, f.started_at_ms
  FROM {{schema}}.fetch_jobs_v2(p_worker_id, p_queues, p_limit) f;
$$;

-- Mark jobs succeeded in one call. Only jobs still doing on p_worker_id are touched:
-- a job that was recovered as stalled and handed to another worker keeps its new
-- state. p_delete drops the rows instead (worker option deleteJobs). p_results is a
-- JSON array, element i being the result of job p_ids[i], or NULL when no job has
-- one: one JSON document rather than a jsonb[] whose every element the client must
-- quote and escape as array text (measured: ~440 bytes of garbage per job in the
-- worker). A JSON null result is stored as SQL NULL. Returns the ids that were
-- finished, and tells waiters (waitForJob) on channel {{channel}}_done.
--
-- The plan must find the rows by primary key and join them to their results in linear
-- time, whatever the statistics say (a fresh table has none). Hence:
-- * the "doing on this worker" test is written as IS NOT DISTINCT FROM, which no index
--   can answer. As plain equalities, the planner reads the worker's rows through
--   jobs_worker_id_idx instead: that index keeps an entry for every job the worker
--   has run until VACUUM removes it, so the cost grew with recent history (measured
--   after 30,000 jobs: 26,700 entries and 1,480 heap pages read to complete 100 jobs,
--   2.3 ms, where the key lookups take 0.5 ms);
-- * j.id = ANY (p_ids) lets it fetch the rows by key before the join;
-- * no nested loop: misled by the estimate of the test above (1 row), the planner
--   nested a scan of the unnested ids inside a scan of the table, O(table × batch):
--   135 ms for 500 jobs of a 20,000-row table. A hash join is linear.
CREATE FUNCTION {{schema}}.complete_jobs_v1(p_worker_id bigint, p_ids bigint[], p_results jsonb, p_delete boolean)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET enable_nestloop = off
AS $$
DECLARE
  v_ids bigint[];
BEGIN
  IF p_delete THEN
    WITH d AS (
      DELETE FROM {{schema}}.jobs j
      WHERE j.id = ANY (p_ids) AND (j.status, j.worker_id) IS NOT DISTINCT FROM ('doing', coalesce(p_worker_id, j.worker_id))
      RETURNING j.id
    ) SELECT array_agg(id) INTO v_ids FROM d;
  ELSE
    WITH u AS (
      UPDATE {{schema}}.jobs j
      -- No event stored: "succeeded" is derived from finished_at (see the events column).
      SET status = 'succeeded',
          result = nullif(p_results -> (r.n - 1)::integer, 'null'::jsonb),
          finished_at = now()
      FROM unnest(p_ids) WITH ORDINALITY AS r(id, n)
      WHERE j.id = r.id AND j.id = ANY (p_ids)
        AND (j.status, j.worker_id) IS NOT DISTINCT FROM ('doing', coalesce(p_worker_id, j.worker_id))
      RETURNING j.id
    ) SELECT array_agg(id) INTO v_ids FROM u;
  END IF;
  PERFORM {{schema}}.notify_done_v1(v_ids, 'succeeded');
  RETURN QUERY SELECT unnest(v_ids);
END;
$$;

-- Tell waiters that jobs reached a final status: {"status", "ids"} payloads, split so
-- each stays well under NOTIFY's 8000-byte limit.
CREATE FUNCTION {{schema}}.notify_done_v1(p_ids bigint[], p_status text)
RETURNS void
LANGUAGE sql
AS $$
  SELECT pg_notify('{{channel}}_done', json_build_object('status', p_status, 'ids', array_agg(id))::text)
  FROM unnest(p_ids) WITH ORDINALITY AS t(id, n)
  GROUP BY (n - 1) / 400;
$$;

-- Give back doing jobs of a worker that never started them: a fetch whose result
-- was lost with the connection (it committed, the worker never saw the rows). They
-- return to todo as if never fetched (attempts restored).
CREATE FUNCTION {{schema}}.release_jobs_v1(p_worker_id bigint, p_ids bigint[])
RETURNS SETOF bigint
LANGUAGE sql
AS $$
  UPDATE {{schema}}.jobs j
  SET status = 'todo',
      worker_id = NULL,
      attempts = greatest(j.attempts - 1, 0),
      started_at = NULL,
      events = j.events || {{schema}}.derived_events_v1(j)
               || jsonb_build_object('type', 'released', 'at', now(), 'worker_id', p_worker_id)
  -- Not as equalities: see complete_jobs_v1.
  WHERE j.id = ANY (p_ids) AND (j.status, j.worker_id) IS NOT DISTINCT FROM ('doing', p_worker_id)
  RETURNING j.id;
$$;

-- End a doing job that did not succeed: p_status is 'failed' or 'aborted' (final), or
-- 'todo' to retry it at p_retry_at with optionally a new queue, priority or lock.
-- p_error is the error as JSON. Returns the job's new status, or NULL when the job
-- was no longer doing on this worker.
CREATE FUNCTION {{schema}}.fail_job_v1(
  p_worker_id bigint, p_id bigint, p_status {{schema}}.job_status, p_error jsonb,
  p_retry_at timestamptz, p_queue text, p_priority integer, p_lock text, p_delete boolean)
RETURNS {{schema}}.job_status
LANGUAGE plpgsql
AS $$
DECLARE
  v_status {{schema}}.job_status;
  v_queue text;
  v_conflict boolean;
BEGIN
  IF p_status = 'todo' THEN
    -- A newer todo job may hold this job's queueing lock by now: the retry then
    -- drops it (the rule is explained at retry_job_v1).
    SELECT EXISTS (SELECT 1 FROM {{schema}}.jobs o
                   WHERE o.queueing_lock = j.queueing_lock AND o.status = 'todo' AND o.id <> j.id)
    INTO v_conflict FROM {{schema}}.jobs j WHERE j.id = p_id;
    LOOP
      BEGIN
        UPDATE {{schema}}.jobs j
        SET status = 'todo',
            scheduled_at = p_retry_at,
            queue_name = coalesce(p_queue, j.queue_name),
            priority = coalesce(p_priority, j.priority),
            lock = coalesce(p_lock, j.lock),
            queueing_lock = CASE WHEN v_conflict THEN NULL ELSE j.queueing_lock END,
            worker_id = NULL,
            abort_requested = false,
            error = p_error,
            events = j.events || {{schema}}.derived_events_v1(j)
                     || jsonb_build_object('type', 'deferred_for_retry', 'at', now(), 'error', p_error,
                                           'retry_at', coalesce(p_retry_at, now()))
        WHERE j.id = p_id AND j.status = 'doing' AND (p_worker_id IS NULL OR j.worker_id = p_worker_id)
        RETURNING j.status, j.queue_name INTO v_status, v_queue;
        EXIT;
      EXCEPTION WHEN unique_violation THEN
        -- A concurrent defer took the queueing lock between the check and the update.
        IF v_conflict THEN RAISE; END IF;
        v_conflict := true;
      END;
    END LOOP;
    IF v_status IS NOT NULL THEN
      PERFORM pg_notify('{{channel}}', json_build_object('type', 'job', 'queue', v_queue,
              'at', CASE WHEN p_retry_at > now() THEN p_retry_at END)::text);
    END IF;
  ELSIF p_delete THEN
    DELETE FROM {{schema}}.jobs j
    WHERE j.id = p_id AND j.status = 'doing' AND (p_worker_id IS NULL OR j.worker_id = p_worker_id)
    RETURNING p_status INTO v_status;
  ELSE
    UPDATE {{schema}}.jobs j
    SET status = p_status,
        error = p_error,
        finished_at = now(),
        events = j.events || {{schema}}.derived_events_v1(j)
                 || jsonb_build_object('type', p_status::text, 'at', now(), 'error', p_error)
    WHERE j.id = p_id AND j.status = 'doing' AND (p_worker_id IS NULL OR j.worker_id = p_worker_id)
    RETURNING j.status INTO v_status;
  END IF;
  IF v_status IS NOT NULL AND v_status <> 'todo' THEN
    PERFORM {{schema}}.notify_done_v1(ARRAY[p_id], v_status::text);
  END IF;
  RETURN v_status;
END;
$$;

-- Put a job back to todo by hand or for stalled recovery (any status but todo).
-- Retrying a doing job counts as a stalled recovery (stalled_count + 1). With
-- p_doing_worker_id, only a job still doing on that worker is retried.
-- Rule for queueing locks (Procrastinate #1446, #1543): a queueing lock only guards
-- todo jobs, so when a newer todo job holds this job's queueing lock, this job is
-- retried without its queueing lock. Both jobs run; neither is lost and nothing
-- raises.
CREATE FUNCTION {{schema}}.retry_job_v1(p_id bigint, p_retry_at timestamptz, p_queue text, p_priority integer, p_lock text,
                                        p_doing_worker_id bigint)
RETURNS SETOF {{schema}}.jobs
LANGUAGE plpgsql
AS $$
DECLARE
  v_conflict boolean;
  v_job {{schema}}.jobs;
BEGIN
  SELECT EXISTS (SELECT 1 FROM {{schema}}.jobs o
                 WHERE o.queueing_lock = j.queueing_lock AND o.status = 'todo' AND o.id <> j.id)
  INTO v_conflict FROM {{schema}}.jobs j WHERE j.id = p_id;
  LOOP
    BEGIN
      UPDATE {{schema}}.jobs j
      SET status = 'todo',
          scheduled_at = p_retry_at,
          queue_name = coalesce(p_queue, j.queue_name),
          priority = coalesce(p_priority, j.priority),
          lock = coalesce(p_lock, j.lock),
          queueing_lock = CASE WHEN v_conflict THEN NULL ELSE j.queueing_lock END,
          stalled_count = j.stalled_count + CASE WHEN j.status = 'doing' THEN 1 ELSE 0 END,
          worker_id = NULL,
          abort_requested = false,
          finished_at = NULL,
          events = j.events || {{schema}}.derived_events_v1(j) || jsonb_build_object(
            'type', 'retried', 'at', now(), 'from', j.status::text, 'worker_id', j.worker_id,
            'queueing_lock_dropped', v_conflict AND j.queueing_lock IS NOT NULL)
      WHERE j.id = p_id AND j.status <> 'todo'
        -- Stalled recovery passes the worker it saw: if that worker finished the job
        -- (or it was retried already) in the meantime, nothing happens.
        AND (p_doing_worker_id IS NULL OR (j.status = 'doing' AND j.worker_id = p_doing_worker_id))
      RETURNING j.* INTO v_job;
      EXIT;
    EXCEPTION WHEN unique_violation THEN
      -- A concurrent defer took the queueing lock between the check and the update.
      IF v_conflict THEN RAISE; END IF;
      v_conflict := true;
    END;
  END LOOP;
  IF v_job.id IS NOT NULL THEN
    PERFORM pg_notify('{{channel}}', json_build_object('type', 'job', 'queue', v_job.queue_name,
            'at', CASE WHEN p_retry_at > now() THEN p_retry_at END)::text);
    RETURN NEXT v_job;
  END IF;
END;
$$;

-- Cancel a todo job (cancelled, or deleted with p_delete) or, with p_abort, ask a
-- doing job to abort: its worker is told by NOTIFY and by abort polling. Returns the
-- job's status afterwards (NULL when there is no such job; 'todo' never).
CREATE FUNCTION {{schema}}.cancel_job_v1(p_id bigint, p_abort boolean, p_delete boolean)
RETURNS {{schema}}.job_status
LANGUAGE plpgsql
AS $$
DECLARE
  v_status {{schema}}.job_status;
BEGIN
  IF p_delete THEN
    DELETE FROM {{schema}}.jobs WHERE id = p_id AND status = 'todo' RETURNING 'cancelled'::{{schema}}.job_status INTO v_status;
  ELSE
    UPDATE {{schema}}.jobs j
    SET status = 'cancelled', finished_at = now(),
        events = j.events || jsonb_build_object('type', 'cancelled', 'at', now())
    WHERE j.id = p_id AND j.status = 'todo'
    RETURNING j.status INTO v_status;
  END IF;
  IF v_status IS NOT NULL THEN
    PERFORM {{schema}}.notify_done_v1(ARRAY[p_id], 'cancelled');
    RETURN v_status;
  END IF;
  IF p_abort THEN
    UPDATE {{schema}}.jobs j
    SET abort_requested = true,
        events = j.events || {{schema}}.derived_events_v1(j) || jsonb_build_object('type', 'abort_requested', 'at', now())
    WHERE j.id = p_id AND j.status = 'doing' AND NOT j.abort_requested
    RETURNING j.status INTO v_status;
    IF v_status IS NOT NULL THEN
      PERFORM pg_notify('{{channel}}', json_build_object('type', 'abort', 'id', p_id)::text);
    END IF;
  END IF;
  SELECT status INTO v_status FROM {{schema}}.jobs WHERE id = p_id;
  RETURN v_status;
END;
$$;

CREATE FUNCTION {{schema}}.register_worker_v1(p_name text, p_host text, p_pid integer, p_queues text[], p_concurrency integer)
RETURNS bigint
LANGUAGE sql
AS $$
  INSERT INTO {{schema}}.workers (name, host, pid, queues, concurrency)
  VALUES (p_name, p_host, p_pid, p_queues, p_concurrency)
  RETURNING id;
$$;

-- Heartbeat: says whether the worker row still exists (it is re-registered when it
-- was pruned) and returns the ids of this worker's doing jobs that were asked to
-- abort, so that abort polling can ride on the heartbeat when LISTEN is off.
CREATE FUNCTION {{schema}}.heartbeat_worker_v1(p_worker_id bigint)
RETURNS TABLE (worker_found boolean, abort_job_ids bigint[])
LANGUAGE sql
AS $$
  WITH hb AS (
    UPDATE {{schema}}.workers SET last_heartbeat_at = now() WHERE id = p_worker_id RETURNING id
  )
  SELECT EXISTS (SELECT 1 FROM hb),
         coalesce((SELECT array_agg(id) FROM {{schema}}.jobs
                   WHERE worker_id = p_worker_id AND status = 'doing' AND abort_requested), '{}');
$$;

CREATE FUNCTION {{schema}}.unregister_worker_v1(p_worker_id bigint)
RETURNS void
LANGUAGE sql
AS $$
  DELETE FROM {{schema}}.workers WHERE id = p_worker_id;
$$;

-- Doing jobs whose worker is gone: its heartbeat is older than p_heartbeat_seconds or
-- its row no longer exists. With p_nb_seconds (legacy mode), jobs that started more
-- than that many seconds ago instead.
CREATE FUNCTION {{schema}}.get_stalled_jobs_v1(p_heartbeat_seconds double precision, p_nb_seconds double precision,
                                              p_queue text, p_task text)
RETURNS SETOF {{schema}}.jobs
LANGUAGE sql
AS $$
  SELECT j.*
  FROM {{schema}}.jobs j
  LEFT JOIN {{schema}}.workers w ON w.id = j.worker_id
  WHERE j.status = 'doing'
    AND (p_queue IS NULL OR j.queue_name = p_queue)
    AND (p_task IS NULL OR j.task_name = p_task)
    AND CASE WHEN p_nb_seconds IS NOT NULL
             THEN j.started_at < now() - make_interval(secs => p_nb_seconds)
             ELSE w.id IS NULL OR w.last_heartbeat_at < now() - make_interval(secs => p_heartbeat_seconds)
        END
  ORDER BY j.id;
$$;

-- Remove worker rows whose heartbeat is older than p_seconds. Their doing jobs become
-- stalled (worker row gone); they are not touched here.
CREATE FUNCTION {{schema}}.prune_workers_v1(p_seconds double precision)
RETURNS SETOF bigint
LANGUAGE sql
AS $$
  DELETE FROM {{schema}}.workers WHERE last_heartbeat_at < now() - make_interval(secs => p_seconds) RETURNING id;
$$;

-- Defer the job of one periodic tick exactly once across every scheduler. Returns the
-- new job id; NULL when the tick was already deferred by someone else or when the
-- task's queueing lock is taken (the tick is then skipped, not retried).
CREATE FUNCTION {{schema}}.defer_periodic_job_v1(p_task text, p_periodic_id text, p_timestamp bigint, p_job jsonb)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
  v_id bigint;
BEGIN
  INSERT INTO {{schema}}.periodic_defers (task_name, periodic_id, defer_timestamp)
  VALUES (p_task, p_periodic_id, p_timestamp)
  ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  BEGIN
    SELECT id INTO v_id FROM {{schema}}.defer_jobs_v1(
      ARRAY[p_job ->> 'queue'], ARRAY[p_job ->> 'task'], ARRAY[(p_job ->> 'priority')::integer],
      ARRAY[p_job ->> 'lock'], ARRAY[p_job ->> 'queueing_lock'], jsonb_build_array(p_job -> 'args'),
      ARRAY[NULL::timestamptz]) AS id;
  EXCEPTION WHEN unique_violation THEN
    v_id := NULL;
  END;
  UPDATE {{schema}}.periodic_defers SET job_id = v_id
  WHERE task_name = p_task AND periodic_id = p_periodic_id AND defer_timestamp = p_timestamp;
  -- Keep only recent ticks: older ones can no longer be raced for.
  DELETE FROM {{schema}}.periodic_defers
  WHERE task_name = p_task AND periodic_id = p_periodic_id AND defer_timestamp < p_timestamp - 86400 * 7;
  RETURN v_id;
END;
$$;

-- The latest deferred tick of a periodic task, for catch-up after downtime.
CREATE FUNCTION {{schema}}.last_periodic_tick_v1(p_task text, p_periodic_id text)
RETURNS bigint
LANGUAGE sql
AS $$
  SELECT max(defer_timestamp) FROM {{schema}}.periodic_defers WHERE task_name = p_task AND periodic_id = p_periodic_id;
$$;

-- ---- v2 (migration 2: fencing, shared silences) ----------------------------------
-- The _v1 functions above that these replace stay for workers of the previous release.

-- Mark the runs p_ids[i]/p_runs[i] succeeded in one call; a job that is no longer
-- doing that run (recovered, or claimed again) is left alone: the caller sees it
-- missing from the ids returned and reports a stale outcome. p_delete drops the rows
-- instead (worker option deleteJobs). p_results is a JSON array, element i being the
-- result of job p_ids[i], or NULL when no job has one: one JSON document rather than a
-- jsonb[] whose every element the client must quote and escape as array text
-- (measured: ~440 bytes of garbage per job in the worker). A JSON null result is
-- stored as SQL NULL. Returns the ids that were finished, and tells waiters
-- (waitForJob) on channel {{channel}}_done.
--
-- The plan must find the rows by primary key and join them to their runs in linear
-- time, whatever the statistics say (a fresh table has none). Hence:
-- * the "doing that run" test is written as IS NOT DISTINCT FROM, which no index can
--   answer: as an equality on status, the planner may read every doing job through
--   jobs_worker_id_idx, whose dead entries grow with recent history (measured after
--   30,000 jobs: 2.3 ms to complete 100 jobs, where the key lookups take 0.5 ms);
-- * j.id = ANY (p_ids) lets it fetch the rows by key before the join;
-- * no nested loop: misled by the estimate of that test (1 row), the planner nested a
--   scan of the unnested ids inside a scan of the table, O(table × batch): 135 ms for
--   500 jobs of a 20,000-row table. A hash join is linear.
-- lock_timeout: a user's transaction holding one of these rows (SELECT ... FOR UPDATE)
-- must not hold up the worker's writes for longer than that; the worker writes the
-- batch again, one by one, and the locked job later.
CREATE FUNCTION {{schema}}.complete_jobs_v2(p_ids bigint[], p_runs integer[], p_results jsonb, p_delete boolean)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET enable_nestloop = off
SET lock_timeout = '1s'
AS $$
DECLARE
  v_ids bigint[];
BEGIN
  IF p_delete THEN
    WITH d AS (
      DELETE FROM {{schema}}.jobs j
      USING unnest(p_ids, p_runs) AS r(id, run)
      WHERE j.id = r.id AND j.id = ANY (p_ids) AND (j.status, j.run) IS NOT DISTINCT FROM ('doing', r.run)
      RETURNING j.id
    ) SELECT array_agg(id) INTO v_ids FROM d;
  ELSE
    WITH u AS (
      UPDATE {{schema}}.jobs j
      -- No event stored: "succeeded" is derived from finished_at (see the events column).
      SET status = 'succeeded',
          result = nullif(p_results -> (r.n - 1)::integer, 'null'::jsonb),
          finished_at = now()
      FROM unnest(p_ids, p_runs) WITH ORDINALITY AS r(id, run, n)
      WHERE j.id = r.id AND j.id = ANY (p_ids) AND (j.status, j.run) IS NOT DISTINCT FROM ('doing', r.run)
      RETURNING j.id
    ) SELECT array_agg(id) INTO v_ids FROM u;
  END IF;
  PERFORM {{schema}}.notify_done_v1(v_ids, 'succeeded');
  RETURN QUERY SELECT unnest(v_ids);
END;
$$;

-- Put a job back to todo: the one place that knows how, for a run that failed and is
-- retried (p_kind 'deferred_for_retry'), a manual or stalled retry ('retried': any
-- status but todo; a doing job counts as a stalled recovery), and a claim given back
-- unstarted ('released': attempts restored, schedule kept). With p_run, only a job
-- still doing that run is touched. A doing job whose abort was requested does not go
-- back: it ends aborted (an abort request is never lost to a retry, a recovery or a
-- release). Returns the row after the change, or NULL when nothing was done.
--
-- The row is locked first, so that a wait on it (a user's transaction holding it)
-- ends in lock_timeout and the caller tries again later, instead of holding up its
-- connection. Rule for queueing locks (Procrastinate #1446, #1543): a queueing lock
-- only guards todo jobs, so when a newer todo job holds this job's queueing lock, this
-- job goes back without it: both run, neither is lost and nothing raises. A newer job
-- whose defer has not committed yet makes the update wait on the index entry; after
-- lock_timeout that counts as a conflict too (the defer may well commit).
CREATE FUNCTION {{schema}}.requeue_job_v2(
  p_kind text, p_id bigint, p_run integer, p_retry_at timestamptz, p_queue text, p_priority integer,
  p_lock text, p_error jsonb)
RETURNS {{schema}}.jobs
LANGUAGE plpgsql
SET lock_timeout = '1s'
AS $$
DECLARE
  v_old {{schema}}.jobs;
  v_new {{schema}}.jobs;
  v_drop boolean;
BEGIN
  SELECT * INTO v_old FROM {{schema}}.jobs j
  WHERE j.id = p_id AND j.status <> 'todo' AND (p_run IS NULL OR (j.status = 'doing' AND j.run = p_run))
  FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF v_old.status = 'doing' AND v_old.abort_requested THEN
    p_error := coalesce(p_error, jsonb_build_object('name', 'JobAbortedError', 'message',
      'the job was asked to abort before this run could end; it is not run again'));
    UPDATE {{schema}}.jobs j
    SET status = 'aborted',
        error = p_error,
        finished_at = now(),
        events = j.events || {{schema}}.derived_events_v1(j)
                 || jsonb_build_object('type', 'aborted', 'at', now(), 'error', p_error, 'worker_id', j.worker_id)
    WHERE j.id = p_id
    RETURNING j.* INTO v_new;
    PERFORM {{schema}}.notify_done_v1(ARRAY[p_id], 'aborted');
    RETURN v_new;
  END IF;
  v_drop := v_old.queueing_lock IS NOT NULL AND EXISTS (
    SELECT 1 FROM {{schema}}.jobs o
    WHERE o.queueing_lock = v_old.queueing_lock AND o.status = 'todo' AND o.id <> p_id);
  LOOP
    BEGIN
      UPDATE {{schema}}.jobs j
      SET status = 'todo',
          scheduled_at = CASE WHEN p_kind = 'released' THEN j.scheduled_at ELSE p_retry_at END,
          queue_name = coalesce(p_queue, j.queue_name),
          priority = coalesce(p_priority, j.priority),
          lock = coalesce(p_lock, j.lock),
          queueing_lock = CASE WHEN v_drop THEN NULL ELSE j.queueing_lock END,
          attempts = CASE WHEN p_kind = 'released' THEN greatest(j.attempts - 1, 0) ELSE j.attempts END,
          stalled_count = j.stalled_count + CASE WHEN p_kind = 'retried' AND j.status = 'doing' THEN 1 ELSE 0 END,
          worker_id = NULL,
          abort_requested = false,
          error = coalesce(p_error, j.error),
          started_at = CASE WHEN p_kind = 'released' THEN NULL ELSE j.started_at END,
          finished_at = NULL,
          -- One event: (array || object) appends the object, and the parentheses
          -- merge the flag into it rather than append a second element.
          events = j.events || {{schema}}.derived_events_v1(j) || (CASE p_kind
            WHEN 'deferred_for_retry' THEN jsonb_build_object(
              'type', p_kind, 'at', now(), 'error', p_error, 'retry_at', coalesce(p_retry_at, now()))
            WHEN 'retried' THEN jsonb_build_object(
              'type', p_kind, 'at', now(), 'from', j.status::text, 'worker_id', j.worker_id)
            ELSE jsonb_build_object('type', p_kind, 'at', now(), 'worker_id', j.worker_id)
          END || CASE WHEN v_drop OR p_kind = 'retried'
                      THEN jsonb_build_object('queueing_lock_dropped', v_drop) ELSE '{}'::jsonb END)
      WHERE j.id = p_id
      RETURNING j.* INTO v_new;
      EXIT;
    EXCEPTION WHEN unique_violation OR lock_not_available THEN
      -- A concurrent defer took the queueing lock after the check above.
      IF v_drop THEN RAISE; END IF;
      v_drop := true;
    END;
  END LOOP;
  PERFORM pg_notify('{{channel}}', json_build_object('type', 'job', 'queue', v_new.queue_name,
          'at', CASE WHEN v_new.scheduled_at > now() THEN v_new.scheduled_at END)::text);
  RETURN v_new;
END;
$$;

-- End run p_run of doing job p_id, which did not succeed: p_status is 'failed' or
-- 'aborted' (final), or 'todo' to retry it at p_retry_at with optionally a new queue,
-- priority or lock. p_error is the error as JSON. Returns the job's new status, or NULL
-- when the job was no longer doing that run (the outcome is stale).
CREATE FUNCTION {{schema}}.fail_job_v2(
  p_id bigint, p_run integer, p_status {{schema}}.job_status, p_error jsonb,
  p_retry_at timestamptz, p_queue text, p_priority integer, p_lock text, p_delete boolean)
RETURNS {{schema}}.job_status
LANGUAGE plpgsql
-- See complete_jobs_v2.
SET lock_timeout = '1s'
AS $$
DECLARE
  v_status {{schema}}.job_status;
BEGIN
  IF p_status = 'todo' THEN
    SELECT j.status INTO v_status
    FROM {{schema}}.requeue_job_v2('deferred_for_retry', p_id, p_run, p_retry_at, p_queue, p_priority, p_lock, p_error) j;
    RETURN v_status;
  ELSIF p_delete THEN
    DELETE FROM {{schema}}.jobs j
    WHERE j.id = p_id AND j.status = 'doing' AND j.run = p_run
    RETURNING p_status INTO v_status;
  ELSE
    UPDATE {{schema}}.jobs j
    SET status = p_status,
        error = p_error,
        finished_at = now(),
        events = j.events || {{schema}}.derived_events_v1(j)
                 || jsonb_build_object('type', p_status::text, 'at', now(), 'error', p_error)
    WHERE j.id = p_id AND j.status = 'doing' AND j.run = p_run
    RETURNING j.status INTO v_status;
  END IF;
  IF v_status IS NOT NULL THEN
    PERFORM {{schema}}.notify_done_v1(ARRAY[p_id], v_status::text);
  END IF;
  RETURN v_status;
END;
$$;

-- Give back runs that their worker claimed but never started (prefetched jobs at stop,
-- or a fetch whose result was lost with the connection). They return to todo as if
-- never fetched: attempts restored, schedule kept, not a stall. Returns their ids.
CREATE FUNCTION {{schema}}.release_jobs_v2(p_ids bigint[], p_runs integer[])
RETURNS SETOF bigint
LANGUAGE sql
AS $$
  SELECT r.id
  FROM unnest(p_ids, p_runs) AS r(id, run),
       LATERAL {{schema}}.requeue_job_v2('released', r.id, r.run, NULL, NULL, NULL, NULL, NULL) j
  WHERE j.id IS NOT NULL
  ORDER BY r.id;
$$;

-- Put a job back to todo by hand or for stalled recovery (any status but todo).
-- Retrying a doing job counts as a stalled recovery (stalled_count + 1). With
-- p_doing_run, only a job still doing that run is retried (stalled recovery passes the
-- run it saw: if that run finished, or the job was retried already, nothing happens).
-- A doing job whose abort was requested is not run again: it ends aborted.
CREATE FUNCTION {{schema}}.retry_job_v2(p_id bigint, p_retry_at timestamptz, p_queue text, p_priority integer,
                                        p_lock text, p_doing_run integer)
RETURNS SETOF {{schema}}.jobs
LANGUAGE sql
AS $$
  SELECT j.* FROM {{schema}}.requeue_job_v2('retried', p_id, p_doing_run, p_retry_at, p_queue, p_priority, p_lock, NULL) j
  WHERE j.id IS NOT NULL;
$$;

-- Heartbeat of worker p_worker_id, which runs (or holds, prefetched) runs
-- p_ids[i]/p_runs[i]. Says whether the worker row still exists (it is re-registered
-- when it was pruned), which of those runs were asked to abort, and which are lost:
-- no longer doing that run (recovered as stalled, then maybe claimed again), so that
-- the worker aborts them and does not start them.
--
-- It also keeps `liveness`: a beat that finds that no worker at all has beaten for
-- more than p_silence_seconds ends a shared silence (the database restarted or failed
-- over, or the network was cut), which stalled detection then does not count against
-- anyone. At most one write a second, and never a wait: a beat that finds the row
-- locked leaves it to the beat holding it.
CREATE FUNCTION {{schema}}.heartbeat_worker_v2(p_worker_id bigint, p_ids bigint[], p_runs integer[],
                                              p_silence_seconds double precision)
RETURNS TABLE (worker_found boolean, abort_job_ids bigint[], lost_job_ids bigint[])
LANGUAGE plpgsql
SET lock_timeout = '1s'
AS $$
BEGIN
  UPDATE {{schema}}.liveness l
  SET silence_ended_at = CASE WHEN l.last_heartbeat_at < now() - make_interval(secs => p_silence_seconds)
                              THEN now() ELSE l.silence_ended_at END,
      last_heartbeat_at = now(),
      silence_seconds = p_silence_seconds
  WHERE l.singleton = (SELECT s.singleton FROM {{schema}}.liveness s
                       WHERE s.last_heartbeat_at IS NULL OR s.last_heartbeat_at < now() - interval '1 second'
                       FOR UPDATE SKIP LOCKED);
  UPDATE {{schema}}.workers SET last_heartbeat_at = now() WHERE id = p_worker_id;
  worker_found := FOUND;
  SELECT coalesce(array_agg(r.id ORDER BY r.id) FILTER (WHERE j.abort_requested), '{}'),
         coalesce(array_agg(r.id ORDER BY r.id) FILTER (WHERE j.id IS NULL), '{}')
  INTO abort_job_ids, lost_job_ids
  FROM unnest(p_ids, p_runs) AS r(id, run)
  LEFT JOIN {{schema}}.jobs j ON j.id = r.id AND j.status = 'doing' AND j.run = r.run;
  RETURN NEXT;
END;
$$;

-- Since when a worker's silence counts: the end of the last silence every worker
-- shared, or now while one goes on (see get_stalled_jobs_v2). NULL: none was seen.
CREATE FUNCTION {{schema}}.silence_end_v2(l {{schema}}.liveness)
RETURNS timestamptz
LANGUAGE sql
STABLE
AS $$
  SELECT CASE WHEN l.last_heartbeat_at < now() - make_interval(secs => l.silence_seconds) THEN now()
              ELSE l.silence_ended_at END;
$$;

-- Doing jobs whose worker is gone: its heartbeat is older than p_heartbeat_seconds or
-- its row no longer exists, counting only since the last shared silence ended (see
-- heartbeat_worker_v2): a live worker is never judged on a silence it could not help.
-- While such a silence goes on (no worker at all has beaten for longer than the last
-- beat's silence_seconds), nobody is judged: every worker is dead or cut off, the
-- checker cannot tell which, and recovered jobs would have nobody to run them anyway.
-- With p_nb_seconds (legacy mode), jobs that started more than that many seconds ago.
CREATE FUNCTION {{schema}}.get_stalled_jobs_v2(p_heartbeat_seconds double precision, p_nb_seconds double precision,
                                              p_queue text, p_task text)
RETURNS SETOF {{schema}}.jobs
LANGUAGE sql
AS $$
  SELECT j.*
  FROM {{schema}}.jobs j
  LEFT JOIN {{schema}}.workers w ON w.id = j.worker_id
  WHERE j.status = 'doing'
    AND (p_queue IS NULL OR j.queue_name = p_queue)
    AND (p_task IS NULL OR j.task_name = p_task)
    AND CASE WHEN p_nb_seconds IS NOT NULL
             THEN j.started_at < now() - make_interval(secs => p_nb_seconds)
             ELSE coalesce(greatest(w.last_heartbeat_at, (SELECT {{schema}}.silence_end_v2(l) FROM {{schema}}.liveness l)),
                           '-infinity') < now() - make_interval(secs => p_heartbeat_seconds)
        END
  ORDER BY j.id;
$$;

-- Remove worker rows silent for more than p_seconds, counted as in get_stalled_jobs_v2.
-- Their doing jobs become stalled (worker row gone); they are not touched here.
CREATE FUNCTION {{schema}}.prune_workers_v2(p_seconds double precision)
RETURNS SETOF bigint
LANGUAGE sql
AS $$
  DELETE FROM {{schema}}.workers
  WHERE greatest(last_heartbeat_at, (SELECT {{schema}}.silence_end_v2(l) FROM {{schema}}.liveness l))
        < now() - make_interval(secs => p_seconds)
  RETURNING id;
$$;
