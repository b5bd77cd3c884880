-- Migration 8: a job completed on its own no longer pays for planning its completion.
--
-- complete_jobs_v2's UPDATE ... FROM unnest(p_ids, p_runs) was planned anew at every call:
-- plpgsql's plan cache compares the generic plan's estimate (arrays of unknown length) with
-- the custom plans' and kept choosing custom ones. Planning that statement against the jobs
-- table and its partial indexes cost more than the update itself. Measured in one session,
-- 1,000 calls each, PostgreSQL 15 (the function alone, without the commit):
--   1 job a call:    400-570 µs a call planned each time, 96-109 µs with the generic plan;
--   10 jobs a call:  35-47 µs a job, 30 µs;
--   500 jobs a call: 9.6-10.6 µs a job planned each time, 10.0-10.7 with the generic plan.
-- The generic plan is the same plan (a hash join of the ids with an index scan of the
-- primary key; enable_nestloop = off keeps the nested loop out, see complete_jobs_v2), so a
-- drain, whose completions carry hundreds of jobs, is unchanged; a worker below a few
-- hundred jobs a second completes most jobs one at a time, and saves the planning on each
-- (end to end at 200 jobs/s, the saving was within the ±20% that the database's whole CPU per
-- job varied between runs on the machine that measured it).
ALTER FUNCTION {{schema}}.complete_jobs_v2(bigint[], integer[], jsonb, boolean)
  SET plan_cache_mode = force_generic_plan;
