// Builds the browser view into dist/ (committed, embedded into amqpgwd):
//   1. TypeScript stubs from proto/amqpgw/v1/gateway.proto with Debian's
//      /usr/bin/protoc and @protobuf-ts/plugin (into src/gen/, not committed);
//   2. a type check (tsc --noEmit);
//   3. one bundle, dist/app.js (esbuild, uPlot included), plus
//      src/index.html, src/app.css and uPlot's stylesheet (dist/uplot.css).
//
//   npm ci && npm run build     rebuild dist/ (commit the result)
//   npm run check               rebuild into a temporary folder and fail when
//                               dist/ differs (ctest: web_bundle_up_to_date)
//   npm run watch               rebuild on change (serve with
//                               amqpgwd --web_root=web/dist)
import { execFileSync } from "node:child_process";
import {
  copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const protoRoot = resolve(here, "../proto");
const gen = join(here, "src/gen");
const dist = join(here, "dist");
const mode = process.argv[2] ?? "--build";

function generateStubs() {
  rmSync(gen, { recursive: true, force: true });
  mkdirSync(gen, { recursive: true });
  execFileSync("/usr/bin/protoc", [
    `--plugin=protoc-gen-ts=${join(here, "node_modules/.bin/protoc-gen-ts")}`,
    `--ts_out=${gen}`,
    "--ts_opt=long_type_string,force_optimize_code_size,ts_nocheck",
    `--proto_path=${protoRoot}`,
    "--proto_path=/usr/include",
    "amqpgw/v1/gateway.proto",
  ], { stdio: "inherit" });
}

function typeCheck() {
  execFileSync(join(here, "node_modules/.bin/tsc"), ["--noEmit", "-p", here],
               { stdio: "inherit" });
}

const buildOptions = (outdir) => ({
  entryPoints: [join(here, "src/main.ts")],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  outfile: join(outdir, "app.js"),
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
});

function copyStatic(outdir) {
  for (const f of ["index.html", "app.css", "favicon.svg"]) {
    copyFileSync(join(here, "src", f), join(outdir, f));
  }
  copyFileSync(join(here, "node_modules/uplot/dist/uPlot.min.css"), join(outdir, "uplot.css"));
}

async function build(outdir) {
  mkdirSync(outdir, { recursive: true });
  generateStubs();
  typeCheck();
  await esbuild.build(buildOptions(outdir));
  copyStatic(outdir);
}

if (mode === "--check") {
  const tmp = mkdtempSync(join(tmpdir(), "amqpgw-web-"));
  try {
    await build(tmp);
    const want = readdirSync(tmp).sort();
    const have = existsSync(dist) ? readdirSync(dist).sort() : [];
    const stale = want.filter(
      (f) => !existsSync(join(dist, f)) ||
             !readFileSync(join(dist, f)).equals(readFileSync(join(tmp, f))));
    const extra = have.filter((f) => !want.includes(f));
    if (stale.length || extra.length) {
      console.error(`web/dist is stale (${[...stale, ...extra].join(", ")}): ` +
                    "run (cd web && npm ci && npm run build) and commit web/dist");
      process.exit(1);
    }
    console.log(`web/dist is up to date (${want.join(", ")})`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
} else if (mode === "--watch") {
  generateStubs();
  copyStatic(dist);
  const ctx = await esbuild.context(buildOptions(dist));
  await ctx.watch();
  console.log("watching src/ (static files are copied at start only)");
} else {
  rmSync(dist, { recursive: true, force: true });
  await build(dist);
  console.log(`built ${readdirSync(dist).sort().join(", ")} in web/dist`);
}
