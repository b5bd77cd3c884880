// Small fixtures for tests of plugins and workers: a recording logger, running a
// worker service by hand, and making workers and jobs look dead or old.
import type { App, Job, Logger } from "@proc/core";

export interface LogRecord {
  level: "debug" | "info" | "warn" | "error";
  action: unknown;
  fields: Record<string, unknown>;
  msg: string | undefined;
}

/** A logger that remembers every line, to assert on actions. */
export function recordingLogger(records: LogRecord[] = []): Logger & { records: LogRecord[] } {
  const at =
    (level: LogRecord["level"]) =>
    (fields: Record<string, unknown>, msg?: string): void => {
      records.push({ level, action: fields.action, fields, msg });
    };
  const logger = {
    records,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return logger;
}

/** Run one of the app's worker services as a worker would, until stop(). */
export function startService(app: App, name: string, logger: Logger, workerId = 1) {
  const service = app.workerServices.find((s) => s.name === name);
  if (!service) throw new Error(`no worker service named ${name}`);
  const controller = new AbortController();
  const done = service.run({
    app,
    signal: controller.signal,
    logger,
    workerId,
    workerName: `test-${workerId}`,
    queues: null,
  });
  return {
    async stop(): Promise<void> {
      controller.abort();
      await done;
    },
  };
}

/** A worker row, as a Worker would register it. */
export function registerWorker(app: App, name = "w"): Promise<number> {
  return app.jobManager.registerWorker({ name, host: "test-host", pid: 4242, queues: null, concurrency: 1 });
}

/** Make a worker look dead: its last heartbeat was `seconds` ago. */
export async function backdateHeartbeat(app: App, workerId: number, seconds: number): Promise<void> {
  await app.connector.query(
    `UPDATE ${app.schema}.workers SET last_heartbeat_at = now() - make_interval(secs => $2) WHERE id = $1`,
    [workerId, seconds],
  );
}

/** Make a doing job look long-running (legacy nbSeconds mode). */
export async function backdateStart(app: App, jobId: number, seconds: number): Promise<void> {
  await app.connector.query(
    `UPDATE ${app.schema}.jobs SET started_at = now() - make_interval(secs => $2) WHERE id = $1`,
    [jobId, seconds],
  );
}

/**
 * Claim `jobId` on a worker that then "dies": a worker row whose heartbeat is a minute
 * old, as after a SIGKILL, while the database kept hearing from everyone else. The job
 * must be the only ready one. Returns the dead worker's id and the run it claimed (a
 * doing Job, as getStalledJobs would return it).
 *
 * A silence shared by every worker that ended less than a minute ago would excuse the
 * dead worker (see heartbeat_worker_v2; in a database shared by several tests, any beat
 * that comes more than silenceSeconds after the previous one records such a silence):
 * it is moved back to a minute ago, so that the worker's own silence is what counts.
 */
export async function claimRunOnDeadWorker(app: App, jobId: number): Promise<{ workerId: number; job: Job }> {
  const workerId = await registerWorker(app, "dead");
  const [claimed] = await app.jobManager.fetchJobs(workerId, null, 1);
  if (claimed?.id !== jobId) throw new Error(`expected to claim job ${jobId}, got ${claimed?.id}`);
  await backdateHeartbeat(app, workerId, 60);
  await app.connector.query(
    `UPDATE ${app.schema}.liveness SET silence_ended_at = now() - interval '60 seconds'
     WHERE silence_ended_at > now() - interval '60 seconds'`,
  );
  return { workerId, job: claimed };
}

/** claimRunOnDeadWorker, returning the dead worker's id only. */
export async function claimOnDeadWorker(app: App, jobId: number): Promise<number> {
  return (await claimRunOnDeadWorker(app, jobId)).workerId;
}
