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
  headers jsonb CHECK (headers IS NULL OR jsonb_typeof(headers) = 'object'),
  -- A job's own limits (flow control, see migration 6): the job starts only while fewer
  -- than concurrency_limit jobs of concurrency_key are doing, and while fewer than
  -- rate_max jobs of rate_key started in the last rate_per_ms; not started by expire_at,
  -- it ends cancelled (reason "expired") unrun.
  concurrency_key text COLLATE "C" CHECK (length(concurrency_key) BETWEEN 1 AND 256),
  concurrency_limit integer CHECK (concurrency_limit >= 1),
  rate_key text COLLATE "C" CHECK (length(rate_key) BETWEEN 1 AND 256),
  rate_max integer CHECK (rate_max BETWEEN 1 AND 1000000),
  rate_per_ms integer CHECK (rate_per_ms >= 1),
  expire_at timestamptz,
  CONSTRAINT jobs_concurrency_pair_check CHECK ((concurrency_key IS NULL) = (concurrency_limit IS NULL)),
  CONSTRAINT jobs_rate_limit_pair_check CHECK ((rate_key IS NULL) = (rate_max IS NULL)
                                               AND (rate_max IS NULL) = (rate_per_ms IS NULL))
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
-- Counting the running jobs of a key at claim time: partial on doing, so it holds one
-- entry per running job with a key (plus dead ones until VACUUM), never the table's
-- history, and a job without a key never writes it. (A queue's running jobs are counted
-- from jobs_worker_id_idx, only for queues with a limit: an index on the queue of every
-- doing job, written at every claim, slowed a drain at c=10 to 0.81x (0.70-1.09x, 3 runs).)
CREATE INDEX jobs_concurrency_doing_idx ON {{schema}}.jobs (concurrency_key)
  WHERE status = 'doing' AND concurrency_key IS NOT NULL;
-- The expiry sweep (expire_jobs_v1) finds expired todo jobs without reading the others.
CREATE INDEX jobs_expire_at_idx ON {{schema}}.jobs (expire_at) WHERE status = 'todo' AND expire_at IS NOT NULL;
-- The throttle window: the last start of a queueing lock's jobs.
CREATE INDEX jobs_queueing_lock_started_idx ON {{schema}}.jobs (queueing_lock, started_at)
  WHERE queueing_lock IS NOT NULL AND started_at IS NOT NULL;

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


-- Defer with flow options: defer_jobs_v4 (conflict modes) plus p_flow, NULL or a JSON
-- array of one object per job (or one for all) with any of concurrency_key,
-- concurrency_limit, rate_key, rate_max, rate_per_ms, expire_at (ISO text) and
-- unique_for_ms. unique_for_ms is the throttle window of the job's queueing lock: no new
-- job of that queueing lock while one started less than unique_for_ms ago. A throttled
-- job is refused as a queueing-lock conflict is ("error": unique_violation on
-- "jobs_queueing_lock_throttle", the batch inserts nothing; "ignore" and "replace": its
-- id is the recent job's). The throttle is checked after the insert, by a statement that
-- sees every claim committed before it: an insert that conflicts with a todo job waits
-- for that job's claim to commit, so a defer racing the start of the last job sees it.
CREATE FUNCTION {{schema}}.defer_jobs_v5(
  p_queues text[], p_tasks text[], p_priorities integer[], p_locks text[], p_queueing_locks text[],
  p_args jsonb, p_scheduled_at timestamptz[], p_headers jsonb, p_on_conflict text, p_flow jsonb)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
  n integer := CASE WHEN jsonb_typeof(p_args) = 'array' THEN jsonb_array_length(p_args) END;
  v_ids bigint[] := '{}';
  v_id bigint;
  v_recent bigint;
  v_inserted boolean;
  v_lock text;
  v_flow jsonb;
  v_conflict text := coalesce(p_on_conflict, 'error');
BEGIN
  IF v_conflict NOT IN ('error', 'ignore', 'replace') THEN
    RAISE EXCEPTION 'defer_jobs_v5: p_on_conflict must be error, ignore or replace, not %', p_on_conflict
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF n IS NULL OR cardinality(p_queues) NOT IN (1, n) OR cardinality(p_tasks) NOT IN (1, n)
     OR cardinality(p_priorities) NOT IN (1, n) OR cardinality(p_locks) NOT IN (1, n)
     OR cardinality(p_queueing_locks) NOT IN (1, n) OR cardinality(p_scheduled_at) NOT IN (1, n)
     OR (p_headers IS NOT NULL AND (jsonb_typeof(p_headers) <> 'array'
                                    OR jsonb_array_length(p_headers) NOT IN (1, n)))
     OR (p_flow IS NOT NULL AND (jsonb_typeof(p_flow) <> 'array' OR jsonb_array_length(p_flow) NOT IN (1, n))) THEN
    RAISE EXCEPTION 'defer_jobs_v5: every argument must have one element per job, or one for all'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_conflict = 'error' THEN
    -- One statement for the batch, as defer_jobs_v3 (a conflict anywhere raises
    -- unique_violation and nothing is inserted), with each job's flow options read in
    -- lockstep (measured: 1,000 jobs with a concurrency key in 630 ms one statement per job,
    -- as below, against 12 ms for defer_jobs_v3). Ids grow in input order (ORDER BY a.ord).
    WITH inserted AS (
      INSERT INTO {{schema}}.jobs (queue_name, task_name, priority, lock, queueing_lock, args, scheduled_at,
                                   headers, concurrency_key, concurrency_limit, rate_key, rate_max, rate_per_ms,
                                   expire_at)
      SELECT p_queues[CASE WHEN cardinality(p_queues) = 1 THEN 1 ELSE a.ord::integer END],
             p_tasks[CASE WHEN cardinality(p_tasks) = 1 THEN 1 ELSE a.ord::integer END],
             coalesce(p_priorities[CASE WHEN cardinality(p_priorities) = 1 THEN 1 ELSE a.ord::integer END], 0),
             p_locks[CASE WHEN cardinality(p_locks) = 1 THEN 1 ELSE a.ord::integer END],
             p_queueing_locks[CASE WHEN cardinality(p_queueing_locks) = 1 THEN 1 ELSE a.ord::integer END],
             coalesce(a.args, '{}'),
             p_scheduled_at[CASE WHEN cardinality(p_scheduled_at) = 1 THEN 1 ELSE a.ord::integer END],
             nullif(p_headers -> (CASE WHEN jsonb_array_length(p_headers) = 1 THEN 0 ELSE a.ord::integer - 1 END), 'null'),
             f.v ->> 'concurrency_key', (f.v ->> 'concurrency_limit')::integer,
             f.v ->> 'rate_key', (f.v ->> 'rate_max')::integer, (f.v ->> 'rate_per_ms')::integer,
             (f.v ->> 'expire_at')::timestamptz
      FROM jsonb_array_elements(p_args) WITH ORDINALITY AS a(args, ord),
           LATERAL (SELECT coalesce(p_flow -> (CASE WHEN jsonb_array_length(p_flow) = 1 THEN 0
                                                    ELSE a.ord::integer - 1 END), '{}') AS v) f
      ORDER BY a.ord
      RETURNING id
    ) SELECT array_agg(i.id ORDER BY i.id) INTO v_ids FROM inserted i;
    -- The throttle (uniqueFor), checked by a statement that sees every claim committed
    -- before it (see above): one recent start of a job's queueing lock refuses the batch.
    IF EXISTS (SELECT FROM jsonb_array_elements(p_flow) e WHERE e ->> 'unique_for_ms' IS NOT NULL) THEN
    SELECT j.queueing_lock INTO v_lock
    FROM unnest(v_ids) WITH ORDINALITY AS n(id, ord)
    JOIN {{schema}}.jobs j ON j.id = n.id,
         LATERAL (SELECT (p_flow -> (CASE WHEN jsonb_array_length(p_flow) = 1 THEN 0 ELSE n.ord::integer - 1 END)
                          ->> 'unique_for_ms')::double precision AS ms) u
    WHERE j.queueing_lock IS NOT NULL AND u.ms IS NOT NULL
      AND EXISTS (SELECT FROM {{schema}}.jobs o
                  WHERE o.queueing_lock = j.queueing_lock AND o.id <> j.id
                    AND o.started_at > now() - make_interval(secs => u.ms / 1000))
    LIMIT 1;
    IF v_lock IS NOT NULL THEN
      RAISE EXCEPTION 'queueing lock % is throttled: a job of it started within its uniqueFor window', v_lock
        USING ERRCODE = 'unique_violation', CONSTRAINT = 'jobs_queueing_lock_throttle';
    END IF;
    END IF;
  ELSE
  -- ignore and replace: one statement per job, as in defer_jobs_v4: each is an INSERT ... ON CONFLICT on the
  -- partial unique index of todo queueing locks, then the throttle check.
  FOR i IN 1 .. n LOOP
    v_lock := p_queueing_locks[CASE WHEN cardinality(p_queueing_locks) = 1 THEN 1 ELSE i END];
    v_flow := coalesce(p_flow -> (CASE WHEN jsonb_array_length(p_flow) = 1 THEN 0 ELSE i - 1 END), '{}');
    v_id := NULL;
    INSERT INTO {{schema}}.jobs AS j (queue_name, task_name, priority, lock, queueing_lock, args,
                                      scheduled_at, headers, concurrency_key, concurrency_limit,
                                      rate_key, rate_max, rate_per_ms, expire_at)
    VALUES (p_queues[CASE WHEN cardinality(p_queues) = 1 THEN 1 ELSE i END],
            p_tasks[CASE WHEN cardinality(p_tasks) = 1 THEN 1 ELSE i END],
            coalesce(p_priorities[CASE WHEN cardinality(p_priorities) = 1 THEN 1 ELSE i END], 0),
            p_locks[CASE WHEN cardinality(p_locks) = 1 THEN 1 ELSE i END],
            v_lock,
            coalesce(p_args -> (i - 1), '{}'),
            p_scheduled_at[CASE WHEN cardinality(p_scheduled_at) = 1 THEN 1 ELSE i END],
            nullif(p_headers -> (CASE WHEN jsonb_array_length(p_headers) = 1 THEN 0 ELSE i - 1 END), 'null'),
            v_flow ->> 'concurrency_key', (v_flow ->> 'concurrency_limit')::integer,
            v_flow ->> 'rate_key', (v_flow ->> 'rate_max')::integer, (v_flow ->> 'rate_per_ms')::integer,
            (v_flow ->> 'expire_at')::timestamptz)
    ON CONFLICT (queueing_lock) WHERE status = 'todo' AND queueing_lock IS NOT NULL
    DO UPDATE SET args = EXCLUDED.args,
                  scheduled_at = EXCLUDED.scheduled_at,
                  headers = coalesce(EXCLUDED.headers, j.headers),
                  concurrency_key = EXCLUDED.concurrency_key, concurrency_limit = EXCLUDED.concurrency_limit,
                  rate_key = EXCLUDED.rate_key, rate_max = EXCLUDED.rate_max, rate_per_ms = EXCLUDED.rate_per_ms,
                  expire_at = EXCLUDED.expire_at,
                  events = j.events || jsonb_build_object('type', 'replaced', 'at', now())
      WHERE v_conflict = 'replace'
    -- xmax is 0 on a row this statement inserted, set on one it updated (replaced).
    RETURNING j.id, j.xmax = 0 INTO v_id, v_inserted;
    IF v_id IS NULL THEN
      -- Ignored: the waiting job, read in a new snapshot (see defer_jobs_v4).
      SELECT o.id INTO v_id FROM {{schema}}.jobs o WHERE o.queueing_lock = v_lock AND o.status = 'todo';
      IF v_id IS NULL THEN
        SELECT o.id INTO v_id FROM {{schema}}.jobs o WHERE o.queueing_lock = v_lock ORDER BY o.id DESC LIMIT 1;
      END IF;
    ELSIF v_inserted AND v_lock IS NOT NULL AND (v_flow ->> 'unique_for_ms') IS NOT NULL THEN
      SELECT o.id INTO v_recent FROM {{schema}}.jobs o
      WHERE o.queueing_lock = v_lock AND o.id <> v_id
        AND o.started_at > now() - make_interval(secs => (v_flow ->> 'unique_for_ms')::double precision / 1000)
      ORDER BY o.started_at DESC LIMIT 1;
      IF v_recent IS NOT NULL THEN
        DELETE FROM {{schema}}.jobs o WHERE o.id = v_id;
        v_id := v_recent;
      END IF;
    END IF;
    v_ids := v_ids || v_id;
  END LOOP;
  END IF;
  PERFORM pg_notify('{{channel}}', json_build_object(
            'type', 'job', 'queue', o.queue_name,
            'at', CASE WHEN bool_and(coalesce(o.scheduled_at > now(), false)) THEN min(o.scheduled_at) END)::text)
  FROM {{schema}}.jobs o
  WHERE o.id = ANY (v_ids) AND o.status = 'todo'
  GROUP BY o.queue_name;
  RETURN QUERY SELECT t.id FROM unnest(v_ids) WITH ORDINALITY AS t(id, ord) ORDER BY t.ord;
END;
$$;

-- defer_jobs_v4 is defer_jobs_v5 without flow options (kept for the previous release).
CREATE FUNCTION {{schema}}.defer_jobs_v4(
  p_queues text[], p_tasks text[], p_priorities integer[], p_locks text[], p_queueing_locks text[],
  p_args jsonb, p_scheduled_at timestamptz[], p_headers jsonb, p_on_conflict text)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET jit = off
AS $$
BEGIN
  IF p_on_conflict IS NULL OR p_on_conflict = 'error' THEN
    RETURN QUERY SELECT {{schema}}.defer_jobs_v3(p_queues, p_tasks, p_priorities, p_locks, p_queueing_locks,
                                                 p_args, p_scheduled_at, p_headers);
    RETURN;
  END IF;
  RETURN QUERY SELECT {{schema}}.defer_jobs_v5(p_queues, p_tasks, p_priorities, p_locks, p_queueing_locks,
                                               p_args, p_scheduled_at, p_headers, p_on_conflict, NULL);
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

-- Limits of a whole queue, across every worker: at most max_running of its jobs doing,
-- at most rate_max starts per rate_per_ms. A row per limited queue, kept until cleared.
CREATE TABLE {{schema}}.queue_limits (
  queue_name text COLLATE "C" PRIMARY KEY CHECK (length(queue_name) BETWEEN 1 AND 128),
  max_running integer CHECK (max_running >= 1),
  rate_max integer CHECK (rate_max BETWEEN 1 AND 1000000),
  rate_per_ms integer CHECK (rate_per_ms >= 1),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK (max_running IS NOT NULL OR rate_max IS NOT NULL),
  CHECK ((rate_max IS NULL) = (rate_per_ms IS NULL))
);

-- Sliding windows of rate limits: for each key ('key:<rate key>' or 'queue:<queue>'), the
-- claims that started its jobs within the window, oldest first: claim i at starts_ms[i]
-- (Unix ms) started counts[i] jobs. A claim starts a job only while fewer than rate_max
-- started in the last rate_per_ms: exact in every window (starts happen only at claims,
-- and each claim checks the window that ends at it), where a token bucket lets a burst of
-- twice the rate through one window. One entry per claim, not per job, so a window of
-- 100,000 starts per minute costs what the claims in a minute cost.
-- open_at: when a full window next lets a job start (NULL when it is not full), so that a
-- claim skips the jobs of full windows with one index read, and workers set a timer.
CREATE TABLE {{schema}}.rate_limit_windows (
  key text COLLATE "C" PRIMARY KEY,
  starts_ms double precision[] NOT NULL,
  counts integer[] NOT NULL,
  open_at timestamptz,
  -- The limit its last start was admitted under (for listings).
  rate_max integer NOT NULL,
  rate_per_ms integer NOT NULL
);
CREATE INDEX rate_limit_windows_open_at_idx ON {{schema}}.rate_limit_windows (open_at) WHERE open_at IS NOT NULL;

-- Set (or, with every limit NULL, clear) the limits of queue p_queue. Tells the workers
-- ({"type": "limits", "queue"}) so that a raised limit starts jobs at once.
CREATE FUNCTION {{schema}}.set_queue_limits_v1(p_queue text, p_max_running integer, p_rate_max integer,
                                               p_rate_per_ms integer)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  IF p_max_running IS NULL AND p_rate_max IS NULL THEN
    DELETE FROM {{schema}}.queue_limits WHERE queue_name = p_queue;
  ELSE
    INSERT INTO {{schema}}.queue_limits (queue_name, max_running, rate_max, rate_per_ms)
    VALUES (p_queue, p_max_running, p_rate_max, p_rate_per_ms)
    ON CONFLICT (queue_name) DO UPDATE
    SET max_running = EXCLUDED.max_running, rate_max = EXCLUDED.rate_max,
        rate_per_ms = EXCLUDED.rate_per_ms, updated_at = now();
  END IF;
  PERFORM pg_notify('{{channel}}', json_build_object('type', 'limits', 'queue', p_queue)::text);
END;
$$;

-- How many jobs a sliding window's claims (p_starts, p_counts) started in the window of
-- p_per_ms ending at p_now_ms.
CREATE FUNCTION {{schema}}.rate_window_used_v1(p_starts double precision[], p_counts integer[], p_per_ms integer,
                                               p_now_ms double precision)
RETURNS integer
LANGUAGE sql
IMMUTABLE
AS $$
  SELECT coalesce(sum(u.c), 0)::integer FROM unnest(p_starts, p_counts) AS u(t, c) WHERE u.t > p_now_ms - p_per_ms;
$$;

-- When a full window (p_starts, p_counts: every entry in it) next lets a job start: when
-- enough of its oldest claims have left it that fewer than p_max remain.
CREATE FUNCTION {{schema}}.rate_window_opens_v1(p_starts double precision[], p_counts integer[], p_max integer,
                                                p_per_ms integer)
RETURNS timestamptz
LANGUAGE plpgsql
IMMUTABLE
AS $$
DECLARE
  v_left integer := (SELECT coalesce(sum(c), 0) FROM unnest(p_counts) AS c);
BEGIN
  FOR i IN 1 .. coalesce(cardinality(p_starts), 0) LOOP
    v_left := v_left - p_counts[i];
    IF v_left < p_max THEN
      RETURN to_timestamp((p_starts[i] + p_per_ms) / 1000);
    END IF;
  END LOOP;
  RETURN NULL;
END;
$$;

-- Claim-time admission of flow-limited candidates (see fetch_jobs_v4), which p_ctids
-- holds locked (FOR UPDATE), all todo. In order (priority desc, id asc):
-- * an expired job ends cancelled (reason "expired") and is not admitted;
-- * a job with no limit is admitted;
-- * a job with a limit (its concurrency key, its rate key, or its queue's limits) is
--   admitted when every one of them has room, and only while the worker can start it
--   soon (p_free: its idle slots plus its short prefetch, none for slow jobs), so that a
--   limited job is not held for long without running while another worker could run it.
-- Exact across concurrent claims: before counting, it takes a transaction-scoped advisory
-- lock on each key and queue involved, in one global order (so claims cannot deadlock).
-- A claim of the same key waits for ours to commit, and the counts are read by statements
-- that start after the lock is held, so they see every earlier claim committed. Nothing
-- else takes these locks: completions, retries and recoveries only ever lower the counts,
-- and a count read a moment too high only holds a job back until the next fetch.
-- Returns the admitted ctids, whether a limited job was held back (held), when the
-- earliest full rate window it met opens (wake_at), the expired ids, the claim time
-- (started_at: the time the rate windows record, so a job's started_at is its start),
-- what is left of p_free, and the keys, queues and rate keys it found full (or filled), which
-- the next round of the claim leaves out.
CREATE FUNCTION {{schema}}.flow_admit_v1(p_ctids tid[], p_limited_queues text[], p_free integer,
                                         OUT admitted tid[], OUT held boolean, OUT wake_at timestamptz,
                                         OUT expired bigint[], OUT started_at timestamptz, OUT free_left integer,
                                         OUT full_keys text[], OUT full_queues text[], OUT full_rate_keys text[])
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
  v_now_ms double precision;
  v_key_doing jsonb;
  v_queues jsonb;
  -- The rate windows met so far, by key: their claims ("t", "n"), limit ("max", "per"),
  -- the starts they still allow in this claim ("room"), and the ones it recorded ("added").
  v_windows jsonb := '{}';
  v_w jsonb;
  v_key text;
  v_q jsonb;
  v_ok boolean;
  v_starts double precision[];
  v_counts integer[];
  v_wkeys text[];
  v_maxes integer[];
  v_pers integer[];
  r record;
BEGIN
  admitted := '{}';
  held := false;
  full_keys := '{}';
  full_queues := '{}';
  full_rate_keys := '{}';
  WITH e AS (
    UPDATE {{schema}}.jobs j
    SET status = 'cancelled', finished_at = now(),
        events = j.events || jsonb_build_object('type', 'cancelled', 'at', now(), 'reason', 'expired')
    WHERE j.ctid = ANY (p_ctids) AND j.expire_at <= now()
    RETURNING j.id
  ) SELECT coalesce(array_agg(e.id), '{}') INTO expired FROM e;
  IF cardinality(expired) > 0 THEN
    PERFORM {{schema}}.notify_done_v1(expired, 'cancelled');
  END IF;
  -- (The expired rows' old versions are now invisible here: the reads below skip them.)
  PERFORM pg_advisory_xact_lock(s.h) FROM (
    SELECT DISTINCT hashtextextended('{{channel}}:' || f.k, 0) AS h FROM (
      SELECT 'c:' || j.concurrency_key AS k FROM {{schema}}.jobs j
      WHERE j.ctid = ANY (p_ctids) AND j.concurrency_key IS NOT NULL
      UNION ALL
      SELECT 'r:' || j.rate_key FROM {{schema}}.jobs j WHERE j.ctid = ANY (p_ctids) AND j.rate_key IS NOT NULL
      UNION ALL
      SELECT 'q:' || j.queue_name FROM {{schema}}.jobs j
      WHERE j.ctid = ANY (p_ctids) AND j.queue_name = ANY (p_limited_queues)) f
    ORDER BY 1) s;
  started_at := clock_timestamp();
  v_now_ms := extract(epoch FROM started_at) * 1000;
  SELECT jsonb_object_agg(s.k, s.n) INTO v_key_doing FROM (
    SELECT d.concurrency_key AS k, count(*) AS n FROM {{schema}}.jobs d
    WHERE d.status = 'doing'
      AND d.concurrency_key IN (SELECT j.concurrency_key FROM {{schema}}.jobs j WHERE j.ctid = ANY (p_ctids))
    GROUP BY d.concurrency_key) s;
  SELECT jsonb_object_agg(ql.queue_name, jsonb_build_object(
           'max', ql.max_running, 'rate_max', ql.rate_max, 'per', ql.rate_per_ms,
           'doing', CASE WHEN ql.max_running IS NOT NULL THEN
                      (SELECT count(*) FROM {{schema}}.jobs d WHERE d.status = 'doing' AND d.queue_name = ql.queue_name)
                    END))
  INTO v_queues FROM {{schema}}.queue_limits ql
  WHERE ql.queue_name IN (SELECT j.queue_name FROM {{schema}}.jobs j WHERE j.ctid = ANY (p_ctids));
  v_key_doing := coalesce(v_key_doing, '{}');
  v_queues := coalesce(v_queues, '{}');
  FOR r IN
    SELECT j.ctid, j.queue_name, j.concurrency_key, j.concurrency_limit, j.rate_key, j.rate_max, j.rate_per_ms
    FROM {{schema}}.jobs j WHERE j.ctid = ANY (p_ctids)
    ORDER BY j.priority DESC, j.id ASC
  LOOP
    v_q := v_queues -> r.queue_name;
    IF r.concurrency_key IS NULL AND r.rate_key IS NULL AND v_q IS NULL THEN
      admitted := admitted || r.ctid;
      CONTINUE;
    END IF;
    v_ok := p_free > 0;
    IF v_ok AND r.concurrency_key IS NOT NULL
       AND coalesce((v_key_doing ->> r.concurrency_key)::integer, 0) >= r.concurrency_limit THEN
      v_ok := false;
      full_keys := full_keys || r.concurrency_key;
    END IF;
    IF v_ok AND v_q IS NOT NULL AND jsonb_typeof(v_q -> 'max') = 'number'
       AND (v_q ->> 'doing')::integer >= (v_q ->> 'max')::integer THEN
      v_ok := false;
      full_queues := full_queues || r.queue_name;
    END IF;
    -- The rate windows the job would start in: its key's, then its queue's.
    v_wkeys := '{}';
    v_maxes := '{}';
    v_pers := '{}';
    IF r.rate_key IS NOT NULL THEN
      v_wkeys := v_wkeys || ('key:' || r.rate_key);
      v_maxes := v_maxes || r.rate_max;
      v_pers := v_pers || r.rate_per_ms;
    END IF;
    IF v_q IS NOT NULL AND jsonb_typeof(v_q -> 'rate_max') = 'number' THEN
      v_wkeys := v_wkeys || ('queue:' || r.queue_name);
      v_maxes := v_maxes || (v_q ->> 'rate_max')::integer;
      v_pers := v_pers || (v_q ->> 'per')::integer;
    END IF;
    FOR i IN 1 .. cardinality(v_wkeys) LOOP
      EXIT WHEN NOT v_ok;
      v_w := v_windows -> v_wkeys[i];
      IF v_w IS NULL THEN
        -- First met in this claim: read it (the advisory lock above keeps it ours).
        v_starts := '{}';
        v_counts := '{}';
        SELECT w.starts_ms, w.counts INTO v_starts, v_counts
        FROM {{schema}}.rate_limit_windows w WHERE w.key = v_wkeys[i];
        v_w := jsonb_build_object(
          't', to_jsonb(coalesce(v_starts, '{}')), 'n', to_jsonb(coalesce(v_counts, '{}')),
          'max', v_maxes[i], 'per', v_pers[i], 'added', 0,
          'room', v_maxes[i] - {{schema}}.rate_window_used_v1(v_starts, v_counts, v_pers[i], v_now_ms));
        v_windows := jsonb_set(v_windows, ARRAY[v_wkeys[i]], v_w);
      END IF;
      IF (v_w ->> 'room')::integer <= 0 THEN
        v_ok := false;
        IF i = 1 AND r.rate_key IS NOT NULL THEN
          full_rate_keys := full_rate_keys || r.rate_key;
        ELSE
          full_queues := full_queues || r.queue_name;
        END IF;
        -- Its claims, this one's included.
        v_starts := ARRAY(SELECT jsonb_array_elements_text(v_w -> 't')::double precision) || v_now_ms;
        v_counts := ARRAY(SELECT jsonb_array_elements_text(v_w -> 'n')::integer) || (v_w ->> 'added')::integer;
        wake_at := least(wake_at, {{schema}}.rate_window_opens_v1(
                                    v_starts, v_counts, (v_w ->> 'max')::integer, (v_w ->> 'per')::integer));
      END IF;
    END LOOP;
    IF NOT v_ok THEN
      held := true;
      CONTINUE;
    END IF;
    admitted := admitted || r.ctid;
    p_free := p_free - 1;
    IF r.concurrency_key IS NOT NULL THEN
      v_key_doing := jsonb_set(v_key_doing, ARRAY[r.concurrency_key],
                               to_jsonb(coalesce((v_key_doing ->> r.concurrency_key)::integer, 0) + 1));
    END IF;
    IF v_q IS NOT NULL AND jsonb_typeof(v_q -> 'max') = 'number' THEN
      v_queues := jsonb_set(v_queues, ARRAY[r.queue_name, 'doing'], to_jsonb((v_q ->> 'doing')::integer + 1));
    END IF;
    -- Count the start in each window.
    FOR i IN 1 .. cardinality(v_wkeys) LOOP
      v_w := v_windows -> v_wkeys[i];
      v_windows := jsonb_set(v_windows, ARRAY[v_wkeys[i]], v_w
                     || jsonb_build_object('room', (v_w ->> 'room')::integer - 1,
                                           'added', (v_w ->> 'added')::integer + 1));
    END LOOP;
  END LOOP;
  free_left := p_free;
  -- Store the windows that recorded starts: the claims still in them, then this one, and
  -- when a full one opens again.
  FOR v_key, v_w IN SELECT e.key, e.value FROM jsonb_each(v_windows) e WHERE (e.value ->> 'added')::integer > 0 LOOP
    SELECT coalesce(array_agg(u.t::double precision ORDER BY u.o), '{}'), coalesce(array_agg(u.c::integer ORDER BY u.o), '{}')
    INTO v_starts, v_counts
    FROM ROWS FROM (jsonb_array_elements_text(v_w -> 't'), jsonb_array_elements_text(v_w -> 'n'))
         WITH ORDINALITY AS u(t, c, o)
    WHERE u.t::double precision > v_now_ms - (v_w ->> 'per')::integer;
    v_starts := v_starts || v_now_ms;
    v_counts := v_counts || (v_w ->> 'added')::integer;
    INSERT INTO {{schema}}.rate_limit_windows AS w (key, starts_ms, counts, open_at, rate_max, rate_per_ms)
    VALUES (v_key, v_starts, v_counts,
            CASE WHEN (v_w ->> 'room')::integer <= 0 THEN
              {{schema}}.rate_window_opens_v1(v_starts, v_counts, (v_w ->> 'max')::integer, (v_w ->> 'per')::integer)
            END,
            (v_w ->> 'max')::integer, (v_w ->> 'per')::integer)
    ON CONFLICT (key) DO UPDATE SET starts_ms = EXCLUDED.starts_ms, counts = EXCLUDED.counts,
                                    open_at = EXCLUDED.open_at, rate_max = EXCLUDED.rate_max,
                                    rate_per_ms = EXCLUDED.rate_per_ms;
  END LOOP;
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
-- Flow control (replacing fetch_jobs_v3, which now calls this): p_free is how many jobs
-- with a limit the worker can start soon (its idle slots plus its short prefetch). A job
-- with a limit is claimed only within that (see flow_admit_v1, which checks every limit
-- exactly); a job without one as before, up to p_limit. Before the scan, what cannot start at all is left out cheaply:
-- paused queues, queues at their running or rate limit, concurrency keys at their limit,
-- rate keys whose window is full. So one key's backlog does not hide the other keys' jobs:
-- among the jobs that may start, the oldest first (priority desc, id asc), whatever their
-- key. (A saturated key's waiting jobs are still read and skipped, a cost per such job
-- ahead of the first one that may start, as for the jobs waiting behind a lock.)
--
-- It returns what a worker does not already know about each job (not its status,
-- worker, result or finish time), with times as Unix milliseconds: the worker parses
-- every row of every fetch, and a timestamp's text costs a regular expression and
-- several strings to parse where a number costs nothing. "flow" holds the job's limits
-- as JSON, or NULL. When there is something to tell the worker, one more row follows,
-- with id NULL and a "flow" of
-- {"held": a limited job was held back (fetch again when a slot frees),
--  "wakeAtMs": when the earliest full rate window opens (fetch again then),
--  "more": jobs were cancelled as expired (fetch again now),
--  "limitedQueues": the queues with limits (fetch again when one of their jobs ends)}.
CREATE FUNCTION {{schema}}.fetch_jobs_v4(p_worker_id bigint, p_queues text[], p_limit integer, p_free integer)
RETURNS TABLE (id bigint, queue_name text, task_name text, priority integer, lock text, queueing_lock text,
               args jsonb, attempts integer, run integer, stalled_count integer, error jsonb, events jsonb,
               scheduled_at_ms double precision, created_at_ms double precision, started_at_ms double precision,
               headers jsonb, flow jsonb)
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
  -- The candidate rows' physical addresses: the update below then reads them directly
  -- (a TID scan) instead of looking each up in the primary key (measured: 0.5 µs per
  -- job). Safe because the rows stay locked by this transaction until it ends, so
  -- nobody else can move them.
  v_ctids tid[];
  -- Every candidate of earlier rounds (locked by us, so SKIP LOCKED would not skip them).
  v_taken tid[] := '{}';
  v_claimed integer := 0;
  v_round integer := 0;
  v_flow boolean;
  v_queues text[];
  v_skip text[];
  v_limited text[];
  v_saturated text[];
  v_exhausted text[];
  v_wake timestamptz;
  v_admit record;
  v_started timestamptz;
  v_held boolean := false;
  v_more boolean := false;
BEGIN
  -- Queues not to claim from now: paused ones, and limited ones whose limit is reached.
  SELECT array_agg(pq.queue_name) INTO v_skip FROM {{schema}}.paused_queues pq;
  SELECT array_agg(ql.queue_name),
         array_agg(ql.queue_name) FILTER (
           WHERE (ql.max_running IS NOT NULL
                  AND (SELECT count(*) FROM (SELECT FROM {{schema}}.jobs d
                                             WHERE d.status = 'doing' AND d.queue_name = ql.queue_name
                                             LIMIT ql.max_running) n) >= ql.max_running)
              OR EXISTS (SELECT FROM {{schema}}.rate_limit_windows w
                         WHERE w.key = 'queue:' || ql.queue_name AND w.open_at > clock_timestamp()))
  INTO v_limited, v_saturated FROM {{schema}}.queue_limits ql;
  IF v_saturated IS NOT NULL THEN
    v_skip := coalesce(v_skip, '{}') || v_saturated;
  END IF;
  -- Concurrency keys at their limit (by the highest limit among their running jobs; the
  -- exact test, with each job's own limit, is flow_admit_v1's), and full rate windows.
  SELECT array_agg(s.k) INTO v_saturated FROM (
    SELECT d.concurrency_key AS k FROM {{schema}}.jobs d
    WHERE d.status = 'doing' AND d.concurrency_key IS NOT NULL
    GROUP BY d.concurrency_key HAVING count(*) >= max(d.concurrency_limit)) s;
  SELECT array_agg(substr(w.key, 5)) FILTER (WHERE w.key LIKE 'key:%'), min(w.open_at)
  INTO v_exhausted, v_wake
  FROM {{schema}}.rate_limit_windows w WHERE w.open_at > clock_timestamp();

  -- Rounds: a round whose limited candidates were held back because their key or queue
  -- filled up claims what it admitted, then looks again past them, leaving those keys
  -- out, so that one key's run of candidates does not leave the claim short (at most 3).
  LOOP
    v_round := v_round + 1;
    v_ctids := NULL;
    v_flow := false;
    v_queues := p_queues;
    IF v_skip IS NOT NULL AND p_queues IS NOT NULL THEN
      v_queues := ARRAY(SELECT unnest(p_queues) EXCEPT SELECT unnest(v_skip));
    END IF;
    IF v_skip IS NOT NULL AND p_queues IS NOT NULL AND cardinality(v_queues) = 0 THEN
      NULL; -- nothing to claim from
    ELSIF v_skip IS NOT NULL AND p_queues IS NULL THEN
      -- A worker of every queue while some are skipped. Walking jobs_fetch_idx and
      -- skipping their jobs would read every one of them on every fetch (a paused or
      -- limited queue is usually the one with a backlog). Instead: the queues that have
      -- todo jobs, read from jobs_queue_fetch_idx one step per queue (a loose index scan),
      -- the best candidates of each queue not skipped, and the best of those, claimed.
      SELECT array_agg(c.ctid), bool_or(c.flow) INTO v_ctids, v_flow FROM (
        SELECT j.ctid, (j.concurrency_key IS NOT NULL OR j.rate_key IS NOT NULL OR j.expire_at IS NOT NULL
                        OR coalesce(j.queue_name = ANY (v_limited), false)) AS flow
        FROM {{schema}}.jobs j
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
                  WHERE queues.name IS NOT NULL AND queues.name <> ALL (v_skip)) active,
                LATERAL (
                  SELECT o.id, o.priority FROM {{schema}}.jobs o
                  WHERE o.status = 'todo' AND o.queue_name = active.name
                    AND (o.scheduled_at IS NULL OR o.scheduled_at <= now())
                    AND (o.lock IS NULL OR {{schema}}.lock_is_free_v2(o.id, o.lock, o.priority))
                    AND (o.concurrency_key IS NULL OR v_saturated IS NULL OR o.concurrency_key <> ALL (v_saturated))
                    AND (o.rate_key IS NULL OR v_exhausted IS NULL OR o.rate_key <> ALL (v_exhausted))
                    AND (v_round = 1 OR o.ctid <> ALL (v_taken))
                  ORDER BY o.priority DESC, o.id ASC
                  LIMIT p_limit - v_claimed) cand
                ORDER BY cand.priority DESC, cand.id ASC
                LIMIT p_limit - v_claimed))
          AND j.status = 'todo'
        ORDER BY j.priority DESC, j.id ASC
        LIMIT p_limit - v_claimed
        FOR UPDATE OF j SKIP LOCKED) c;
    ELSIF cardinality(v_queues) = 1 THEN
      -- One queue: an equality, so that jobs_queue_fetch_idx gives the order.
      SELECT array_agg(c.ctid), bool_or(c.flow) INTO v_ctids, v_flow FROM (
        SELECT j.ctid, (j.concurrency_key IS NOT NULL OR j.rate_key IS NOT NULL OR j.expire_at IS NOT NULL
                        OR coalesce(j.queue_name = ANY (v_limited), false)) AS flow
        FROM {{schema}}.jobs j
        WHERE j.status = 'todo' AND j.queue_name = v_queues[1]
          AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
          AND (j.lock IS NULL OR {{schema}}.lock_is_free_v2(j.id, j.lock, j.priority))
          AND (j.concurrency_key IS NULL OR v_saturated IS NULL OR j.concurrency_key <> ALL (v_saturated))
          AND (j.rate_key IS NULL OR v_exhausted IS NULL OR j.rate_key <> ALL (v_exhausted))
          AND (v_round = 1 OR j.ctid <> ALL (v_taken))
        ORDER BY j.priority DESC, j.id ASC
        LIMIT p_limit - v_claimed
        FOR UPDATE OF j SKIP LOCKED) c;
    ELSIF v_queues IS NOT NULL THEN
      -- Several queues: the head of each from jobs_queue_fetch_idx (locked as it is read,
      -- skipping rows other claims hold), then the best of those. Walking jobs_fetch_idx and
      -- keeping the rows of these queues would read every todo job of the other queues
      -- ahead of them (measured with 1,000,000 todo jobs over 50 queues, a worker of 2
      -- queues behind the other 48: 248 ms and 960,010 index entries per fetch). The heads
      -- not kept stay locked until this claim commits, a few milliseconds.
      SELECT array_agg(c.ctid), bool_or(c.flow) INTO v_ctids, v_flow FROM (
        SELECT cand.ctid, cand.flow
        FROM unnest(v_queues) AS q(name),
             LATERAL (
               SELECT j.ctid, j.priority, j.id,
                      (j.concurrency_key IS NOT NULL OR j.rate_key IS NOT NULL OR j.expire_at IS NOT NULL
                       OR coalesce(j.queue_name = ANY (v_limited), false)) AS flow
               FROM {{schema}}.jobs j
               WHERE j.status = 'todo' AND j.queue_name = q.name
                 AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
                 AND (j.lock IS NULL OR {{schema}}.lock_is_free_v2(j.id, j.lock, j.priority))
                 AND (j.concurrency_key IS NULL OR v_saturated IS NULL OR j.concurrency_key <> ALL (v_saturated))
                 AND (j.rate_key IS NULL OR v_exhausted IS NULL OR j.rate_key <> ALL (v_exhausted))
                 AND (v_round = 1 OR j.ctid <> ALL (v_taken))
               ORDER BY j.priority DESC, j.id ASC
               LIMIT p_limit - v_claimed
               FOR UPDATE OF j SKIP LOCKED) cand
        ORDER BY cand.priority DESC, cand.id ASC
        LIMIT p_limit - v_claimed) c;
    ELSE
      -- Every queue: jobs_fetch_idx gives the order.
      SELECT array_agg(c.ctid), bool_or(c.flow) INTO v_ctids, v_flow FROM (
        SELECT j.ctid, (j.concurrency_key IS NOT NULL OR j.rate_key IS NOT NULL OR j.expire_at IS NOT NULL
                        OR coalesce(j.queue_name = ANY (v_limited), false)) AS flow
        FROM {{schema}}.jobs j
        WHERE j.status = 'todo'
          AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
          AND (j.lock IS NULL OR {{schema}}.lock_is_free_v2(j.id, j.lock, j.priority))
          AND (j.concurrency_key IS NULL OR v_saturated IS NULL OR j.concurrency_key <> ALL (v_saturated))
          AND (j.rate_key IS NULL OR v_exhausted IS NULL OR j.rate_key <> ALL (v_exhausted))
          AND (v_round = 1 OR j.ctid <> ALL (v_taken))
        ORDER BY j.priority DESC, j.id ASC
        LIMIT p_limit - v_claimed
        FOR UPDATE OF j SKIP LOCKED) c;
    END IF;
    EXIT WHEN v_ctids IS NULL;

    v_started := now();
    IF v_flow THEN
      SELECT * INTO v_admit FROM {{schema}}.flow_admit_v1(v_ctids, v_limited, p_free);
      v_taken := v_taken || v_ctids;
      v_ctids := v_admit.admitted;
      v_held := v_held OR v_admit.held;
      v_wake := least(v_wake, v_admit.wake_at);
      v_more := v_more OR cardinality(v_admit.expired) > 0;
      v_started := v_admit.started_at;
      p_free := v_admit.free_left;
    END IF;

    IF cardinality(v_ctids) > 0 THEN
      v_claimed := v_claimed + cardinality(v_ctids);
      -- The rows are locked (FOR UPDATE above) until this transaction ends.
      RETURN QUERY
      WITH claimed AS (
        UPDATE {{schema}}.jobs j
        SET status = 'doing',
            worker_id = p_worker_id,
            attempts = j.attempts + 1,
            run = j.run + 1,
            abort_requested = false,
            started_at = v_started
        WHERE j.ctid = ANY (v_ctids)
        RETURNING j.id, j.queue_name, j.task_name, j.priority, j.lock, j.queueing_lock, j.args, j.attempts,
                  j.run, j.stalled_count, j.error, j.events,
                  -- Whole milliseconds, as a JavaScript Date holds them: truncated, then rounded
                  -- back from the float8 epoch: equal to extract()'s exact numeric result for
                  -- every date before the year 30,000 (checked on 3,000,000 dates), at a third
                  -- of its cost (0.1 µs a value against 0.3, over 5,000 rows).
                  round(date_part('epoch', date_trunc('milliseconds', j.scheduled_at)) * 1000) AS scheduled_at_ms,
                  round(date_part('epoch', date_trunc('milliseconds', j.created_at)) * 1000) AS created_at_ms,
                  round(date_part('epoch', date_trunc('milliseconds', j.started_at)) * 1000) AS started_at_ms,
                  j.headers,
                  CASE WHEN j.concurrency_key IS NOT NULL OR j.rate_key IS NOT NULL OR j.expire_at IS NOT NULL THEN
                    jsonb_strip_nulls(jsonb_build_object(
                      'concurrency_key', j.concurrency_key, 'concurrency_limit', j.concurrency_limit,
                      'rate_key', j.rate_key, 'rate_max', j.rate_max, 'rate_per_ms', j.rate_per_ms,
                      'expire_at_ms', round(date_part('epoch', date_trunc('milliseconds', j.expire_at)) * 1000)))
                  END AS flow
      )
      SELECT c.id, c.queue_name, c.task_name, c.priority, c.lock, c.queueing_lock, c.args, c.attempts,
             c.run, c.stalled_count, c.error, c.events, c.scheduled_at_ms, c.created_at_ms, c.started_at_ms,
             c.headers, c.flow
      FROM claimed c ORDER BY c.priority DESC, c.id ASC;
    END IF;

    -- Another round only when this one left candidates out for a key or queue that is
    -- now full (not merely for want of p_free), and there is room for more.
    EXIT WHEN NOT v_flow; -- (v_admit is unassigned then)
    EXIT WHEN NOT v_admit.held OR v_round >= 3 OR v_claimed >= p_limit
              OR cardinality(v_admit.full_keys) + cardinality(v_admit.full_queues)
                 + cardinality(v_admit.full_rate_keys) = 0;
    v_saturated := coalesce(v_saturated, '{}') || v_admit.full_keys;
    v_exhausted := coalesce(v_exhausted, '{}') || v_admit.full_rate_keys;
    IF cardinality(v_admit.full_queues) > 0 THEN
      v_skip := coalesce(v_skip, '{}') || v_admit.full_queues;
    END IF;
  END LOOP;

  IF v_held OR v_more OR v_wake IS NOT NULL OR v_limited IS NOT NULL THEN
    RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, NULL::integer, NULL::text, NULL::text, NULL::jsonb,
                        NULL::integer, NULL::integer, NULL::integer, NULL::jsonb, NULL::jsonb,
                        NULL::float8, NULL::float8, NULL::float8, NULL::jsonb,
                        jsonb_build_object('held', v_held, 'more', v_more,
                                           'wakeAtMs', (extract(epoch FROM v_wake) * 1000)::float8,
                                           'limitedQueues', to_jsonb(v_limited));
  END IF;
END;
$$;

-- Workers of the previous release claim through fetch_jobs_v4 too, so that they honour
-- every limit (a limited job is then claimed only for as many jobs as they ask).
CREATE FUNCTION {{schema}}.fetch_jobs_v3(p_worker_id bigint, p_queues text[], p_limit integer)
RETURNS TABLE (id bigint, queue_name text, task_name text, priority integer, lock text, queueing_lock text,
               args jsonb, attempts integer, run integer, stalled_count integer, error jsonb, events jsonb,
               scheduled_at_ms double precision, created_at_ms double precision, started_at_ms double precision,
               headers jsonb)
LANGUAGE sql
AS $$
  SELECT f.id, f.queue_name, f.task_name, f.priority, f.lock, f.queueing_lock, f.args, f.attempts, f.run,
         f.stalled_count, f.error, f.events, f.scheduled_at_ms, f.created_at_ms, f.started_at_ms, f.headers
  FROM {{schema}}.fetch_jobs_v4(p_worker_id, p_queues, p_limit, p_limit) f
  WHERE f.id IS NOT NULL;
$$;

-- End expired todo jobs (expire_at passed) as cancelled, reason "expired", at most
-- p_limit of them; returns their ids. Claims already never start an expired job; this
-- sweep (run by the scheduler plugin) makes the ones no claim reaches say so too.
CREATE FUNCTION {{schema}}.expire_jobs_v1(p_limit integer)
RETURNS SETOF bigint
LANGUAGE plpgsql
AS $$
DECLARE
  v_ids bigint[];
BEGIN
  WITH e AS (
    UPDATE {{schema}}.jobs j
    SET status = 'cancelled', finished_at = now(),
        events = j.events || jsonb_build_object('type', 'cancelled', 'at', now(), 'reason', 'expired')
    WHERE j.id IN (SELECT o.id FROM {{schema}}.jobs o
                   WHERE o.status = 'todo' AND o.expire_at <= now()
                   ORDER BY o.expire_at LIMIT p_limit
                   FOR UPDATE SKIP LOCKED)
      AND j.status = 'todo'
    RETURNING j.id
  ) SELECT array_agg(e.id) INTO v_ids FROM e;
  IF v_ids IS NOT NULL THEN
    PERFORM {{schema}}.notify_done_v1(v_ids, 'cancelled');
    RETURN QUERY SELECT unnest(v_ids);
  END IF;
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
-- plan_cache_mode (migration 8): the generic plan, made once per session, is the same hash
-- join; planned at every call, a completion of one job cost 400-570 µs instead of 96-109
-- (see migrations/0008_generic_plans.sql).
CREATE FUNCTION {{schema}}.complete_jobs_v2(p_ids bigint[], p_runs integer[], p_results jsonb, p_delete boolean)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET enable_nestloop = off
SET lock_timeout = '1s'
SET plan_cache_mode = force_generic_plan
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

-- @proc/dashboard (migration 7): see migrations/0007_dashboard.sql.

-- The failed, cancelled and aborted jobs a table keeps, counted per queue by an index-only
-- scan instead of a scan of every finished job (measured on 1,000,000 finished jobs: 8 ms
-- instead of 244 ms).
CREATE INDEX jobs_unsuccessful_idx ON {{schema}}.jobs (queue_name, status)
  WHERE status IN ('failed', 'cancelled', 'aborted');

-- Per queue: waiting (todo; ready ones among them) and running (doing) jobs, when the oldest
-- ready job became ready, the failed, cancelled and aborted jobs kept, the jobs that succeeded
-- and failed in the last p_recent_seconds, and when the queue was paused. Each part reads one
-- partial index (jobs_queue_fetch_idx, jobs_scheduled_at_idx, jobs_worker_id_idx,
-- jobs_unsuccessful_idx, jobs_finished_at_idx), so no succeeded job but the recent ones is read.
-- Waiting jobs, the dominant cost, are counted without reading their rows: an index-only scan
-- of jobs_queue_fetch_idx counts them per (queue, priority); only the scheduled ones are read
-- (jobs_scheduled_at_idx) to tell those that cannot start yet and the oldest scheduled ready
-- one; and the oldest unscheduled one of each (queue, priority) is the first by id there (ids
-- grow with created_at), read only where the group has some. Measured with 100,000 waiting
-- jobs (10,000 scheduled): 19 ms instead of 26 ms for one aggregate over every waiting row.
-- The index-only scan skips the rows of pages the visibility map marks all-visible (vacuum
-- sets it; a fresh burst of defers is read from the table until autovacuum passes). Without
-- parallel workers: they cost more to start than they save on these few hundred thousand
-- index entries (measured: 32 ms alone, 75 ms with two workers).
CREATE FUNCTION {{schema}}.queue_summary_v1(p_recent_seconds double precision)
RETURNS TABLE (queue text, todo integer, ready integer, doing integer, oldest_ready_at timestamptz,
               failed integer, cancelled integer, aborted integer, recent_succeeded integer,
               recent_failed integer, paused_at timestamptz)
LANGUAGE sql
STABLE
SET max_parallel_workers_per_gather = 0
AS $$
  WITH waiting AS (
    SELECT j.queue_name, j.priority, count(*)::integer AS todo
    FROM {{schema}}.jobs j WHERE j.status = 'todo'
    GROUP BY j.queue_name, j.priority
  ), scheduled AS (
    SELECT j.queue_name, j.priority, count(*)::integer AS scheduled,
           count(*) FILTER (WHERE j.scheduled_at > now())::integer AS later,
           min(j.scheduled_at) FILTER (WHERE j.scheduled_at <= now()) AS oldest_ready_at
    FROM {{schema}}.jobs j WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
    GROUP BY j.queue_name, j.priority
  ), todo AS (
    SELECT w.queue_name, sum(w.todo)::integer AS todo,
           sum(w.todo - coalesce(s.later, 0))::integer AS ready,
           min(least(s.oldest_ready_at, f.created_at)) AS oldest_ready_at
    FROM waiting w
    LEFT JOIN scheduled s ON s.queue_name = w.queue_name AND s.priority = w.priority
    LEFT JOIN LATERAL (
      SELECT j.created_at FROM {{schema}}.jobs j
      WHERE j.status = 'todo' AND j.queue_name = w.queue_name AND j.priority = w.priority
        AND j.scheduled_at IS NULL AND w.todo > coalesce(s.scheduled, 0)
      ORDER BY j.id LIMIT 1
    ) f ON true
    GROUP BY w.queue_name
  ), doing AS (
    SELECT j.queue_name, count(*)::integer AS doing
    FROM {{schema}}.jobs j WHERE j.status = 'doing'
    GROUP BY j.queue_name
  ), kept AS (
    SELECT j.queue_name,
           count(*) FILTER (WHERE j.status = 'failed')::integer AS failed,
           count(*) FILTER (WHERE j.status = 'cancelled')::integer AS cancelled,
           count(*) FILTER (WHERE j.status = 'aborted')::integer AS aborted
    FROM {{schema}}.jobs j WHERE j.status IN ('failed', 'cancelled', 'aborted')
    GROUP BY j.queue_name
  ), recent AS (
    SELECT j.queue_name,
           count(*) FILTER (WHERE j.status = 'succeeded')::integer AS succeeded,
           count(*) FILTER (WHERE j.status IN ('failed', 'aborted'))::integer AS failed
    FROM {{schema}}.jobs j WHERE j.finished_at >= now() - make_interval(secs => p_recent_seconds)
    GROUP BY j.queue_name
  ), names AS (
    SELECT n.queue_name FROM todo n UNION SELECT n.queue_name FROM doing n
    UNION SELECT n.queue_name FROM kept n UNION SELECT n.queue_name FROM recent n
    UNION SELECT p.queue_name FROM {{schema}}.paused_queues p
  )
  SELECT n.queue_name::text, coalesce(t.todo, 0), coalesce(t.ready, 0), coalesce(d.doing, 0),
         t.oldest_ready_at, coalesce(k.failed, 0), coalesce(k.cancelled, 0), coalesce(k.aborted, 0),
         coalesce(r.succeeded, 0), coalesce(r.failed, 0), p.paused_at
  FROM names n
  LEFT JOIN todo t ON t.queue_name = n.queue_name
  LEFT JOIN doing d ON d.queue_name = n.queue_name
  LEFT JOIN kept k ON k.queue_name = n.queue_name
  LEFT JOIN recent r ON r.queue_name = n.queue_name
  LEFT JOIN {{schema}}.paused_queues p ON p.queue_name = n.queue_name
  ORDER BY n.queue_name;
$$;

-- Whether a job matches the dashboard's filters (search_jobs and the bulk actions; each
-- NULL filter matches every job): queue, task, statuses, lock, queueing lock, worker, created
-- in [p_created_from, p_created_before), args whose JSON text holds p_text (case-insensitive)
-- or contain the JSON object p_contains. A plain SQL expression over the row's columns, so
-- that the planner inlines it into each query (and still uses the queries' id-range bounds).
CREATE FUNCTION {{schema}}.job_matches_v1(
  queue_name text, task_name text, status {{schema}}.job_status, lock text, queueing_lock text,
  worker_id bigint, created_at timestamptz, args jsonb,
  p_queue text, p_task text, p_statuses text[], p_lock text, p_queueing_lock text, p_worker_id bigint,
  p_created_from timestamptz, p_created_before timestamptz, p_text text, p_contains jsonb)
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
  SELECT (p_queue IS NULL OR queue_name = p_queue)
     AND (p_task IS NULL OR task_name = p_task)
     AND (p_statuses IS NULL OR status = ANY (p_statuses::{{schema}}.job_status[]))
     AND (p_lock IS NULL OR lock = p_lock)
     AND (p_queueing_lock IS NULL OR queueing_lock = p_queueing_lock)
     AND (p_worker_id IS NULL OR worker_id = p_worker_id)
     AND (p_created_from IS NULL OR created_at >= p_created_from)
     AND (p_created_before IS NULL OR created_at < p_created_before)
     AND (p_text IS NULL OR strpos(lower(args::text), lower(p_text)) > 0)
     AND (p_contains IS NULL OR args @> p_contains);
$$;
