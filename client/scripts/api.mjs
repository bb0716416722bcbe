// Generates the typed API layer from chatd's OpenAPI spec, or checks that it is current.
//
//   node scripts/api.mjs generate   regenerate src/app/api/generated/ from openapi.json
//   node scripts/api.mjs update     CHATD_BIN openapi > openapi.json, then generate
//   node scripts/api.mjs check      fail if openapi.json or the generated code differ from what
//                                   `$CHATD_BIN openapi` would produce
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const specPath = join(root, 'openapi.json');
const generatedDir = join(root, 'src/app/api/generated');
const generatedFile = 'schema.ts';

const HEADER = `/* eslint-disable */
// Generated from client/openapi.json by \`npm run api:generate\` (openapi-typescript).
// Do not edit by hand: change the server, then run \`npm run api:update\`.

`;

async function render(spec) {
  const ast = await openapiTS(pathToFileURL(spec), {
    alphabetize: true,
    exportType: true,
    rootTypes: true,
    rootTypesNoSchemaPrefix: true,
  });
  return HEADER + astToString(ast);
}

async function generateInto(spec, dir) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, generatedFile), await render(spec));
}

function chatdBin() {
  const bin = process.env.CHATD_BIN;
  if (!bin) {
    fail(
      'CHATD_BIN is not set. Point it at a built chatd binary, e.g. CHATD_BIN=../target/debug/chatd',
    );
  }
  // npm runs scripts from client/; a relative path means relative to where npm was started.
  return resolve(process.env.INIT_CWD ?? process.cwd(), bin);
}

function specFromServer(bin) {
  return execFileSync(bin, ['openapi'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

function fail(message) {
  console.error(`api: ${message}`);
  process.exit(1);
}

/** Compares two specs as JSON so formatting alone never fails the check. */
function sameSpec(a, b) {
  return JSON.stringify(JSON.parse(a)) === JSON.stringify(JSON.parse(b));
}

const command = process.argv[2];
switch (command) {
  case 'generate': {
    await generateInto(specPath, generatedDir);
    console.log(`api: generated ${relative(root, join(generatedDir, generatedFile))}`);
    break;
  }
  case 'update': {
    writeFileSync(specPath, specFromServer(chatdBin()));
    await generateInto(specPath, generatedDir);
    console.log('api: openapi.json and generated code updated');
    break;
  }
  case 'check': {
    const bin = chatdBin();
    const temp = mkdtempSync(join(tmpdir(), 'chatd-api-'));
    try {
      const freshSpec = join(temp, 'openapi.json');
      writeFileSync(freshSpec, specFromServer(bin));
      const problems = [];
      if (
        !existsSync(specPath) ||
        !sameSpec(readFileSync(specPath, 'utf8'), readFileSync(freshSpec, 'utf8'))
      ) {
        problems.push('client/openapi.json differs from `chatd openapi`');
      }
      const freshDir = join(temp, 'generated');
      await generateInto(freshSpec, freshDir);
      const committed = join(generatedDir, generatedFile);
      if (
        !existsSync(committed) ||
        readFileSync(committed, 'utf8') !== readFileSync(join(freshDir, generatedFile), 'utf8')
      ) {
        problems.push(
          `client/src/app/api/generated/${generatedFile} is out of date with the server`,
        );
      }
      if (problems.length > 0) {
        fail(
          `${problems.join('; ')}.\nRun \`CHATD_BIN=<path to chatd> npm --prefix client run api:update\` and commit the result.`,
        );
      }
      console.log('api: openapi.json and generated code match the server');
    } finally {
      rmSync(temp, { recursive: true, force: true });
    }
    break;
  }
  default:
    fail('usage: node scripts/api.mjs generate|update|check');
}
