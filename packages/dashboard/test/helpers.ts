// Arranging jobs in every status the dashboard shows, and talking to the handler as a browser would.
import type { App, JobError } from "@proc/core";
import { registerWorker } from "@proc/fixtures";

export const XSS_ARGS = {
  title: "<script>alert(1)</script>",
  image: "<img src=x onerror=alert(1)>",
  dsn: "postgres://app:hunter2-secret@db.internal:5432/app",
};

/** A job claimed by a worker: `doing`. */
export async function doingJob(
  app: App,
  task = "crunch",
  queue = "default",
  lock: string | null = null,
): Promise<number> {
  const id = await app.configureTask(task, { allowUnknown: true, queue, lock }).defer({ n: 1 });
  const workerId = await registerWorker(app, `w-${id}`);
  const [job] = await app.jobManager.fetchJobs(workerId, [queue], 1);
  if (job?.id !== id) throw new Error(`expected to claim job ${id}, got ${job?.id}`);
  return id;
}

/** A job that ran once and failed with `error`. */
export async function failedJob(
  app: App,
  args: Record<string, string> = {},
  error: JobError = {
    name: "TypeError",
    message: "boom",
    stack: "TypeError: boom\n    at crunch (task.ts:1:1)",
  },
  task = "crunch",
): Promise<number> {
  const queue = `q-${Math.random().toString(36).slice(2, 8)}`;
  const id = await app.configureTask(task, { allowUnknown: true, queue }).defer(args);
  const workerId = await registerWorker(app, `w-${id}`);
  const [job] = await app.jobManager.fetchJobs(workerId, [queue], 1);
  if (job?.id !== id) throw new Error(`expected to claim job ${id}, got ${job?.id}`);
  await app.jobManager.failJob({ id, run: job.run }, { status: "failed", error });
  return id;
}

export const ORIGIN = "http://dashboard.test";

/** The CSRF cookie and form token a GET of a dashboard page hands out. */
export async function session(
  handler: (r: Request) => Promise<Response>,
  path: string,
): Promise<{ cookie: string; csrf: string }> {
  const response = await handler(new Request(`${ORIGIN}${path}`));
  const setCookie = response.headers.get("set-cookie") ?? "";
  const cookie = setCookie.split(";")[0]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(await response.text())?.[1];
  if (!cookie || !csrf) throw new Error(`no CSRF cookie or token from ${path}`);
  return { cookie, csrf };
}

/** A POST of the action form, as the dashboard's own page submits it. */
export function post(
  path: string,
  fields: Record<string, string> | Array<[string, string]>,
  headers: Record<string, string> = {},
): Request {
  return new Request(`${ORIGIN}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      origin: ORIGIN,
      "sec-fetch-site": "same-origin",
      ...headers,
    },
    body: new URLSearchParams(fields).toString(),
  });
}
