export { encodeVarint } from "./varint.ts";
