import { Hono } from "hono";
import { app, pool, welcomeEmail } from "./app.js";
import { log } from "@proc/example-support";

/** The HTTP API: POST /signup, GET /jobs/:id. */
export const api = new Hono();

const isUniqueViolation = (error: unknown) => (error as { code?: unknown } | null)?.code === "23505";

// Sign a user up and queue their welcome email in ONE transaction: both are
// committed, or neither is. No email for a user that does not exist, no user without
// an email, whatever fails and wherever.
api.post("/signup", async (c) => {
  const body = (await c.req.json().catch(() => null)) as { email?: unknown } | null;
  const email = body?.email;
  if (typeof email !== "string" || !/^[^@\s]+@[^@\s]+$/.test(email))
    return c.json({ error: "expected a JSON body { email }" }, 400);

  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query<{ id: number }>(
      "INSERT INTO users (email) VALUES ($1) RETURNING id",
      [email],
    );
    const userId = rows[0]!.id;
    // The job is inserted on our connection, inside our transaction.
    const jobId = await welcomeEmail.defer({ userId }, { connection: client });
    log(`  api │ signup ${email}: INSERT user ${userId}, deferred welcome_email job ${jobId}, COMMIT…`);
    try {
      await client.query("COMMIT");
    } catch (error) {
      log(
        `  api │ signup ${email}: COMMIT failed (${(error as Error).message}): job ${jobId} rolled back with it`,
      );
      throw error;
    }
    log(`  api │ signup ${email}: committed`);
    return c.json({ userId, jobId }, 201);
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {}); // a failed COMMIT has already rolled back
    if (isUniqueViolation(error)) return c.json({ error: `${email} is already registered` }, 409);
    throw error;
  } finally {
    client.release();
  }
});

// A job's status, for a client that wants to follow it.
api.get("/jobs/:id", async (c) => {
  const id = Number(c.req.param("id"));
  if (!Number.isSafeInteger(id) || id <= 0) return c.json({ error: "expected a job id" }, 400);
  const job = await app.jobManager.getJob(id);
  if (!job) return c.json({ error: `no job ${id}` }, 404);
  return c.json({
    id: job.id,
    task: job.task,
    status: job.status,
    attempts: job.attempts,
    result: job.result,
    error: job.error?.message ?? null,
  });
});

api.onError((error, c) => {
  log(`  api │ ${c.req.method} ${c.req.path}: ${error.message}`);
  return c.json({ error: "internal error" }, 500);
});
