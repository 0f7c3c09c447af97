export * from "./client-ip.ts";
export * from "./config.ts";
export * from "./cpus.ts";
export * from "./settings.ts";
