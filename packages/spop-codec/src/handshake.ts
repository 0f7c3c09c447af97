/**
 * HELLO and DISCONNECT: reading the KV-lists HAProxy (or an agent) sends, negotiating the
 * connection's parameters, and building the frames that answer.
 */
import {
  Capability,
  DataType,
  DisconnectKey,
  DisconnectStatus,
  disconnectReason,
  FrameFlags,
  FrameType,
  HelloKey,
  MIN_FRAME_SIZE,
  SPOP_VERSION,
} from "./constants.ts";
import { SpopError } from "./errors.ts";
import { UINT32_MAX } from "./limits.ts";
import {
  type AgentDisconnectFrame,
  type AgentHelloFrame,
  boolValue,
  type HaproxyDisconnectFrame,
  type HaproxyHelloFrame,
  type KVItem,
  type KVList,
  TypedValue,
} from "./types.ts";

/** What a HAPROXY-HELLO says, checked. */
export interface HaproxyHello {
  /** `supported-versions`, split (e.g. `["2.0"]`). */
  readonly supportedVersions: string[];
  /** HAProxy's `max-frame-size`. */
  readonly maxFrameSize: number;
  /** `capabilities`, split (2.6: `["pipelining", "async"]`; 3.x: `["pipelining"]`). */
  readonly capabilities: string[];
  /** True for a health-check connection: answer with AGENT-HELLO, then close. */
  readonly healthcheck: boolean;
  /** `engine-id`, when sent. */
  readonly engineId: string | undefined;
}

/** What an AGENT-HELLO says (or should say), checked. */
export interface AgentHello {
  readonly version: string;
  readonly maxFrameSize: number;
  readonly capabilities: readonly string[];
}

/** What a DISCONNECT frame says. */
export interface Disconnect {
  /** `status-code` ({@link DisconnectStatus}, or a code of the agent's own). */
  readonly status: number;
  /** `message`, empty when absent. */
  readonly message: string;
}

/** The agent's own limits, for {@link negotiateHello}. */
export interface AgentLimits {
  /** The largest frame the agent accepts (it may announce less, never more than HAProxy). */
  readonly maxFrameSize: number;
  /** Capabilities the agent supports, e.g. `["pipelining"]`. */
  readonly capabilities: readonly string[];
}

/** Splits a comma-separated HELLO list (`supported-versions`, `capabilities`), ignoring spaces. */
export function splitList(text: string): string[] {
  return text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
}

function find(items: KVList, key: string): KVItem | undefined {
  for (const item of items) if (item.name === key) return item;
  return undefined;
}

function stringItem(items: KVList, key: string, missing: number): string {
  const item = find(items, key);
  if (item === undefined) throw new SpopError(missing, `no "${key}" item`, { field: key });
  if (item.value.type !== DataType.STRING) {
    throw new SpopError(DisconnectStatus.INVALID_FRAME, `"${key}" is not a STRING`, { field: key });
  }
  return item.value.value;
}

/**
 * An integer item of any integer type (HAProxy accepts all four) within 0..2^32−1; a larger
 * one is refused with status 9 (bad max-frame-size), anything else with status 4.
 */
function sizeItem(items: KVList, key: string, missing: number): number {
  const item = find(items, key);
  if (item === undefined) throw new SpopError(missing, `no "${key}" item`, { field: key });
  const { value } = item;
  if (
    value.type === DataType.INT32 ||
    value.type === DataType.UINT32 ||
    value.type === DataType.INT64 ||
    value.type === DataType.UINT64
  ) {
    const size = value.value;
    if (size > UINT32_MAX) {
      throw new SpopError(DisconnectStatus.BAD_FRAME_SIZE, `"${key}" ${size} is above 2^32-1`, {
        field: key,
      });
    }
    if (typeof size === "number" && size >= 0) return size;
  }
  throw new SpopError(DisconnectStatus.INVALID_FRAME, `"${key}" is not an integer in 0..2^32-1`, {
    field: key,
  });
}

/**
 * Reads a HAPROXY-HELLO. Throws {@link SpopError} with the status to disconnect with: 5, 6 or 7
 * when `supported-versions`, `max-frame-size` or `capabilities` is missing, 4 when an item has
 * the wrong type. Unknown items are ignored.
 */
export function parseHaproxyHello(frame: HaproxyHelloFrame): HaproxyHello {
  const { items } = frame;
  const healthcheck = find(items, HelloKey.HEALTHCHECK);
  const engineId = find(items, HelloKey.ENGINE_ID);
  return {
    supportedVersions: splitList(
      stringItem(items, HelloKey.SUPPORTED_VERSIONS, DisconnectStatus.VERSION_NOT_FOUND),
    ),
    maxFrameSize: sizeItem(items, HelloKey.MAX_FRAME_SIZE, DisconnectStatus.MAX_FRAME_SIZE_NOT_FOUND),
    capabilities: splitList(
      stringItem(items, HelloKey.CAPABILITIES, DisconnectStatus.CAPABILITIES_NOT_FOUND),
    ),
    healthcheck: healthcheck?.value.type === DataType.BOOL && healthcheck.value.value,
    engineId: engineId?.value.type === DataType.STRING ? engineId.value.value : undefined,
  };
}

/**
 * Reads an AGENT-HELLO (the side of a client playing HAProxy). Throws {@link SpopError}: 5, 6
 * or 7 when `version`, `max-frame-size` or `capabilities` is missing, 4 on a wrong type.
 */
export function parseAgentHello(frame: AgentHelloFrame): AgentHello {
  const { items } = frame;
  return {
    version: stringItem(items, HelloKey.VERSION, DisconnectStatus.VERSION_NOT_FOUND),
    maxFrameSize: sizeItem(items, HelloKey.MAX_FRAME_SIZE, DisconnectStatus.MAX_FRAME_SIZE_NOT_FOUND),
    capabilities: splitList(
      stringItem(items, HelloKey.CAPABILITIES, DisconnectStatus.CAPABILITIES_NOT_FOUND),
    ),
  };
}

/** Reads a HAPROXY-DISCONNECT or AGENT-DISCONNECT. Throws {@link SpopError} (4) without `status-code`. */
export function parseDisconnect(frame: HaproxyDisconnectFrame | AgentDisconnectFrame): Disconnect {
  const { items } = frame;
  const message = find(items, DisconnectKey.MESSAGE);
  return {
    status: sizeItem(items, DisconnectKey.STATUS_CODE, DisconnectStatus.INVALID_FRAME),
    message: message?.value.type === DataType.STRING ? message.value.value : "",
  };
}

function supportsMajor(versions: readonly string[], version: string): boolean {
  const major = version.split(".")[0];
  return versions.some((announced) => announced.split(".")[0] === major);
}

/**
 * What the agent answers to a HAPROXY-HELLO: SPOP 2.0, `min(agent, HAProxy)` as max-frame-size,
 * and the agent's capabilities that HAProxy offers (plus `fragmentation`, which only says what
 * the agent accepts). Throws {@link SpopError} with status 8 when HAProxy offers no 2.x version,
 * 9 when the resulting frame size is below 256 bytes.
 */
export function negotiateHello(hello: HaproxyHello, agent: AgentLimits): AgentHello {
  if (!supportsMajor(hello.supportedVersions, SPOP_VERSION)) {
    throw new SpopError(
      DisconnectStatus.UNSUPPORTED_VERSION,
      `HAProxy supports ${hello.supportedVersions.join(", ") || "no version"}, the agent ${SPOP_VERSION}`,
      { field: HelloKey.SUPPORTED_VERSIONS },
    );
  }
  const maxFrameSize = Math.min(agent.maxFrameSize, hello.maxFrameSize);
  if (maxFrameSize < MIN_FRAME_SIZE) {
    throw new SpopError(
      DisconnectStatus.BAD_FRAME_SIZE,
      `max-frame-size ${maxFrameSize} is below the minimum of ${MIN_FRAME_SIZE}`,
      { field: HelloKey.MAX_FRAME_SIZE },
    );
  }
  const capabilities = agent.capabilities.filter(
    (capability) => capability === Capability.FRAGMENTATION || hello.capabilities.includes(capability),
  );
  return { version: SPOP_VERSION, maxFrameSize, capabilities };
}

/** Parameters of {@link agentHelloFrame}. */
export interface AgentHelloParams {
  /** Default {@link SPOP_VERSION}. */
  readonly version?: string;
  readonly maxFrameSize: number;
  /** Always sent, also when empty (HAProxy 3.x health checks require the item). */
  readonly capabilities: readonly string[];
}

/** The AGENT-HELLO frame: `version`, `max-frame-size` (UINT32) and `capabilities`, always all three. */
export function agentHelloFrame(params: AgentHelloParams): AgentHelloFrame {
  return {
    type: FrameType.AGENT_HELLO,
    flags: FrameFlags.FIN,
    streamId: 0,
    frameId: 0,
    items: [
      { name: HelloKey.VERSION, value: TypedValue.string(params.version ?? SPOP_VERSION) },
      { name: HelloKey.MAX_FRAME_SIZE, value: TypedValue.uint32(params.maxFrameSize) },
      { name: HelloKey.CAPABILITIES, value: TypedValue.string(params.capabilities.join(",")) },
    ],
  };
}

/** Parameters of {@link haproxyHelloFrame}. */
export interface HaproxyHelloParams {
  /** Default `["2.0"]`. */
  readonly supportedVersions?: readonly string[];
  readonly maxFrameSize: number;
  readonly capabilities: readonly string[];
  readonly healthcheck?: boolean;
  readonly engineId?: string;
}

/** A HAPROXY-HELLO frame, in the item order HAProxy uses (for a client playing HAProxy). */
export function haproxyHelloFrame(params: HaproxyHelloParams): HaproxyHelloFrame {
  const items: KVItem[] = [
    {
      name: HelloKey.SUPPORTED_VERSIONS,
      value: TypedValue.string((params.supportedVersions ?? [SPOP_VERSION]).join(",")),
    },
    { name: HelloKey.MAX_FRAME_SIZE, value: TypedValue.uint32(params.maxFrameSize) },
    { name: HelloKey.CAPABILITIES, value: TypedValue.string(params.capabilities.join(",")) },
  ];
  if (params.healthcheck) items.push({ name: HelloKey.HEALTHCHECK, value: boolValue(true) });
  if (params.engineId !== undefined)
    items.push({ name: HelloKey.ENGINE_ID, value: TypedValue.string(params.engineId) });
  return { type: FrameType.HAPROXY_HELLO, flags: FrameFlags.FIN, streamId: 0, frameId: 0, items };
}

/** HAProxy reads at most 255 bytes of a DISCONNECT message. */
const MAX_MESSAGE_BYTES = 255;

/** `text` cut to at most `max` UTF-8 bytes, on a character boundary. */
function truncateUtf8(text: string, max: number): string {
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    const point = char.codePointAt(0) as number;
    bytes += point < 0x80 ? 1 : point < 0x800 ? 2 : point < 0x10000 ? 3 : 4;
    if (bytes > max) break;
    end += char.length;
  }
  return text.slice(0, end);
}

function disconnectItems(status: number, message: string | undefined): KVItem[] {
  return [
    { name: DisconnectKey.STATUS_CODE, value: TypedValue.uint32(status) },
    {
      name: DisconnectKey.MESSAGE,
      value: TypedValue.string(truncateUtf8(message ?? disconnectReason(status), MAX_MESSAGE_BYTES)),
    },
  ];
}

/**
 * An AGENT-DISCONNECT frame. `message` defaults to the protocol's reason for `status` and is cut
 * to 255 bytes, the most HAProxy accepts.
 */
export function agentDisconnectFrame(status: number, message?: string): AgentDisconnectFrame {
  return {
    type: FrameType.AGENT_DISCONNECT,
    flags: FrameFlags.FIN,
    streamId: 0,
    frameId: 0,
    items: disconnectItems(status, message),
  };
}

/** A HAPROXY-DISCONNECT frame (for a client playing HAProxy); `message` as for {@link agentDisconnectFrame}. */
export function haproxyDisconnectFrame(status: number, message?: string): HaproxyDisconnectFrame {
  return {
    type: FrameType.HAPROXY_DISCONNECT,
    flags: FrameFlags.FIN,
    streamId: 0,
    frameId: 0,
    items: disconnectItems(status, message),
  };
}
