/**
 * @spoekit/spop-codec/testing — what the tests of SPOP speakers share: frames captured from real
 * HAProxy processes.
 *
 * @packageDocumentation
 */
export { type CapturedFrame, capturedFrame, capturedFrames } from "./captured-frames.ts";
