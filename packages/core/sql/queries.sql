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

-- name: fetch_jobs
-- Claim up to $3 ready jobs of queues $2 (NULL = all) for worker $1, each a new run, as one JSON array
-- of FetchedJobRow (NULL when none): the driver then parses one document instead of
-- a row of 14 text fields per job (measured: 2 µs less worker CPU per job).
SELECT json_agg(f) AS jobs FROM {{schema}}.fetch_jobs_v3($1::bigint, $2::text[], $3::integer) f;

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
