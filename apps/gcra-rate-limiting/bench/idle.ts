/**
 * Idle SPOP connections, for the memory scenario with a flood of them: each connects, sends a
 * HAPROXY-HELLO and then nothing. The agent answers within its connection cap with AGENT-HELLO
 * and holds the connection; beyond it, it refuses it (AGENT-DISCONNECT, close).
 */
import { connect, type Socket } from "node:net";
import { sleep } from "@spoekit/harness";
import { encodeFrame, haproxyHelloFrame } from "@spoekit/spop-codec";

const hello = encodeFrame(
  haproxyHelloFrame({ maxFrameSize: 16380, capabilities: ["pipelining"], engineId: "bench-idle" }),
);

export interface IdleConnections {
  /** Connections still open (the agent holds them). */
  held(): number;
  /** Connections the agent closed (refused beyond its cap). */
  refused(): number;
  close(): void;
}

/** Opens `count` idle SPOP connections to 127.0.0.1:`port`, a few hundred at a time. */
export async function openIdle(port: number, count: number): Promise<IdleConnections> {
  const sockets = new Set<Socket>();
  let refused = 0;
  let closing = false;
  const one = () =>
    new Promise<void>((resolve) => {
      const socket = connect({ port, host: "127.0.0.1" }, () => {
        socket.write(hello);
        resolve();
      });
      sockets.add(socket);
      socket.on("data", () => undefined);
      socket.on("error", () => undefined);
      socket.on("close", () => {
        sockets.delete(socket);
        if (!closing) refused++;
        resolve();
      });
    });
  for (let opened = 0; opened < count; opened += 200) {
    await Promise.all(Array.from({ length: Math.min(200, count - opened) }, one));
  }
  await sleep(1000);
  return {
    held: () => sockets.size,
    refused: () => refused,
    close() {
      closing = true;
      for (const socket of sockets) socket.destroy();
    },
  };
}
