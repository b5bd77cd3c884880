import type { Logger } from "./logger.js";

type Listener<P> = (payload: P) => void;

/**
 * A typed event emitter: each event name maps to one payload object. A listener
 * that throws is logged and never breaks the emitter's caller (a worker must not
 * die because a metrics hook threw).
 */
export class TypedEmitter<Events extends { [K in keyof Events]: object }> {
  readonly #listeners = new Map<keyof Events, Set<Listener<never>>>();
  #logger: Logger | undefined;

  protected setEmitterLogger(logger: Logger): void {
    this.#logger = logger;
  }

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    this.#listeners.get(event)?.delete(listener as Listener<never>);
  }

  /**
   * Whether anything listens to `event`: lets a hot path skip building a payload
   * nobody would see.
   */
  hasListeners(event: keyof Events): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0;
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(payload);
      } catch (error) {
        this.#logger?.error(
          { action: "event_listener_error", event: String(event), error },
          "an event listener threw",
        );
      }
    }
  }
}
