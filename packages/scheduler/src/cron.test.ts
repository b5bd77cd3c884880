import { describe, expect, it } from "vitest";
import { cronProblems, parseCron } from "./cron.js";

const sec = (iso: string) => Date.parse(iso) / 1000;
const iso = (s: number) => new Date(s * 1000).toISOString();

describe("parseCron", () => {
  it("reads 5 fields minute first, ticking at second 0", () => {
    const cron = parseCron("*/10 * * * *");
    expect(iso(cron.nextAfter(sec("2024-01-01T12:03:27Z")))).toBe("2024-01-01T12:10:00.000Z");
  });

  it("reads 6 fields seconds first", () => {
    const cron = parseCron("*/15 * * * * *");
    expect(iso(cron.nextAfter(sec("2024-01-01T12:00:01Z")))).toBe("2024-01-01T12:00:15.000Z");
  });

  it("returns the tick strictly after the given one, so a cursor never repeats a tick", () => {
    const cron = parseCron("* * * * * *");
    const t = sec("2024-01-01T12:00:15Z");
    expect(cron.nextAfter(t)).toBe(t + 1);
    expect(parseCron("0 * * * *").nextAfter(sec("2024-01-01T12:00:00Z"))).toBe(sec("2024-01-01T13:00:00Z"));
  });

  it("defaults to UTC and honours time zones across daylight saving time", () => {
    expect(iso(parseCron("0 9 * * *").nextAfter(sec("2024-01-15T00:00:00Z")))).toBe(
      "2024-01-15T09:00:00.000Z",
    );
    const paris = parseCron("0 9 * * *", "Europe/Paris");
    expect(paris.timezone).toBe("Europe/Paris");
    expect(iso(paris.nextAfter(sec("2024-01-15T00:00:00Z")))).toBe("2024-01-15T08:00:00.000Z"); // UTC+1
    expect(iso(paris.nextAfter(sec("2024-07-15T00:00:00Z")))).toBe("2024-07-15T07:00:00.000Z"); // UTC+2
    const ny = parseCron("30 8 * * 1-5", "America/New_York");
    // Saturday 2024-03-09 → next weekday is Monday 11 March, after the switch to EDT (UTC-4).
    expect(iso(ny.nextAfter(sec("2024-03-09T00:00:00Z")))).toBe("2024-03-11T12:30:00.000Z");
  });

  it("accepts cron-parser aliases", () => {
    expect(iso(parseCron("@daily").nextAfter(sec("2024-01-01T12:00:00Z")))).toBe("2024-01-02T00:00:00.000Z");
  });

  it("gives H (hash) fields the same value in every process for one seed", () => {
    const at = sec("2024-01-01T12:00:30Z");
    const a = parseCron("H * * * *", "UTC", { hashSeed: "report:" }).nextAfter(at);
    for (let i = 0; i < 5; i++)
      expect(parseCron("H * * * *", "UTC", { hashSeed: "report:" }).nextAfter(at)).toBe(a);
    expect(a % 60).toBe(0);
    expect(a - sec("2024-01-01T12:00:00Z")).toBeLessThanOrEqual(3600);
    const seeds = new Set(
      ["a", "b", "c", "d", "e", "f"].map((seed) =>
        parseCron("H * * * *", "UTC", { hashSeed: seed }).nextAfter(at),
      ),
    );
    expect(seeds.size).toBeGreaterThan(1);
  });

  it("rejects an invalid expression with a message quoting it", () => {
    expect(() => parseCron("61 * * * *")).toThrow(/"61 \* \* \* \*" is not a valid cron expression/);
    expect(() => parseCron("every minute please")).toThrowError(/cron: "every minute please" has 3 field/);
    expect(() => parseCron("* * * * * * *")).toThrow(/has 7 field\(s\); expected 5/);
    // Parses, but never matches.
    expect(() => parseCron("0 0 30 2 *")).toThrow(/"0 0 30 2 \*" is not a valid cron expression/);
    try {
      parseCron("61 * * * *", "UTC", { where: 'periodic task "cleanup"' });
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ name: "InvalidOptions", code: "INVALID_OPTIONS" });
      expect((error as Error).message).toContain('invalid periodic task "cleanup" options');
    }
  });

  it("rejects an unknown time zone", () => {
    expect(() => parseCron("* * * * *", "Mars/Olympus")).toThrow(/timezone: "Mars\/Olympus" is not an IANA/);
  });

  it("lists every problem at once", () => {
    expect(cronProblems("* *", "Nope")).toHaveLength(2);
    expect(cronProblems("* * * * *", "UTC")).toEqual([]);
    expect(cronProblems(42, "UTC")).toEqual([expect.stringMatching(/cron: expected a string/)]);
  });
});
