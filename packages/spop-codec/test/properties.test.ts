import { describe, it } from "vitest";
import { checkProperty, type PropertyName, suiteRuns } from "./properties.ts";

const descriptions: Record<PropertyName, string> = {
  roundTrip: "decoding an encoded frame gives the frame back, for arbitrary frames of every type",
  stream: "a sequence of frames cut into arbitrary chunks streams back unchanged",
  randomBytes: "arbitrary bytes decode to a frame that re-encodes to them, or to a SpopError",
  randomBodies: "arbitrary bodies behind a correct length prefix decode canonically or to a SpopError",
  randomStreams: "arbitrary bytes in arbitrary chunks stream frames until a SpopError, nothing else",
  mutatedFixtures: "mutations of the captured HAProxy frames decode canonically or to a SpopError",
};

describe("properties (fast-check)", () => {
  for (const [name, runs] of Object.entries(suiteRuns) as [PropertyName, number][]) {
    it(`${descriptions[name]} (${runs} cases)`, { timeout: 120_000 }, () => {
      checkProperty(name, runs);
    });
  }
});
