import { spoekitProject } from "../../vitest.shared.ts";

export default spoekitProject("spoe-agent");
