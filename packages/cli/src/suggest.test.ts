import { describe, expect, it } from "vitest";
import { closest, editDistance } from "./suggest.js";

describe("editDistance", () => {
  it.each([
    ["", "", 0],
    ["abc", "", 3],
    ["send_email", "send_emial", 2],
    ["kitten", "sitting", 3],
  ])("%s → %s is %i", (a, b, d) => {
    expect(editDistance(a, b)).toBe(d);
    expect(editDistance(b, a)).toBe(d);
  });
});

describe("closest", () => {
  it("returns near names, closest first, ignoring case", () => {
    expect(closest("send_emial", ["send_email", "send_sms", "fail", "Send_Emails"])).toEqual([
      "send_email",
      "Send_Emails",
    ]);
  });

  it("returns nothing when no name is near", () => {
    expect(closest("zzzzzz", ["send_email", "fail"])).toEqual([]);
  });
});
