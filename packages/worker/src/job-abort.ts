/**
 * A job's abort signal, whose AbortController is created only when someone reads
 * `signal`. Most jobs are never aborted and many tasks never look at ctx.signal, while
 * creating an AbortController (an EventTarget) costs about as much as the worker's
 * whole bookkeeping for a short job. Aborting before the signal exists is remembered,
 * so a signal read later is already aborted with the same reason.
 */
export class JobAbort {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /** Abort once; later calls keep the first reason, as AbortController does. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}
