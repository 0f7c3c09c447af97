// The README's example (`pnpm example`): read a NOTIFY, answer with an ACK.
import {
  DataType,
  FrameReader,
  FrameType,
  FrameWriter,
  formatIp,
  getArg,
  Scope,
  setVar,
  TypedValue,
} from "@spoekit/spop-codec";

// The NOTIFY HAProxy 2.6 sends for `args ip_fwd=req.hdr(Forwarded) ip_xff=req.hdr_ip(X-Forwarded-For,1) ip_src=src`.
const chunk = Buffer.from(
  "0000002f030000000100010a636865636b2d72617465030669705f667764000669705f786666000669705f737263067f000001",
  "hex",
);

const reader = new FrameReader(); // one per connection
const writer = new FrameWriter();
reader.push(chunk); // in an agent: every chunk the socket delivers
for (let frame = reader.next(); frame !== undefined; frame = reader.next()) {
  if (frame.type !== FrameType.NOTIFY) continue;
  for (const message of frame.messages) {
    const source = getArg(message, "ip_src");
    const client = source?.type === DataType.IPV4 ? formatIp(source.value) : "unknown";
    console.log(`${message.name} for ${client} (stream ${frame.streamId}, frame ${frame.frameId})`);
  }
  writer.writeAck(frame.streamId, frame.frameId, [setVar(Scope.SESS, "ip_score", TypedValue.int32(0))]);
}
console.log(`ACK: ${writer.flush().toString("hex")}`); // every ACK ready so far, for one socket write
