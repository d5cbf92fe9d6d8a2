// Copy the pinned uPlot build into the Python package's static folder (gitignored), so the
// pages load it from the service itself: same origin, works offline, allowed by the CSP.
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "node_modules", "uplot");
const dest = join(here, "..", "datasource_api", "static", "vendor");
const files = [["dist/uPlot.iife.min.js", "uPlot.iife.min.js"], ["dist/uPlot.min.css", "uPlot.min.css"],
               ["LICENSE", "uPlot.LICENSE"]];

mkdirSync(dest, { recursive: true });
for (const [from, to] of files) copyFileSync(join(src, from), join(dest, to));
const { version } = JSON.parse(readFileSync(join(src, "package.json"), "utf8"));
console.log(`vendored uPlot ${version} into ${dest}`);
