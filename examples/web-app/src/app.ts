import { App, consoleLogger } from "@proc/core";
import { PgConnector } from "@proc/pg-connector";
import pg from "pg";

// One pg.Pool for the whole service: the HTTP handlers take their transactions from
// it, and proc uses it too (a pool you pass in stays yours: end it yourself).
export const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
// Always listen for pool errors: when the server ends an idle connection (a restart, an
// admin's pg_terminate_backend, DROP DATABASE ... WITH (FORCE)) the pool emits "error",
// and an "error" event nobody listens to crashes the process. proc listens only while
// the app is open; the pool is yours and outlives it (pool.end() returns before its
// sockets have closed).
pool.on("error", (error) => console.warn(`idle database connection lost: ${error.message}`));

export const app = new App({
  connector: new PgConnector({ pool }),
  logger: consoleLogger({ level: "warn" }), // warnings and errors only: a readable timeline
});

// users.email is unique, checked at COMMIT (DEFERRABLE INITIALLY DEFERRED): a duplicate
// signup gets as far as deferring its job before the transaction fails. The job
// must then vanish with the rest of the transaction, and it does.
export const CREATE_USERS_TABLE = `
  CREATE TABLE IF NOT EXISTS users (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email) DEFERRABLE INITIALLY DEFERRED
  )`;

export const welcomeEmail = app.task(
  { name: "welcome_email", retry: { maxAttempts: 3, wait: 1000 } },
  async ({ userId }: { userId: number }) => {
    // The job only exists if the signup committed, so the user is always there.
    const { rows } = await pool.query<{ email: string }>("SELECT email FROM users WHERE id = $1", [userId]);
    const email = rows[0]?.email;
    if (!email) throw new Error(`user ${userId} not found`);
    // ... hand the message to your mail provider here ...
    return { sentTo: email };
  },
);
