#!/usr/bin/env node
/** `spop-bench`: drive any SPOE agent as HAProxy would and measure it (see `--help`). */
import { runCli } from "../testing/cli.ts";

process.exitCode = await runCli(process.argv.slice(2));
