// `pnpm example`: decodes the frames captured from HAProxy 2.6 and 3.5, then builds the
// AGENT-HELLO and an ACK an agent would answer with, and prints them.
import {
  ActionType,
  agentHelloFrame,
  DataType,
  dataTypeNames,
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameReader,
  FrameType,
  FrameWriter,
  formatIp,
  frameTypeNames,
  type KVList,
  negotiateHello,
  parseHaproxyHello,
  Scope,
  scopeNames,
  setVar,
  TypedValue as Typed,
  type TypedValue,
} from "@spoekit/spop-codec";
import { type CapturedFrame, capturedFrames } from "@spoekit/spop-codec/testing";

const captured = capturedFrames;

function formatValue(value: TypedValue): string {
  const type = dataTypeNames[value.type];
  switch (value.type) {
    case DataType.NULL:
      return type;
    case DataType.IPV4:
    case DataType.IPV6:
      return `${type} ${formatIp(value.value)}`;
    case DataType.BINARY:
      return `${type} ${Buffer.from(value.value).toString("hex")}`;
    case DataType.STRING:
      return `${type} ${JSON.stringify(value.value)}`;
    default:
      return `${type} ${value.value}`;
  }
}

const formatItems = (items: KVList) =>
  items.map((item) => `${item.name}=${formatValue(item.value)}`).join(", ");

function formatFrame(frame: Frame): string {
  const head = `${frameTypeNames[frame.type]} stream ${frame.streamId} frame ${frame.frameId}`;
  switch (frame.type) {
    case FrameType.NOTIFY:
      return `${head}: ${frame.messages.map((m) => `${m.name}(${formatItems(m.args)})`).join(" ")}`;
    case FrameType.ACK:
      return `${head}: ${frame.actions
        .map((a) =>
          a.type === ActionType.SET_VAR
            ? `set ${scopeNames[a.scope]}.${a.name} = ${formatValue(a.value)}`
            : `unset ${scopeNames[a.scope]}.${a.name}`,
        )
        .join(", ")}`;
    case FrameType.UNSET:
      return `${head}: ${frame.payload.length} payload bytes`;
    default:
      return `${head}: ${formatItems(frame.items)}`;
  }
}

// All captured frames as one byte stream, read back one frame at a time.
const reader = new FrameReader();
reader.push(Buffer.concat(captured.map((frame) => Buffer.from(frame.hex, "hex"))));
console.log("Frames captured from real HAProxy:");
let index = 0;
for (const frame of reader) {
  const source = captured[index++] as CapturedFrame;
  console.log(`  [${source.haproxy}] ${formatFrame(frame)}`);
}

// Answer HAProxy 2.6's HELLO.
const helloBytes = Buffer.from((captured[0] as CapturedFrame).hex, "hex");
const hello = decodeFrame(helloBytes);
if (hello.type !== FrameType.HAPROXY_HELLO) throw new Error("the first captured frame is a HELLO");
const agreed = negotiateHello(parseHaproxyHello(hello), {
  maxFrameSize: 65536,
  capabilities: ["pipelining"],
});
const agentHello = encodeFrame(agentHelloFrame(agreed));
console.log(`\nAGENT-HELLO (${agentHello.length} bytes): ${agentHello.toString("hex")}`);
console.log(`  ${formatFrame(decodeFrame(agentHello))}`);

// Answer a NOTIFY: the variables a rate limiter sets, in one buffer with a second ACK.
const notify = decodeFrame(Buffer.from((captured[3] as CapturedFrame).hex, "hex"));
if (notify.type !== FrameType.NOTIFY) throw new Error("the fourth captured frame is a NOTIFY");
const writer = new FrameWriter({ maxFrameSize: agreed.maxFrameSize });
writer.writeAck(notify.streamId, notify.frameId, [
  setVar(Scope.SESS, "ip_score", Typed.int32(100)),
  setVar(Scope.SESS, "retry_after", Typed.int32(2)),
  setVar(Scope.SESS, "remaining", Typed.int32(0)),
  setVar(Scope.SESS, "limit", Typed.int32(100)),
]);
writer.writeAck(notify.streamId + 2, 1, [setVar(Scope.SESS, "ip_score", Typed.int32(0))]);
const batch = writer.flush();
console.log(`\nTwo ACKs in one buffer (${batch.length} bytes): ${batch.toString("hex")}`);
const acks = new FrameReader();
acks.push(batch);
for (const ack of acks) console.log(`  ${formatFrame(ack)}`);
