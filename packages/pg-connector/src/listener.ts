import { type Listener, type ListenOptions, type Logger, redact, translateDriverError } from "@proc/core";
import { Client, type ClientConfig, escapeIdentifier, type Notification as PgNotification } from "pg";
import { reasonOf } from "./rows.js";

export interface ReconnectDelays {
  initialDelayMs: number;
  maxDelayMs: number;
}

export interface PgListenerOptions extends ListenOptions {
  config: ClientConfig;
  delays: ReconnectDelays;
  logger: Logger;
  /** Turns a failed connect into the connector's ConnectionError (naming host:port). */
  connectError: (error: unknown) => Error;
  onClosed: (listener: PgListener) => void;
}

const noop = () => {};

/**
 * LISTEN on a dedicated connection, never a pooled one: a pooled client would be handed to
 * other callers, and LISTEN registrations die with their session. When the connection is
 * lost, it reconnects with exponential backoff and LISTENs again; notifications sent while
 * it was away are lost, which "disconnected" then "connected" tells the consumer.
 */
export class PgListener implements Listener {
  readonly #options: PgListenerOptions;
  #client: Client | undefined;
  #connecting: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: PgListenerOptions) {
    this.#options = options;
  }

  /** Connects once; a failure here is the caller's to handle, only later losses are retried. */
  async start(): Promise<void> {
    await this.#connect();
    this.#options.logger.debug(
      { action: "listen_connected", channels: this.#options.channels },
      "listening for notifications",
    );
    this.#emitState("connected");
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#connecting?.catch(noop);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(noop);
    this.#options.onClosed(this);
  }

  #connect(): Promise<void> {
    this.#connecting = this.#open().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #open(): Promise<void> {
    const client = new Client(this.#options.config);
    // Listeners go on before connect: an 'error' event without one crashes the process.
    // Events of a client that is not (or no longer) the current one are ignored.
    client.on("error", (error) => this.#lost(client, error));
    client.on("end", () => this.#lost(client, new Error("the listen connection ended")));
    client.on("notification", (message) => this.#deliver(message));
    try {
      await client.connect();
    } catch (error) {
      void client.end().catch(noop);
      throw this.#options.connectError(error);
    }
    try {
      for (const channel of this.#options.channels) await client.query(`LISTEN ${escapeIdentifier(channel)}`);
    } catch (error) {
      void client.end().catch(noop);
      throw translateDriverError(error);
    }
    this.#client = client;
  }

  #lost(client: Client, error: Error): void {
    if (client !== this.#client || this.#closed) return;
    this.#client = undefined;
    void client.end().catch(noop);
    this.#options.logger.warn(
      { action: "listen_disconnected", error: redact(reasonOf(error)) },
      "lost the listen connection; reconnecting",
    );
    this.#emitState("disconnected", error);
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    const { initialDelayMs, maxDelayMs } = this.#options.delays;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** this.#attempt);
    this.#attempt += 1;
    // Half fixed, half random: many workers that lost the same server do not all come back
    // in the same millisecond.
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    this.#timer = setTimeout(() => void this.#reconnect(), delay);
  }

  async #reconnect(): Promise<void> {
    this.#timer = undefined;
    if (this.#closed) return;
    try {
      await this.#connect();
    } catch (error) {
      this.#options.logger.warn(
        { action: "listen_reconnect_failed", attempt: this.#attempt, error: redact(reasonOf(error)) },
        "could not reconnect the listen connection; retrying",
      );
      if (!this.#closed) this.#scheduleReconnect();
      return;
    }
    if (this.#closed) return;
    this.#attempt = 0;
    this.#options.logger.info(
      { action: "listen_reconnected", channels: this.#options.channels },
      "listen connection re-established",
    );
    this.#emitState("connected");
  }

  #deliver(message: PgNotification): void {
    // pg emits from its socket data handler: a throwing consumer would surface as an
    // uncaught exception there, so it is logged instead.
    try {
      this.#options.onNotification({ channel: message.channel, payload: message.payload ?? "" });
    } catch (error) {
      this.#options.logger.error(
        { action: "listen_notification_error", channel: message.channel, error },
        "a notification handler threw",
      );
    }
  }

  #emitState(state: "connected" | "disconnected", error?: Error): void {
    try {
      this.#options.onStateChange?.(state, error);
    } catch (handlerError) {
      this.#options.logger.error(
        { action: "listen_state_handler_error", state, error: handlerError },
        "a listen state handler threw",
      );
    }
  }
}
