-- The table of scripts/perf.mjs, in schema :"schema": 1,000,000 finished jobs deferred over the
-- last 7 days (about 95 % succeeded, 3.4 % failed, 1 % cancelled, 0.6 % aborted; 10 % with a
-- lock), 100,000 waiting ones deferred over the last 30 minutes (10 % scheduled later, 5 % with
-- a lock), 40 running on 4 live workers, and 4 periodic tasks that ticked every minute for 7 days.
INSERT INTO :"schema".jobs (queue_name, task_name, lock, args, status, attempts, worker_id,
                            result, error, events, created_at, started_at, finished_at, run)
SELECT q.queue, 'task_' || (i % 12),
       CASE WHEN i % 10 = 0 THEN 'account:' || (i % 5000) END,
       jsonb_build_object('user_id', i % 100000, 'email', 'user' || (i % 100000) || '@example.com',
                          'ref', md5(i::text)),
       CAST(s.status AS :"schema".job_status), CASE WHEN s.status = 'failed' THEN 3 ELSE 1 END,
       1000 + i % 20,
       CASE WHEN s.status = 'succeeded' THEN '{"ok": true}'::jsonb END,
       CASE WHEN s.status IN ('failed', 'aborted')
            THEN '{"name": "Error", "message": "upstream answered 503"}'::jsonb END,
       '[]', t.created, t.created + (i % 5000) * interval '1 ms',
       t.created + (i % 5000) * interval '1 ms' + (i % 2000) * interval '1 ms', 1
FROM generate_series(1, 1000000) AS i
CROSS JOIN LATERAL (SELECT now() - interval '7 days' + i * (interval '7 days' / 1000000) - interval '10 s' AS created) t
CROSS JOIN LATERAL (SELECT (ARRAY['default', 'default', 'default', 'emails', 'emails', 'reports', 'webhooks',
                                  'billing', 'images', 'exports'])[1 + (hashint4(i) & 1023) % 10] AS queue) q
CROSS JOIN LATERAL (SELECT CASE WHEN (hashint4(i + 7) & 1023) < 973 THEN 'succeeded'
                                WHEN (hashint4(i + 7) & 1023) < 1008 THEN 'failed'
                                WHEN (hashint4(i + 7) & 1023) < 1018 THEN 'cancelled'
                                ELSE 'aborted' END AS status) s;

INSERT INTO :"schema".jobs (queue_name, task_name, lock, args, status, scheduled_at, created_at)
SELECT (ARRAY['default', 'default', 'emails', 'reports', 'webhooks'])[1 + (hashint4(i) & 1023) % 5],
       'task_' || (i % 12),
       CASE WHEN i % 20 = 0 THEN 'account:' || (i % 5000) END,
       jsonb_build_object('user_id', i % 100000, 'email', 'user' || (i % 100000) || '@example.com',
                          'ref', md5(i::text)),
       'todo', CASE WHEN i % 10 = 0 THEN now() + i * interval '1 second' END,
       now() - interval '30 minutes' + i * (interval '30 minutes' / 100000)
FROM generate_series(1, 100000) AS i;

INSERT INTO :"schema".workers (name, host, pid, queues, concurrency)
SELECT 'worker-' || w, 'host-' || (w % 2), 4000 + w, CASE WHEN w = 4 THEN ARRAY['reports'] END, 10
FROM generate_series(1, 4) AS w;

-- 40 of the waiting jobs run, 10 per worker; a lock is held only once.
WITH picked AS (
  SELECT id, row_number() OVER (ORDER BY id) AS n FROM (
    SELECT DISTINCT ON (coalesce(lock, id::text)) id FROM :"schema".jobs
    WHERE status = 'todo' AND scheduled_at IS NULL ORDER BY coalesce(lock, id::text), id
  ) d ORDER BY id LIMIT 40
)
UPDATE :"schema".jobs j
SET status = 'doing', attempts = 1, run = 1, started_at = now() - p.n * interval '2 seconds',
    worker_id = (SELECT min(id) FROM :"schema".workers) + (p.n % 4)
FROM picked p WHERE j.id = p.id;

INSERT INTO :"schema".periodic_defers (task_name, periodic_id, defer_timestamp, job_id, created_at)
SELECT 'task_' || t, '', extract(epoch FROM date_trunc('minute', now()) - m * interval '1 minute')::bigint,
       NULL, date_trunc('minute', now()) - m * interval '1 minute'
FROM generate_series(0, 3) AS t, generate_series(0, 10079) AS m;
