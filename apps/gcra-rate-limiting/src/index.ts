export * from "./client-ip.ts";
export * from "./config.ts";
