// Builds the console into one directory (default dist/, which is committed and embedded in
// the server binary): the page, one script bundle (our sources and dagre) and one stylesheet.
// Usage: node build.mjs [OUT_DIR]

import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

const out = process.argv[2] || "dist";
mkdirSync(out, { recursive: true });
const common = { bundle: true, minify: true, legalComments: "none", logLevel: "warning" };
await build({ ...common, entryPoints: ["src/main.js"], format: "iife", target: "es2020", outfile: join(out, "app.js") });
await build({ ...common, entryPoints: ["src/style.css"], outfile: join(out, "app.css") });
copyFileSync("src/index.html", join(out, "index.html"));
