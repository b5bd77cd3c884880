-- @proc/dashboard (issue 13): what keeps its overview cheap on a table of millions of jobs.
-- Nothing here is written by defer, fetch or complete: the index holds only jobs that ended
-- failed, cancelled or aborted (a succeeded job only has its predicate checked).

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
