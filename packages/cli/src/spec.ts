/**
 * Every command and option of `proc`, written down once: the parser, the environment
 * fallbacks and `--help` are all generated from these tables, so they cannot drift apart.
 */

export interface OptionSpec {
  /** Long name, without dashes: `--queueing-lock` is "queueing-lock". */
  name: string;
  short?: string;
  type: "string" | "boolean";
  /** Placeholder shown in help for a string option ("N", "a,b", "seconds"). */
  value?: string;
  help: string;
  /** Shown in help; the code applies it. */
  default?: string;
  /**
   * The environment variable read when the flag is absent. Derived from the command
   * and option names (PROC_WORKER_CONCURRENCY) unless a well-known name exists.
   */
  env?: string;
  /** NO_COLOR's convention: any non-empty value means true, even "0". */
  envAnyValue?: boolean;
}

export interface ArgSpec {
  name: string;
  required: boolean;
}

export interface CommandSpec {
  /** "worker", or "jobs list" for a subcommand. */
  path: readonly string[];
  summary: string;
  args: readonly ArgSpec[];
  options: readonly OptionSpec[];
  /** Extra help paragraphs. */
  details?: string;
}

export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  {
    name: "app",
    short: "a",
    type: "string",
    value: "module",
    help: "module exporting your App as `app` (or as its default export): .js, .mjs, .cjs or .ts",
  },
  {
    name: "database-url",
    type: "string",
    value: "url",
    env: "DATABASE_URL",
    help: "Postgres to use when no --app is given (commands that need no tasks)",
  },
  {
    name: "json",
    type: "boolean",
    help: "print results as JSON, for scripts",
  },
  {
    name: "log-format",
    type: "string",
    value: "json|pretty",
    help: "log line format",
    default: "json when stderr is not a terminal, else pretty",
  },
  { name: "verbose", short: "v", type: "boolean", help: "debug logs, and stack traces on errors" },
  {
    name: "quiet",
    short: "q",
    type: "boolean",
    help: "only warnings and errors in the logs (`proc worker` takes -q for --queues: use --quiet there)",
  },
  {
    name: "no-color",
    type: "boolean",
    env: "NO_COLOR",
    envAnyValue: true,
    help: "no colours (also off when output is not a terminal)",
  },
  { name: "help", short: "h", type: "boolean", help: "show help" },
  { name: "version", type: "boolean", help: "print the version" },
];

/** Options that never read the environment: they only make sense typed by hand. */
export const NO_ENV = new Set(["help", "version"]);

const jobFilters = (what: string): OptionSpec[] => [
  { name: "queue", type: "string", value: "name", help: `only ${what} of this queue` },
  { name: "task", type: "string", value: "name", help: `only ${what} of this task` },
];

export const COMMANDS: readonly CommandSpec[] = [
  {
    path: ["worker"],
    summary: "run jobs of your app's tasks until stopped (SIGINT/SIGTERM stop it gracefully)",
    args: [],
    options: [
      {
        name: "queues",
        short: "q",
        type: "string",
        value: "a,b",
        help: "only run jobs of these queues",
        default: "all queues",
      },
      { name: "concurrency", short: "c", type: "string", value: "N", help: "jobs run at once", default: "1" },
      {
        name: "name",
        short: "n",
        type: "string",
        value: "name",
        help: "worker name in logs and `proc workers`",
        default: "<host>-<pid>",
      },
      { name: "one-shot", type: "boolean", help: "run the jobs that are ready, then exit" },
      {
        name: "shutdown-timeout",
        type: "string",
        value: "seconds",
        help: "on stop, how long running jobs may finish before they are aborted",
        default: "25",
      },
      { name: "no-listen", type: "boolean", help: "do not LISTEN for new jobs; poll only" },
      {
        name: "poll-interval",
        type: "string",
        value: "seconds",
        help: "how often to look for jobs when no notification arrives",
        default: "5",
      },
      {
        name: "delete-jobs",
        type: "string",
        value: "never|successful|always",
        help: "delete finished jobs instead of keeping them",
        default: "never",
      },
      {
        name: "probes-port",
        type: "string",
        value: "port",
        help: "serve health probes /livez and /readyz on this port (Kubernetes liveness and readiness)",
      },
      {
        name: "probes-host",
        type: "string",
        value: "host",
        help: "address the probes bind (0.0.0.0 in a pod: the kubelet probes the pod's IP)",
        default: "127.0.0.1",
      },
      {
        name: "metrics-port",
        type: "string",
        value: "port",
        help: "serve this worker's metrics in the Prometheus text format at http://<metrics-host>:<port>/metrics (needs @proc/otel)",
      },
      {
        name: "metrics-host",
        type: "string",
        value: "host",
        help: "address the metrics endpoint binds",
        default: "127.0.0.1",
      },
    ],
    details:
      "Needs --app: the worker runs your tasks. Logs go to stderr. Exit 0 after a graceful stop; " +
      "a second SIGINT/SIGTERM aborts running jobs at once.",
  },
  {
    path: ["defer"],
    summary: "defer a job and print its id",
    args: [
      { name: "task", required: true },
      { name: "json-args", required: false },
    ],
    options: [
      {
        name: "queue",
        type: "string",
        value: "name",
        help: "queue to put the job in",
        default: "the task's",
      },
      { name: "lock", type: "string", value: "lock", help: "run at most one job with this lock at a time" },
      {
        name: "queueing-lock",
        type: "string",
        value: "lock",
        help: "refuse the job if one with this queueing lock is waiting (todo)",
      },
      {
        name: "on-conflict",
        type: "string",
        value: "error|ignore|replace",
        help: "when the queueing lock is taken: fail, defer nothing (print the waiting job's id), or give the waiting job these args and schedule (print its id)",
        default: "error",
      },
      {
        name: "ignore-already-enqueued",
        type: "boolean",
        help: "when the queueing lock is taken, print a note and exit 0",
      },
      { name: "at", type: "string", value: "iso-date", help: "run no earlier than this date" },
      {
        name: "in",
        type: "string",
        value: "seconds",
        help: "run no earlier than this many seconds from now",
      },
      { name: "priority", type: "string", value: "N", help: "higher runs first", default: "the task's (0)" },
      {
        name: "concurrency-key",
        type: "string",
        value: "key",
        help: "run at most --concurrency-limit jobs with this key at once",
      },
      {
        name: "concurrency-limit",
        type: "string",
        value: "N",
        help: "how many jobs of the key may run at once",
      },
      {
        name: "rate-limit",
        type: "string",
        value: "N/window",
        help: "at most N jobs of --rate-key start per window (5/1s, 100/1m)",
      },
      {
        name: "rate-key",
        type: "string",
        value: "key",
        help: "jobs sharing it share the rate",
        default: "the task",
      },
      {
        name: "expire-in",
        type: "string",
        value: "seconds",
        help: "not started within this many seconds, the job ends cancelled (expired) unrun",
      },
      {
        name: "unique-for",
        type: "string",
        value: "seconds",
        help: "with --queueing-lock: no new job of it until this long after the last one started",
      },
      {
        name: "unknown",
        type: "boolean",
        help: "defer even if no task of that name is registered (another app runs it)",
      },
    ],
    details:
      'json-args is a JSON object, e.g. \'{"to": "a@b.c"}\' (default {}). Without --app, only --unknown ' +
      "can defer (no task is registered). Prints the job id, or with --json an object with id, task and queue.",
  },
  {
    path: ["schema", "apply"],
    summary: "apply pending migrations (idempotent; safe when run concurrently)",
    args: [],
    options: [],
  },
  {
    path: ["schema", "status"],
    summary: "show applied and pending migrations",
    args: [],
    options: [],
  },
  {
    path: ["schema", "sql"],
    summary: "print the full schema SQL (for review or your own migration tool); needs no database",
    args: [],
    options: [],
  },
  {
    path: ["jobs", "list"],
    summary: "list jobs, newest first",
    args: [],
    options: [
      {
        name: "status",
        type: "string",
        value: "s1,s2",
        help: "only jobs with these statuses (todo, doing, succeeded, failed, cancelled, aborted)",
      },
      ...jobFilters("jobs"),
      { name: "lock", type: "string", value: "lock", help: "only jobs with this lock" },
      { name: "limit", type: "string", value: "N", help: "at most this many jobs", default: "50" },
    ],
  },
  {
    path: ["jobs", "show"],
    summary: "show one job: its fields, args, result, error and history",
    args: [{ name: "id", required: true }],
    options: [],
  },
  {
    path: ["jobs", "retry"],
    summary: "put a finished (or stalled) job back to todo, to run now",
    args: [{ name: "id", required: true }],
    options: [],
  },
  {
    path: ["jobs", "cancel"],
    summary: "cancel a todo job; with --abort, ask a running job to abort",
    args: [{ name: "id", required: true }],
    options: [
      { name: "abort", type: "boolean", help: "if the job is running, fire its ctx.signal" },
      { name: "delete", type: "boolean", help: "delete the todo job instead of marking it cancelled" },
    ],
  },
  {
    path: ["queues"],
    summary: "job counts per queue and status",
    args: [],
    options: [],
  },
  {
    path: ["workers"],
    summary: "registered workers, their queues and last heartbeat",
    args: [],
    options: [],
  },
  {
    path: ["stalled"],
    summary: "list running jobs whose worker is gone; --retry puts them back to todo",
    args: [],
    options: [
      { name: "retry", type: "boolean", help: "retry every stalled job found" },
      {
        name: "heartbeat-seconds",
        type: "string",
        value: "N",
        help: "stalled when the worker's last heartbeat is older than this",
        default: "30",
      },
      {
        name: "nb-seconds",
        type: "string",
        value: "N",
        help: "legacy mode: stalled when running for longer than this, whatever the worker",
      },
      ...jobFilters("stalled jobs"),
    ],
  },
  {
    path: ["queues", "pause"],
    summary: "pause a queue: no worker starts its jobs until it is resumed (deferring still works)",
    args: [{ name: "queue", required: true }],
    options: [],
    details:
      "Stored in the database: it outlives every worker. Workers drop the queue's prefetched jobs " +
      "at once (NOTIFY; without it, they start no new claim of it); running jobs finish.",
  },
  {
    path: ["queues", "resume"],
    summary: "resume a paused queue",
    args: [{ name: "queue", required: true }],
    options: [],
  },
  {
    path: ["queues", "limit"],
    summary: "limit a queue across every worker: jobs running at once, starts per window",
    args: [{ name: "queue", required: true }],
    options: [
      { name: "max-running", type: "string", value: "N", help: "at most N of its jobs run at once" },
      {
        name: "rate",
        type: "string",
        value: "N/window",
        help: "at most N of its jobs start in any window (5/1s, 100/1m, 10/500ms)",
      },
      { name: "clear", type: "boolean", help: "remove every limit of the queue" },
    ],
    details:
      "Stored in the database and enforced by the claim, so it holds exactly whatever the number of " +
      "workers. Setting one limit replaces the queue's limits: give both to keep both. Jobs held back " +
      "stay todo and never count as attempts.",
  },
  {
    path: ["limits"],
    summary: "limits in force and their use now: queues, concurrency keys, rate keys",
    args: [],
    options: [{ name: "limit", type: "string", value: "N", help: "most keys listed", default: "100" }],
  },
  {
    path: ["metrics"],
    summary: "serve the queue metrics in the Prometheus text format at /metrics until stopped",
    args: [],
    options: [
      {
        name: "port",
        type: "string",
        value: "port",
        help: "TCP port to listen on (0: any free port)",
        default: "9464",
      },
      { name: "host", type: "string", value: "host", help: "address to bind", default: "127.0.0.1" },
    ],
    details:
      "Serves @proc/otel's metrics: the queue gauges (jobs by status, oldest ready job's age), read " +
      "from the database at each scrape, and whatever the app module counts. Counters of job runs " +
      "come from the workers: run them with --metrics-port. Needs @proc/otel, @opentelemetry/api, " +
      "@opentelemetry/sdk-metrics and @opentelemetry/exporter-prometheus.",
  },
  {
    path: ["dashboard"],
    summary: "serve the web dashboard (queues, jobs, job history, live) until stopped",
    args: [],
    options: [
      {
        name: "port",
        type: "string",
        value: "port",
        help: "TCP port to listen on (0: any free port)",
        default: "8080",
      },
      { name: "host", type: "string", value: "host", help: "address to bind", default: "127.0.0.1" },
      { name: "base-path", type: "string", value: "path", help: "path to serve it under", default: "/" },
      {
        name: "actions",
        type: "boolean",
        help: "enable retry, cancel, abort and delete (needs --token)",
      },
      {
        name: "token",
        type: "string",
        value: "secret",
        help: "the token every action must carry (at least 16 characters)",
      },
    ],
    details:
      "Read-only and bound to 127.0.0.1 unless told otherwise. With --actions, every action needs " +
      "the token (typed in the page, or sent as Authorization: Bearer) and comes from the dashboard's " +
      "own pages (CSRF token, same-origin check). With --app, the periodic tasks page shows the cron, " +
      "time zone and next tick of the app's schedules. Needs @proc/dashboard.",
  },
  {
    path: ["healthcheck"],
    summary: "exit 0 when the database is reachable and the schema is installed and current, else 1",
    args: [],
    options: [],
  },
];

/** The environment variable an option reads. */
export function envName(option: OptionSpec, command: readonly string[] | null): string | null {
  if (NO_ENV.has(option.name)) return null;
  if (option.env) return option.env;
  return ["PROC", ...(command ?? []), option.name].join("_").toUpperCase().replace(/-/g, "_");
}

/** Command groups: `proc schema` alone is not a command. */
export const GROUPS: Record<string, string> = {
  schema: "the proc schema in your database",
  jobs: "inspect and operate jobs",
};
