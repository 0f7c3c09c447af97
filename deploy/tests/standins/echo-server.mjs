// Echoes each request (request line and headers) with 200 on port 80 (PORT to change it).
import { createServer } from "node:http";

const server = createServer((request, response) => {
  const lines = [`${request.method} ${request.url} HTTP/${request.httpVersion}`];
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    lines.push(`${request.rawHeaders[i]}: ${request.rawHeaders[i + 1]}`);
  }
  response.writeHead(200, { "content-type": "text/plain" });
  response.end(`${lines.join("\n")}\n`);
});
server.listen(Number(process.env.PORT ?? 80));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
