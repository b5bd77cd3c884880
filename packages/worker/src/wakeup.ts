/**
 * A level-triggered wake-up: `wake()` before `wait()` is not lost, and many wakes
 * collapse into one (so N notifications cause one fetch, not N).
 */
export class Wakeup {
  #pending = false;
  #resolve: ((woken: boolean) => void) | null = null;

  wake(): void {
    this.#pending = true;
    this.#resolve?.(true);
  }

  /** Resolves true when woken, false when `ms` passed first. */
  wait(ms: number): Promise<boolean> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), ms);
      const done = (woken: boolean) => {
        clearTimeout(timer);
        this.#resolve = null;
        this.#pending = false;
        resolve(woken);
      };
      this.#resolve = done;
    });
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
