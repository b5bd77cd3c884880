// What tells watching browsers that something changed: LISTEN on the app's NOTIFY channels
// (new and retried jobs, abort requests, and "<channel>_done" for finished jobs), plus a poll
// of an activity signature (index ends only) for what no NOTIFY announces (a job starting) and for while LISTEN is
// down. Runs only while at least one browser watches; changes are coalesced so a burst of
// jobs costs each browser one refresh per THROTTLE_MS.
import type { App, Listener } from "@proc/core";

export interface Subscriber {
  change(): void;
  end(): void;
}

const THROTTLE_MS = 200;

export class LiveFeed {
  readonly #app: App;
  readonly #pollInterval: number;
  readonly #onChange: () => void;
  readonly #subscribers = new Set<Subscriber>();
  #listener: Promise<Listener | null> | null = null;
  #poll: NodeJS.Timeout | null = null;
  #signature: string | null = null;
  #throttle: NodeJS.Timeout | null = null;
  #pending = false;
  #pollFailed = false;
  /** The last stop and the poll in flight: close() waits for both before the app may close. */
  #stopping: Promise<void> = Promise.resolve();
  #checking: Promise<void> = Promise.resolve();

  /** `onChange` hears every change at once, before the throttle that paces the browsers. */
  constructor(app: App, pollInterval: number, onChange: () => void) {
    this.#app = app;
    this.#pollInterval = pollInterval;
    this.#onChange = onChange;
  }

  subscribe(subscriber: Subscriber): () => void {
    this.#subscribers.add(subscriber);
    if (this.#subscribers.size === 1) this.#start();
    return () => {
      if (this.#subscribers.delete(subscriber) && this.#subscribers.size === 0) this.#stopping = this.#stop();
    };
  }

  /** Something changed (a NOTIFY, a changed poll, an action done here): tell every subscriber soon. */
  changed(): void {
    this.#onChange();
    if (this.#throttle) {
      this.#pending = true;
      return;
    }
    for (const s of this.#subscribers) s.change();
    this.#throttle = setTimeout(() => {
      this.#throttle = null;
      if (this.#pending) {
        this.#pending = false;
        this.changed();
      }
    }, THROTTLE_MS);
  }

  /** End every stream and stop listening and polling. */
  async close(): Promise<void> {
    for (const s of [...this.#subscribers]) s.end();
    this.#subscribers.clear();
    this.#stopping = this.#stop();
    await this.#stopping;
  }

  #start(): void {
    const channel = this.#app.jobManager.channel;
    this.#listener = this.#app.connector
      .listen({
        channels: [channel, `${channel}_done`],
        onNotification: () => this.changed(),
        // Notifications sent while disconnected are lost: refresh once reconnected.
        onStateChange: (state) => {
          if (state === "connected") this.changed();
        },
      })
      .catch((error: unknown) => {
        this.#app.logger.warn(
          { action: "dashboard_listen_error", error },
          "the dashboard cannot LISTEN: live updates come from polling alone",
        );
        return null;
      });
    this.#signature = null;
    this.#poll = setInterval(() => {
      this.#checking = this.#check();
    }, this.#pollInterval);
  }

  async #stop(): Promise<void> {
    if (this.#poll) clearInterval(this.#poll);
    if (this.#throttle) clearTimeout(this.#throttle);
    this.#poll = this.#throttle = null;
    this.#pending = false;
    const listener = this.#listener;
    this.#listener = null;
    const previous = this.#stopping;
    try {
      await (await listener)?.close();
    } catch (error) {
      this.#app.logger.warn(
        { action: "dashboard_unlisten_error", error },
        "the dashboard could not stop listening",
      );
    }
    await Promise.all([previous, this.#checking]);
  }

  async #check(): Promise<void> {
    try {
      // Index ends only (the newest job, the doing count, the latest finish, the workers):
      // well under a millisecond on a table of millions, polled every second.
      const signature = await this.#app.jobManager.activitySignature();
      this.#pollFailed = false;
      if (this.#signature !== null && signature !== this.#signature) this.changed();
      this.#signature = signature;
    } catch (error) {
      if (!this.#pollFailed)
        this.#app.logger.warn({ action: "dashboard_poll_error", error }, "the dashboard could not poll");
      this.#pollFailed = true;
    }
  }
}
