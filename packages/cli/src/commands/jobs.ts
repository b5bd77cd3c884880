import { JOB_STATUSES, type Job, type JobStatus } from "@proc/core";
import { CliError, UsageError } from "../errors.js";
import { type Cell, STATUS_STYLE, formatDate, truncate } from "../output.js";
import type { Session } from "../session.js";

export async function jobsList(s: Session): Promise<number> {
  const v = s.values;
  const statuses = v.list("status");
  const bad = statuses?.filter((x) => !(JOB_STATUSES as readonly string[]).includes(x));
  if (bad?.length)
    throw new UsageError(
      `unknown status ${JSON.stringify(bad[0])} for --status: expected ${JOB_STATUSES.join(", ")}`,
      ["jobs", "list"],
    );
  const limit = v.int("limit", 1) ?? 50;
  const app = await s.open("database");
  const jobs = await app.jobManager.listJobs({
    status: statuses as JobStatus[] | undefined,
    queue: v.string("queue"),
    task: v.string("task"),
    lock: v.string("lock"),
    limit,
  });
  if (s.json) s.out.json(jobs);
  else printJobs(s, jobs, "no jobs match");
  return 0;
}

export function printJobs(s: Session, jobs: readonly Job[], empty: string): void {
  if (jobs.length === 0) {
    s.out.line(s.out.paint(empty, "dim"));
    return;
  }
  s.out.table(
    [
      { header: "ID", align: "right" },
      { header: "STATUS" },
      { header: "TASK" },
      { header: "QUEUE" },
      { header: "PRIORITY", align: "right" },
      { header: "LOCK" },
      { header: "ATTEMPTS", align: "right" },
      { header: "SCHEDULED" },
      { header: "CREATED" },
      { header: "ARGS" },
    ],
    jobs.map((j) => [
      String(j.id),
      statusCell(j.status),
      j.task,
      j.queue,
      String(j.priority),
      j.lock ?? "-",
      String(j.attempts),
      formatDate(j.scheduledAt),
      formatDate(j.createdAt),
      truncate(JSON.stringify(j.args), 40),
    ]),
  );
}

function statusCell(status: JobStatus): Cell {
  return { text: status, style: STATUS_STYLE[status] };
}

function jobId(s: Session): number {
  const text = s.positionals[0]!;
  const id = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(id) || id < 1)
    throw new UsageError(`invalid job id ${JSON.stringify(text)}: expected a positive integer`, s.command);
  return id;
}

async function existingJob(s: Session, id: number): Promise<Job> {
  const app = await s.open("database");
  const job = await app.jobManager.getJob(id);
  if (!job) throw new CliError(`no job with id ${id}; \`proc jobs list\` shows the existing jobs`);
  return job;
}

export async function jobsShow(s: Session): Promise<number> {
  const job = await existingJob(s, jobId(s));
  if (s.json) {
    s.out.json(job);
    return 0;
  }
  const o = s.out;
  o.line(
    `${o.paint(`job ${job.id}`, "bold")}  ${job.task}  ${o.paint(job.status, STATUS_STYLE[job.status])}`,
  );
  const fields: Array<[string, string]> = [
    ["queue", job.queue],
    ["priority", String(job.priority)],
    ["lock", job.lock ?? "-"],
    ["queueing lock", job.queueingLock ?? "-"],
    ["attempts", String(job.attempts)],
    ["stalled", `${job.stalledCount} time(s)`],
    ["worker", job.workerId === null ? "-" : String(job.workerId)],
    ["abort requested", job.abortRequested ? "yes" : "no"],
    ["scheduled", formatDate(job.scheduledAt)],
    ["created", formatDate(job.createdAt)],
    ["started", formatDate(job.startedAt)],
    ["finished", formatDate(job.finishedAt)],
    ["args", JSON.stringify(job.args)],
    ["result", job.result === null ? "-" : JSON.stringify(job.result)],
  ];
  if (job.error) fields.push(["error", `${job.error.name}: ${job.error.message}`]);
  const width = Math.max(...fields.map(([k]) => k.length));
  for (const [key, value] of fields) o.line(`  ${o.paint(key.padEnd(width), "dim")}  ${value}`);
  if (job.error?.stack && s.values.bool("verbose")) o.line(indent(job.error.stack, 4));
  if (job.events.length) {
    o.line(o.paint("history", "bold"));
    for (const { type, at, ...rest } of job.events) {
      const extra = Object.entries(rest).map(([key, value]) => `${key}=${eventValue(value)}`);
      o.line(`  ${formatDate(at)}  ${[type, ...extra].join("  ")}`);
    }
  }
  return 0;
}

/** An error in the history reads as "Name: message"; its stack is in `--json`. */
function eventValue(value: unknown): string {
  if (typeof value === "object" && value !== null && "message" in value)
    return `${String((value as { name?: unknown }).name ?? "Error")}: ${String(value.message)}`;
  return typeof value === "string" ? value : JSON.stringify(value);
}

function indent(text: string, n: number): string {
  return text
    .split("\n")
    .map((l) => " ".repeat(n) + l)
    .join("\n");
}

export async function jobsRetry(s: Session): Promise<number> {
  const id = jobId(s);
  const before = await existingJob(s, id);
  if (before.status === "todo") throw new CliError(`job ${id} is already waiting (todo); nothing to retry`);
  const app = await s.open("database");
  const job = await app.jobManager.retryJob(id);
  // Between the read and the retry another process may have retried or deleted it.
  if (!job)
    throw new CliError(`job ${id} was retried or deleted meanwhile; \`proc jobs show ${id}\` tells which`);
  if (s.json) s.out.json(job);
  else s.out.line(`job ${id} is todo again (was ${before.status})`);
  return 0;
}

export async function jobsCancel(s: Session): Promise<number> {
  const id = jobId(s);
  const abort = s.values.bool("abort");
  const remove = s.values.bool("delete");
  const before = await existingJob(s, id);
  const app = await s.open("database");
  const status = await app.jobManager.cancelJob(id, { abort, delete: remove });
  if (status === "cancelled" && before.status === "todo") {
    if (s.json) s.out.json({ id, status: remove ? "deleted" : status, previous: before.status });
    else s.out.line(`job ${id} ${remove ? "deleted" : "cancelled"}`);
    return 0;
  }
  if (status === "doing" && abort) {
    if (s.json) s.out.json({ id, status, previous: before.status, abortRequested: true });
    else s.out.line(`job ${id} is running; asked it to abort (its ctx.signal fires)`);
    return 0;
  }
  if (status === "doing")
    throw new CliError(
      `job ${id} is running (doing), so it cannot be cancelled; pass --abort to ask it to stop`,
    );
  throw new CliError(`job ${id} is ${status ?? "gone"}, not waiting; nothing to cancel`);
}
