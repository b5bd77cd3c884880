-- Every statement proc runs. JobManager is the only code that uses these names.
-- {{schema}} is replaced by the configured schema; parameters are always $n.

-- name: defer_jobs
-- Insert a batch of jobs atomically: one array per column ($1 queues ... $7
-- scheduled_at; one element = the same for every job), except $6, the args as one
-- JSON array, and $8, the headers as one JSON array or NULL for none. Their ids come
-- back in order as one comma-separated text. A queueing-lock conflict raises
-- unique_violation (onConflict "error", the default: straight to defer_jobs_v3, the
-- hot path, without the conflict-mode wrapper).
SELECT string_agg(id::text, ',' ORDER BY id) AS ids
FROM {{schema}}.defer_jobs_v3($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::jsonb,
                              $7::timestamptz[], $8::jsonb) AS id;

-- name: defer_jobs_on_conflict
-- defer_jobs with queueing-lock conflict mode $9 ("ignore" or "replace"): ids in input
-- order, where an id may be a waiting job's, and appear twice.
SELECT string_agg(d.id::text, ',' ORDER BY d.ord) AS ids
FROM {{schema}}.defer_jobs_v4($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::jsonb,
                              $7::timestamptz[], $8::jsonb, $9::text) WITH ORDINALITY AS d(id, ord);

-- name: defer_jobs_flow
-- defer_jobs_on_conflict ($9: "error", "ignore" or "replace") with flow control: $10 is
-- a JSON array of one object per job, or one for all (see defer_jobs_v5).
SELECT string_agg(d.id::text, ',' ORDER BY d.ord) AS ids
FROM {{schema}}.defer_jobs_v5($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::jsonb,
                              $7::timestamptz[], $8::jsonb, $9::text, $10::jsonb) WITH ORDINALITY AS d(id, ord);

-- name: fetch_jobs
-- Claim up to $3 ready jobs of queues $2 (NULL = all) for worker $1, of which jobs with a
-- limit only as many as $4 (what it can start soon), each a new run, as one JSON array
-- holding an array of values per job (FetchedJobRow; NULL when none; a last element with a
-- NULL id says what flow control held back). One document rather than a row of 17 text
-- fields per job: 2 µs less worker CPU per job. Arrays rather than objects (json_agg(f)):
-- the database builds them for 1.3 µs a job instead of 4.1, and the worker decodes and
-- parses half the text (measured over 500 jobs). As text, parsed by JobManager, so that
-- the worker knows the claim's size and can bound what its prefetched jobs hold
-- (prefetchBytes).
SELECT json_agg(json_build_array(
         f.id, f.queue_name, f.task_name, f.priority, f.lock, f.queueing_lock, f.args, f.attempts, f.run,
         f.stalled_count, f.error, f.events, f.scheduled_at_ms, f.created_at_ms, f.started_at_ms, f.headers,
         f.flow))::text AS jobs
FROM {{schema}}.fetch_jobs_v4($1::bigint, $2::text[], $3::integer, $4::integer) f;

-- name: complete_jobs
-- Mark runs ($1 ids, $2 runs) succeeded (or delete them with $4) with their results
-- ($3: a JSON array or NULL). The ids finished come back as one comma-separated text,
-- not a row each; a run missing from them was stale (recovered or claimed again).
SELECT string_agg(id::text, ',') AS ids FROM {{schema}}.complete_jobs_v2($1::bigint[], $2::integer[], $3::jsonb, $4::boolean) AS id;

-- name: fail_job
-- End failed run $2 of job $1: final status, or back to todo for a retry (NULL: stale).
SELECT {{schema}}.fail_job_v2($1::bigint, $2::integer, $3::{{schema}}.job_status, $4::jsonb, $5::timestamptz, $6::text, $7::integer, $8::text, $9::boolean) AS status;

-- name: retry_job
-- Put a job that is not todo back to todo (manual retry, stalled recovery).
SELECT * FROM {{schema}}.retry_job_v2($1::bigint, $2::timestamptz, $3::text, $4::integer, $5::text, $6::integer);

-- name: cancel_job
-- Cancel a todo job or ask a doing job to abort.
SELECT {{schema}}.cancel_job_v1($1::bigint, $2::boolean, $3::boolean) AS status;

-- name: get_job
-- One job by id.
SELECT * FROM {{schema}}.jobs WHERE id = $1::bigint;

-- name: list_jobs
-- Jobs matching optional filters, newest first, keyset-paginated by id ($7: before id).
SELECT * FROM {{schema}}.jobs
WHERE ($1::text IS NULL OR queue_name = $1)
  AND ($2::text IS NULL OR task_name = $2)
  AND ($3::text[] IS NULL OR status = ANY ($3::text[]::{{schema}}.job_status[]))
  AND ($4::text IS NULL OR lock = $4)
  AND ($5::text IS NULL OR queueing_lock = $5)
  AND ($6::bigint IS NULL OR id = $6)
  AND ($7::bigint IS NULL OR id < $7)
ORDER BY id DESC
LIMIT $8::integer;

-- name: get_stalled_jobs
-- Doing jobs whose worker stopped heartbeating (or, legacy, running too long).
SELECT * FROM {{schema}}.get_stalled_jobs_v2($1::double precision, $2::double precision, $3::text, $4::text);

-- name: delete_old_jobs
-- Delete finished jobs older than $1 hours with one of the statuses $2.
WITH deleted AS (
  DELETE FROM {{schema}}.jobs
  WHERE finished_at < now() - make_interval(secs => $1::double precision * 3600)
    AND status = ANY ($2::text[]::{{schema}}.job_status[])
  RETURNING 1
)
SELECT count(*)::integer AS count FROM deleted;

-- name: list_queues
-- Per-queue counts by status.
SELECT queue_name AS name,
       count(*) FILTER (WHERE status = 'todo')::integer AS todo,
       count(*) FILTER (WHERE status = 'doing')::integer AS doing,
       count(*) FILTER (WHERE status = 'succeeded')::integer AS succeeded,
       count(*) FILTER (WHERE status = 'failed')::integer AS failed,
       count(*) FILTER (WHERE status = 'cancelled')::integer AS cancelled,
       count(*) FILTER (WHERE status = 'aborted')::integer AS aborted
FROM {{schema}}.jobs GROUP BY queue_name ORDER BY queue_name;

-- name: list_tasks
-- Per-task counts by status.
SELECT task_name AS name,
       count(*) FILTER (WHERE status = 'todo')::integer AS todo,
       count(*) FILTER (WHERE status = 'doing')::integer AS doing,
       count(*) FILTER (WHERE status = 'succeeded')::integer AS succeeded,
       count(*) FILTER (WHERE status = 'failed')::integer AS failed,
       count(*) FILTER (WHERE status = 'cancelled')::integer AS cancelled,
       count(*) FILTER (WHERE status = 'aborted')::integer AS aborted
FROM {{schema}}.jobs GROUP BY task_name ORDER BY task_name;

-- name: list_locks
-- Locks of waiting or running jobs, with counts.
SELECT lock AS name,
       count(*) FILTER (WHERE status = 'todo')::integer AS todo,
       count(*) FILTER (WHERE status = 'doing')::integer AS doing
FROM {{schema}}.jobs WHERE status IN ('todo', 'doing') AND lock IS NOT NULL
GROUP BY lock ORDER BY lock;

-- name: list_workers
-- Registered workers with their number of doing jobs.
SELECT w.*, (SELECT count(*) FROM {{schema}}.jobs j WHERE j.worker_id = w.id AND j.status = 'doing')::integer AS doing
FROM {{schema}}.workers w ORDER BY w.id;

-- name: register_worker
-- Add a worker row; returns its id.
SELECT {{schema}}.register_worker_v1($1::text, $2::text, $3::integer, $4::text[], $5::integer) AS id;

-- name: heartbeat_worker
-- Beat for worker $1 holding runs $2/$3; says whether the row exists, which of those
-- runs should abort and which are lost. $4: the silence, in seconds, that no worker
-- at all can have had without the database being unreachable to them.
SELECT * FROM {{schema}}.heartbeat_worker_v2($1::bigint, $2::bigint[], $3::integer[], $4::double precision);

-- name: unregister_worker
-- Remove a worker row on graceful stop.
SELECT {{schema}}.unregister_worker_v1($1::bigint);

-- name: prune_workers
-- Remove worker rows silent for more than $1 seconds.
SELECT id FROM {{schema}}.prune_workers_v2($1::double precision) AS id;

-- name: next_scheduled_at
-- The earliest future scheduled_at of todo jobs in queues $1 (NULL = all).
SELECT min(scheduled_at) AS at FROM {{schema}}.jobs
WHERE status = 'todo' AND scheduled_at > now() AND ($1::text[] IS NULL OR queue_name = ANY ($1));

-- name: worker_doing_jobs
-- The runs (id, run) the database says worker $1 is running.
SELECT id, run FROM {{schema}}.jobs WHERE worker_id = $1::bigint AND status = 'doing';

-- name: release_jobs
-- Give back runs ($1 ids, $2 runs) claimed but never started.
SELECT id FROM {{schema}}.release_jobs_v2($1::bigint[], $2::integer[]) AS id;

-- name: abort_requested_jobs
-- Ids among $1 whose abort was requested (abort polling without LISTEN).
SELECT id FROM {{schema}}.jobs WHERE id = ANY ($1::bigint[]) AND status = 'doing' AND abort_requested;

-- name: job_statuses
-- Status, result and error of jobs $1 (waitForJob).
SELECT id, status, result, error FROM {{schema}}.jobs WHERE id = ANY ($1::bigint[]);

-- name: defer_periodic_job
-- Defer one periodic tick exactly once; NULL when already deferred or locked.
SELECT {{schema}}.defer_periodic_job_v1($1::text, $2::text, $3::bigint, $4::jsonb) AS id;

-- name: last_periodic_tick
-- The latest tick deferred for a periodic task.
SELECT {{schema}}.last_periodic_tick_v1($1::text, $2::text) AS tick;

-- name: queue_gauges
-- Per queue: jobs waiting (todo; ready ones among them) and running (doing), and the age in
-- seconds of the oldest ready job. One arm per status, each matching a partial index's
-- predicate (jobs_fetch_idx, jobs_worker_id_idx), so the cost follows the active jobs and not
-- the finished ones a table keeps. Read once per metrics collection (@proc/otel).
SELECT a.queue_name AS queue,
       count(*) FILTER (WHERE a.status = 'todo')::integer AS todo,
       count(*) FILTER (WHERE a.ready)::integer AS ready,
       count(*) FILTER (WHERE a.status = 'doing')::integer AS doing,
       coalesce(extract(epoch FROM now() - min(a.ready_at) FILTER (WHERE a.ready)), 0)::float8
         AS oldest_ready_seconds
FROM (
  SELECT j.queue_name, j.status, coalesce(j.scheduled_at, j.created_at) AS ready_at,
         (j.scheduled_at IS NULL OR j.scheduled_at <= now()) AS ready
  FROM {{schema}}.jobs j WHERE j.status = 'todo'
  UNION ALL
  SELECT j.queue_name, j.status, NULL, false FROM {{schema}}.jobs j WHERE j.status = 'doing'
) a
GROUP BY a.queue_name
ORDER BY a.queue_name;

-- name: delete_finished_jobs
-- Delete at most $5 jobs of status $1 that finished more than $2 ms ago, of queue $3 (NULL:
-- any queue) except queues $4 (NULL: none), the oldest first; returns how many. Bounded, so
-- that no statement holds many row locks or writes a burst of WAL; SKIP LOCKED, so that the
-- retention passes of several workers share the work instead of queueing behind each other.
-- Reads jobs_finished_at_idx in order: only finished jobs have a finished_at.
WITH doomed AS (
  SELECT j.id FROM {{schema}}.jobs j
  WHERE j.finished_at < now() - make_interval(secs => $2::double precision / 1000)
    AND j.status = $1::text::{{schema}}.job_status
    AND ($3::text IS NULL OR j.queue_name = $3::text)
    AND ($4::text[] IS NULL OR j.queue_name <> ALL ($4::text[]))
  ORDER BY j.finished_at
  LIMIT $5
  FOR UPDATE SKIP LOCKED
), deleted AS (
  DELETE FROM {{schema}}.jobs j USING doomed d WHERE j.id = d.id RETURNING 1
)
SELECT count(*)::integer AS count FROM deleted;

-- name: delete_job
-- Delete job $1 unless it is running (doing): its status before deletion, no row when
-- nothing was deleted. A running job is cancelled with abort first.
DELETE FROM {{schema}}.jobs WHERE id = $1::bigint AND status <> 'doing' RETURNING status;

-- name: pause_queue
-- Pause ($2 true) or resume queue $1; whether that changed something.
SELECT {{schema}}.pause_queue_v1($1::text, $2::boolean) AS changed;

-- name: list_paused_queues
-- The paused queues, oldest pause first.
SELECT queue_name AS queue, paused_at FROM {{schema}}.paused_queues ORDER BY paused_at, queue_name;

-- name: set_queue_limits
-- Set queue $1's limits: at most $2 running, at most $3 starts per $4 ms (all NULL: clear).
SELECT {{schema}}.set_queue_limits_v1($1::text, $2::integer, $3::integer, $4::integer);

-- name: list_queue_limits
-- Every queue limit with its use now: running jobs, and starts in the current rate window.
SELECT ql.queue_name AS queue, ql.max_running, ql.rate_max, ql.rate_per_ms,
       (SELECT count(*) FROM {{schema}}.jobs d WHERE d.status = 'doing' AND d.queue_name = ql.queue_name)::integer AS running,
       (SELECT count(*) FROM {{schema}}.jobs t WHERE t.status = 'todo' AND t.queue_name = ql.queue_name)::integer AS waiting,
       CASE WHEN ql.rate_max IS NOT NULL THEN
         (SELECT {{schema}}.rate_window_used_v1(w.starts_ms, w.counts, ql.rate_per_ms, extract(epoch FROM clock_timestamp()) * 1000)
          FROM {{schema}}.rate_limit_windows w WHERE w.key = 'queue:' || ql.queue_name)
       END AS window_starts
FROM {{schema}}.queue_limits ql ORDER BY ql.queue_name;

-- name: list_key_limits
-- Concurrency keys with running or waiting jobs: limit, running and waiting counts; then
-- rate keys with their starts in the current window ($1: at most this many rows).
SELECT 'concurrency' AS kind, k.key, k.max AS max, NULL::integer AS per_ms,
       count(*) FILTER (WHERE k.status = 'doing')::integer AS running,
       count(*) FILTER (WHERE k.status = 'todo')::integer AS waiting,
       NULL::integer AS window_starts, NULL::timestamptz AS open_at
FROM (SELECT j.concurrency_key AS key, j.status, max(j.concurrency_limit) OVER (PARTITION BY j.concurrency_key) AS max
      FROM {{schema}}.jobs j WHERE j.status IN ('todo', 'doing') AND j.concurrency_key IS NOT NULL) k
GROUP BY k.key, k.max
UNION ALL
SELECT 'rate', substr(w.key, 5), w.rate_max, w.rate_per_ms, NULL, NULL,
       {{schema}}.rate_window_used_v1(w.starts_ms, w.counts, w.rate_per_ms, extract(epoch FROM clock_timestamp()) * 1000),
       w.open_at
FROM {{schema}}.rate_limit_windows w
WHERE w.key LIKE 'key:%'
ORDER BY 1, 2
LIMIT $1::integer;

-- name: expire_jobs
-- Cancel (reason "expired") up to $1 todo jobs whose expire_at has passed; their ids.
SELECT id FROM {{schema}}.expire_jobs_v1($1::integer) AS id;

-- dashboard ------------------------------------------------------------------
-- Read by @proc/dashboard. Each one reads what a partial index or a bounded id range holds,
-- so that its cost follows the active jobs, the recent jobs or the page, never the millions
-- of finished jobs a table keeps (the timings are in packages/dashboard/scripts/perf.mjs).

-- name: queue_summary
-- Per queue: waiting, ready and running jobs, the oldest ready job's age in seconds, the
-- failed, cancelled and aborted jobs kept, the jobs that succeeded and failed in the last $1
-- seconds, and when it was paused (see queue_summary_v1).
SELECT s.queue, s.todo, s.ready, s.doing,
       coalesce(extract(epoch FROM now() - s.oldest_ready_at), 0)::float8 AS oldest_ready_seconds,
       s.failed, s.cancelled, s.aborted, s.recent_succeeded, s.recent_failed, s.paused_at
FROM {{schema}}.queue_summary_v1($1::double precision) s;

-- name: throughput_per_minute
-- For each of the last $1 minutes (the current one last): the jobs that succeeded and that
-- failed or aborted in it, and the mean and longest wait of those jobs (from ready to
-- started, seconds). Reads jobs_finished_at_idx: its cost follows the jobs of that hour.
SELECT m.minute,
       coalesce(c.succeeded, 0)::integer AS succeeded,
       coalesce(c.failed, 0)::integer AS failed,
       c.wait_mean_seconds::float8 AS wait_mean_seconds,
       c.wait_max_seconds::float8 AS wait_max_seconds
FROM generate_series(date_trunc('minute', now()) - make_interval(mins => $1::integer - 1),
                     date_trunc('minute', now()), interval '1 minute') AS m(minute)
LEFT JOIN (
  SELECT date_trunc('minute', j.finished_at) AS minute,
         count(*) FILTER (WHERE j.status = 'succeeded') AS succeeded,
         count(*) FILTER (WHERE j.status IN ('failed', 'aborted')) AS failed,
         avg(greatest(extract(epoch FROM j.started_at - coalesce(j.scheduled_at, j.created_at)), 0))
           AS wait_mean_seconds,
         max(greatest(extract(epoch FROM j.started_at - coalesce(j.scheduled_at, j.created_at)), 0))
           AS wait_max_seconds
  FROM {{schema}}.jobs j
  WHERE j.finished_at >= date_trunc('minute', now()) - make_interval(mins => $1::integer - 1)
    AND j.status IN ('succeeded', 'failed', 'aborted')
  GROUP BY 1
) c USING (minute)
ORDER BY m.minute;

-- name: search_jobs
-- Jobs matching optional filters in the id range [$12, $11), newest first, at most $13: queue
-- $1, task $2, statuses $3, lock $4, queueing lock $5, worker $6, created in [$7, $8), args
-- whose JSON text holds $9 (case-insensitive) or contain the JSON object $10. The id range
-- bounds the rows read, whatever the filters.
SELECT * FROM {{schema}}.jobs j
WHERE {{schema}}.job_matches_v1(j.queue_name, j.task_name, j.status, j.lock, j.queueing_lock, j.worker_id,
                                j.created_at, j.args, $1::text, $2::text, $3::text[], $4::text, $5::text,
                                $6::bigint, $7::timestamptz, $8::timestamptz, $9::text, $10::jsonb)
  AND ($11::bigint IS NULL OR id < $11)
  AND ($12::bigint IS NULL OR id >= $12)
ORDER BY id DESC
LIMIT $13::integer;

-- name: job_id_at
-- The id from which jobs were created at or after $1: ids grow with created_at, so the
-- primary key is bisected (about 20 index probes), not the table scanned. NULL: no jobs.
WITH RECURSIVE s(lo, hi) AS (
  SELECT min(id) - 1, max(id) + 1 FROM {{schema}}.jobs
  UNION ALL
  SELECT CASE WHEN p.created_at < $1::timestamptz THEN p.id ELSE s.lo END,
         CASE WHEN p.created_at < $1::timestamptz THEN s.hi ELSE (s.lo + s.hi) / 2 END
  FROM s
  LEFT JOIN LATERAL (
    SELECT j.id, j.created_at FROM {{schema}}.jobs j
    WHERE j.id >= (s.lo + s.hi) / 2 AND j.id < s.hi ORDER BY j.id LIMIT 1
  ) p ON true
  WHERE s.hi - s.lo > 1
)
SELECT hi AS id FROM s WHERE hi - lo <= 1;

-- name: job_id_below
-- The highest job id lower than $1 (NULL: the highest of all), or NULL when there is none.
SELECT max(id) AS id FROM {{schema}}.jobs WHERE $1::bigint IS NULL OR id < $1;

-- name: retry_jobs_matching
-- Retry the finished jobs matching search_jobs' filters $1..$12 (or, with $13, the jobs of
-- those ids); how many. Locked first, so that none changes between the check and the retry.
WITH picked AS (
  SELECT j.id FROM {{schema}}.jobs j
  WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
    AND ($13::bigint[] IS NULL OR j.id = ANY ($13::bigint[]))
    AND {{schema}}.job_matches_v1(j.queue_name, j.task_name, j.status, j.lock, j.queueing_lock, j.worker_id,
                                  j.created_at, j.args, $1::text, $2::text, $3::text[], $4::text, $5::text,
                                  $6::bigint, $7::timestamptz, $8::timestamptz, $9::text, $10::jsonb)
    AND ($11::bigint IS NULL OR j.id < $11)
    AND ($12::bigint IS NULL OR j.id >= $12)
  ORDER BY j.id
  FOR UPDATE SKIP LOCKED
)
SELECT count(r.id)::integer AS count
FROM picked p, LATERAL {{schema}}.retry_job_v2(p.id, NULL, NULL, NULL, NULL, NULL) r;

-- name: cancel_jobs_matching
-- Cancel the waiting (todo) jobs matching search_jobs' filters $1..$12 (or, with $13, the
-- jobs of those ids); how many.
WITH picked AS (
  SELECT j.id FROM {{schema}}.jobs j
  WHERE j.status = 'todo'
    AND ($13::bigint[] IS NULL OR j.id = ANY ($13::bigint[]))
    AND {{schema}}.job_matches_v1(j.queue_name, j.task_name, j.status, j.lock, j.queueing_lock, j.worker_id,
                                  j.created_at, j.args, $1::text, $2::text, $3::text[], $4::text, $5::text,
                                  $6::bigint, $7::timestamptz, $8::timestamptz, $9::text, $10::jsonb)
    AND ($11::bigint IS NULL OR j.id < $11)
    AND ($12::bigint IS NULL OR j.id >= $12)
  ORDER BY j.id
  FOR UPDATE SKIP LOCKED
)
SELECT count(*) FILTER (WHERE {{schema}}.cancel_job_v1(p.id, false, false) = 'cancelled')::integer AS count
FROM picked p;

-- name: delete_jobs_matching
-- Delete the finished jobs matching search_jobs' filters $1..$12 (or, with $13, the jobs of
-- those ids); how many.
WITH deleted AS (
  DELETE FROM {{schema}}.jobs j
  WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
    AND ($13::bigint[] IS NULL OR j.id = ANY ($13::bigint[]))
    AND {{schema}}.job_matches_v1(j.queue_name, j.task_name, j.status, j.lock, j.queueing_lock, j.worker_id,
                                  j.created_at, j.args, $1::text, $2::text, $3::text[], $4::text, $5::text,
                                  $6::bigint, $7::timestamptz, $8::timestamptz, $9::text, $10::jsonb)
    AND ($11::bigint IS NULL OR j.id < $11)
    AND ($12::bigint IS NULL OR j.id >= $12)
  RETURNING 1
)
SELECT count(*)::integer AS count FROM deleted;

-- name: list_running_jobs
-- Doing jobs (id, worker, task, queue, start), by worker then id, at most $1.
SELECT id, worker_id, task_name, queue_name, started_at, abort_requested FROM {{schema}}.jobs
WHERE status = 'doing' ORDER BY worker_id, id LIMIT $1::integer;

-- name: list_lock_holders
-- Per lock of waiting or running jobs: the doing job holding it (if any), how many todo jobs
-- wait behind it and the total number of such locks; held locks first, then by most waiting,
-- then by name, at most $1, after the lock that ended the previous page ($2 whether it was
-- free, $3 its waiting jobs, $4 its name; NULLs: the first page). A keyset, not an offset:
-- page 50 costs what page 1 does. Reads jobs_lock_order_idx and jobs_lock_idx (todo and
-- doing jobs only), never the finished jobs a table keeps.
SELECT l.lock AS name, l.todo, l.total,
       h.id AS holder_id, h.task_name AS holder_task, h.worker_id AS holder_worker_id,
       h.started_at AS holder_started_at
FROM (
  SELECT j.lock, count(*) FILTER (WHERE j.status = 'todo')::integer AS todo,
         count(*) OVER ()::integer AS total
  FROM {{schema}}.jobs j WHERE j.status IN ('todo', 'doing') AND j.lock IS NOT NULL
  GROUP BY j.lock
) l
LEFT JOIN {{schema}}.jobs h ON h.lock = l.lock AND h.status = 'doing'
WHERE $4::text IS NULL OR ((h.id IS NULL), -l.todo, l.lock) > ($2::boolean, -$3::integer, $4::text)
ORDER BY (h.id IS NULL), l.todo DESC, l.lock
LIMIT $1::integer;

-- name: list_queue_names
-- The names of the queues that have waiting, running or kept (failed, cancelled, aborted)
-- jobs, finished one of the last 1,000 jobs, or are paused or limited, sorted, at most $1:
-- the jobs filter's suggestions. The distinct names are read by skipping along
-- jobs_queue_fetch_idx and jobs_unsuccessful_idx (one probe per queue), never by grouping
-- the table (a GROUP BY over 1,100,000 jobs took 300 ms). A queue whose jobs all succeeded
-- long ago is left out: the filter still takes any name.
WITH RECURSIVE todo(queue) AS (
  (SELECT j.queue_name FROM {{schema}}.jobs j WHERE j.status = 'todo' ORDER BY j.queue_name LIMIT 1)
  UNION ALL
  SELECT (SELECT j.queue_name FROM {{schema}}.jobs j
          WHERE j.status = 'todo' AND j.queue_name > t.queue ORDER BY j.queue_name LIMIT 1)
  FROM todo t WHERE t.queue IS NOT NULL
), kept(queue) AS (
  (SELECT j.queue_name FROM {{schema}}.jobs j
   WHERE j.status IN ('failed', 'cancelled', 'aborted') ORDER BY j.queue_name LIMIT 1)
  UNION ALL
  SELECT (SELECT j.queue_name FROM {{schema}}.jobs j
          WHERE j.status IN ('failed', 'cancelled', 'aborted') AND j.queue_name > k.queue
          ORDER BY j.queue_name LIMIT 1)
  FROM kept k WHERE k.queue IS NOT NULL
)
SELECT n.queue FROM (
  SELECT t.queue FROM todo t
  UNION SELECT k.queue FROM kept k
  UNION SELECT j.queue_name FROM {{schema}}.jobs j WHERE j.status = 'doing'
  UNION SELECT r.queue_name FROM (
    SELECT j.queue_name FROM {{schema}}.jobs j WHERE j.finished_at IS NOT NULL
    ORDER BY j.finished_at DESC LIMIT 1000
  ) r
  UNION SELECT p.queue_name FROM {{schema}}.paused_queues p
  UNION SELECT q.queue_name FROM {{schema}}.queue_limits q
) n
WHERE n.queue IS NOT NULL
ORDER BY n.queue
LIMIT $1::integer;

-- name: list_periodic_ticks
-- Per periodic task (task, periodic id) the database has deferred: its last tick (Unix
-- seconds), when that was deferred, the job and its status now. The distinct keys are read
-- by skipping along the primary key, not by reading every tick ever deferred.
WITH RECURSIVE k(task_name, periodic_id) AS (
  (SELECT p.task_name, p.periodic_id FROM {{schema}}.periodic_defers p
   ORDER BY p.task_name, p.periodic_id LIMIT 1)
  UNION ALL
  SELECT n.task_name, n.periodic_id FROM k
  CROSS JOIN LATERAL (
    SELECT p.task_name, p.periodic_id FROM {{schema}}.periodic_defers p
    WHERE (p.task_name, p.periodic_id) > (k.task_name, k.periodic_id)
    ORDER BY p.task_name, p.periodic_id LIMIT 1
  ) n
)
SELECT k.task_name AS task, k.periodic_id, t.defer_timestamp AS tick, t.created_at AS deferred_at,
       t.job_id, j.status AS job_status
FROM k
CROSS JOIN LATERAL (
  SELECT p.defer_timestamp, p.created_at, p.job_id FROM {{schema}}.periodic_defers p
  WHERE p.task_name = k.task_name AND p.periodic_id = k.periodic_id
  ORDER BY p.defer_timestamp DESC LIMIT 1
) t
LEFT JOIN {{schema}}.jobs j ON j.id = t.job_id
ORDER BY k.task_name, k.periodic_id;

-- name: activity_signature
-- What moves when jobs come, start, finish or go, read from the ends of indexes only (well
-- under a millisecond on any table): the highest job id, the number of doing jobs, the latest
-- finish, the worker rows, the paused queues, and the rows of jobs ever inserted, updated and
-- deleted (the statistics counters, which also move on what the others miss: a retry or a
-- delete below the top; they lag a commit by up to a second, and stay 0 without
-- track_counts). The dashboard polls it to catch what no NOTIFY announced, and keys its
-- overview cache on it.
SELECT (SELECT max(j.id) FROM {{schema}}.jobs j)::text || ':' ||
       (SELECT count(*) FROM {{schema}}.jobs j WHERE j.status = 'doing')::text || ':' ||
       coalesce((SELECT max(j.finished_at) FROM {{schema}}.jobs j WHERE j.finished_at IS NOT NULL)::text, '') || ':' ||
       (SELECT count(*) || '/' || coalesce(max(w.id), 0) FROM {{schema}}.workers w) || ':' ||
       (SELECT count(*) FROM {{schema}}.paused_queues p)::text || ':' ||
       (SELECT pg_stat_get_tuples_inserted(r.oid) + pg_stat_get_tuples_updated(r.oid)
               + pg_stat_get_tuples_deleted(r.oid)
        FROM (SELECT '{{schema}}.jobs'::regclass::oid AS oid) r)::text AS signature;
