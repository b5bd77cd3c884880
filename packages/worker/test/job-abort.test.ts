import { describe, expect, it } from "vitest";
import { JobAbort } from "../src/job-abort.js";

describe("JobAbort", () => {
  it("hands out a signal already aborted, with the reason, when aborted before it was read", () => {
    const abort = new JobAbort();
    const reason = new Error("first");
    abort.abort(reason);
    abort.abort(new Error("second"));
    expect(abort.aborted).toBe(true);
    expect(abort.signal.aborted).toBe(true);
    expect(abort.signal.reason).toBe(reason);
  });

  it("fires a signal that was read before the abort, once", () => {
    const abort = new JobAbort();
    const { signal } = abort;
    const seen: unknown[] = [];
    signal.addEventListener("abort", () => seen.push(signal.reason));
    expect(signal.aborted).toBe(false);
    abort.abort("stop");
    abort.abort("again");
    expect(seen).toEqual(["stop"]);
    expect(abort.reason).toBe("stop");
    expect(abort.signal).toBe(signal);
  });
});
