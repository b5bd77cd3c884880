-- Migration 6: flow control. Concurrency limits per key and per queue, rate limits per
-- key and per queue, expiry, and the queueing lock's throttle window (uniqueFor). Every
-- limit is enforced by the claim (fetch_jobs_v4) in the database, so it holds exactly
-- whatever the number of workers, their concurrency, prefetch or batch size.

-- A job's own limits (set at defer, from the task's options or the defer's):
-- * concurrency_key / concurrency_limit: the job starts only while fewer than
--   concurrency_limit jobs of its key are doing (lock is the ordered case of limit 1);
-- * rate_key / rate_max / rate_per_ms: at most rate_max jobs of rate_key start in any
--   window of rate_per_ms milliseconds (a sliding window, see rate_limit_windows);
-- * expire_at: not started by then, the job ends cancelled (reason "expired") unrun.
ALTER TABLE {{schema}}.jobs
  ADD COLUMN concurrency_key text COLLATE "C" CHECK (length(concurrency_key) BETWEEN 1 AND 256),
  ADD COLUMN concurrency_limit integer CHECK (concurrency_limit >= 1),
  ADD COLUMN rate_key text COLLATE "C" CHECK (length(rate_key) BETWEEN 1 AND 256),
  ADD COLUMN rate_max integer CHECK (rate_max BETWEEN 1 AND 1000000),
  ADD COLUMN rate_per_ms integer CHECK (rate_per_ms >= 1),
  ADD COLUMN expire_at timestamptz,
  ADD CONSTRAINT jobs_concurrency_pair_check CHECK ((concurrency_key IS NULL) = (concurrency_limit IS NULL)),
  ADD CONSTRAINT jobs_rate_limit_pair_check CHECK ((rate_key IS NULL) = (rate_max IS NULL)
                                             AND (rate_max IS NULL) = (rate_per_ms IS NULL));

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
CREATE OR REPLACE FUNCTION {{schema}}.fetch_jobs_v3(p_worker_id bigint, p_queues text[], p_limit integer)
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
CREATE OR REPLACE FUNCTION {{schema}}.defer_jobs_v4(
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
