import { spoekitProject } from "../../vitest.shared.ts";

export default spoekitProject("deploy");
