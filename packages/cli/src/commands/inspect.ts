import { type Job, redact } from "@proc/core";
import { UsageError } from "../errors.js";
import { formatDate } from "../output.js";
import type { Session } from "../session.js";
import { printJobs } from "./jobs.js";

export async function queues(s: Session): Promise<number> {
  const app = await s.open("database");
  const counts = await app.jobManager.listQueues();
  const paused = new Set((await app.jobManager.listPausedQueues()).map((p) => p.queue));
  // A paused queue with no job yet is listed too: the pause is waiting for its jobs.
  const names = [...new Set([...counts.map((r) => r.name), ...paused])].sort();
  const rows = names.map((name) => ({
    ...(counts.find((r) => r.name === name) ?? {
      name,
      todo: 0,
      doing: 0,
      succeeded: 0,
      failed: 0,
      cancelled: 0,
      aborted: 0,
    }),
    paused: paused.has(name),
  }));
  if (s.json) s.out.json(rows);
  else if (rows.length === 0) s.out.line(s.out.paint("no queues yet (no jobs)", "dim"));
  else
    s.out.table(
      [
        { header: "QUEUE" },
        ...["TODO", "DOING", "SUCCEEDED", "FAILED", "CANCELLED", "ABORTED"].map((header) => ({
          header,
          align: "right" as const,
        })),
        { header: "PAUSED" },
      ],
      rows.map((r) => [
        ...[r.name, r.todo, r.doing, r.succeeded, r.failed, r.cancelled, r.aborted].map((x) => String(x)),
        r.paused ? "paused" : "",
      ]),
    );
  return 0;
}

export async function queuesPause(s: Session): Promise<number> {
  return pauseOrResume(s, true);
}

export async function queuesResume(s: Session): Promise<number> {
  return pauseOrResume(s, false);
}

async function pauseOrResume(s: Session, pause: boolean): Promise<number> {
  const [queue] = s.positionals as [string];
  const app = await s.open("database");
  const changed = pause ? await app.jobManager.pauseQueue(queue) : await app.jobManager.resumeQueue(queue);
  const state = pause ? "paused" : "resumed";
  if (s.json) s.out.json({ queue, paused: pause, changed });
  else
    s.out.line(
      changed ? `queue ${queue} ${state}` : `queue ${queue} was already ${pause ? "paused" : "not paused"}`,
    );
  return 0;
}

export async function workers(s: Session): Promise<number> {
  const app = await s.open("database");
  const rows = await app.jobManager.listWorkers();
  if (s.json) s.out.json(rows);
  else if (rows.length === 0) s.out.line(s.out.paint("no workers registered", "dim"));
  else {
    const now = Date.now();
    s.out.table(
      [
        { header: "ID", align: "right" },
        { header: "NAME" },
        { header: "HOST" },
        { header: "PID", align: "right" },
        { header: "QUEUES" },
        { header: "CONCURRENCY", align: "right" },
        { header: "DOING", align: "right" },
        { header: "STARTED" },
        { header: "LAST HEARTBEAT" },
      ],
      rows.map((w) => [
        String(w.id),
        w.name,
        w.host,
        String(w.pid),
        w.queues?.join(",") ?? "(all)",
        String(w.concurrency),
        String(w.doing),
        formatDate(w.startedAt),
        `${Math.max(0, Math.round((now - w.lastHeartbeatAt.getTime()) / 1000))}s ago`,
      ]),
    );
  }
  return 0;
}

export async function stalled(s: Session): Promise<number> {
  const v = s.values;
  const heartbeatSeconds = v.seconds("heartbeat-seconds");
  const nbSeconds = v.seconds("nb-seconds");
  if (heartbeatSeconds !== undefined && nbSeconds !== undefined)
    throw new UsageError("--heartbeat-seconds and --nb-seconds are alternatives: give one", s.command);
  const app = await s.open("database");
  const jobs = await app.jobManager.getStalledJobs({
    heartbeatSeconds,
    nbSeconds,
    queue: v.string("queue"),
    task: v.string("task"),
  });
  if (!v.bool("retry")) {
    if (s.json) s.out.json(jobs);
    else printJobs(s, jobs, "no stalled jobs");
    return 0;
  }
  const retried: Job[] = [];
  for (const job of jobs) {
    const again = await app.jobManager.retryJob(job);
    if (again) retried.push(again);
  }
  if (s.json) s.out.json(retried);
  else if (retried.length === 0) s.out.line(s.out.paint("no stalled jobs", "dim"));
  else s.out.line(`retried ${retried.length} stalled job(s): ${retried.map((j) => j.id).join(", ")}`);
  return 0;
}

/** For probes: every failure is one line and exit 1, also with --json. */
export async function healthcheck(s: Session): Promise<number> {
  try {
    const app = await s.open("database", { checkSchema: false });
    const status = await app.checkSchema();
    if (s.json) s.out.json({ ok: true, schema: status.schema, migration: status.latest });
    else s.out.line(`ok: database reachable, schema "${status.schema}" at migration ${status.latest}`);
    return 0;
  } catch (error) {
    if (!s.json) throw error;
    s.out.json({ ok: false, problem: redact((error as Error).message) });
    return 1;
  }
}
